"""A subnet of a user's supernet on disk: `subnet.yml` (the supernet's name, United-Perception's subnet_settings and
the input size) and `subnet.pdparams` (the plain model's weights); ppnas.oneshot.subnet.load_subnet rebuilds the
plain model.

It is also the report's module for such a search (search_meta.json names it): `write_fragment` writes a top
candidate's subnet.yml, and the "train fully" command finetunes it (`-o subnet_settings=<subnet.yml>`).
"""

import os
from typing import Any, List, Mapping

import paddle
import yaml

from ppnas.errors import ConfigError

SUBNET_FILE = "subnet.yml"
WEIGHTS_FILE = "subnet.pdparams"
FULL_TRAIN_HINT = "python tools/bignas.py -c {config} --phase finetune_subnet -o subnet_settings={fragment}"
EXPORT_HINT = ""  # no deploy exporter for a user's model: load_subnet rebuilds it in Paddle
RECORDED = ("supernet", "subnet_settings", "image_size")


def write_fragment(structure: Mapping[str, Any], path: str) -> None:
    """The subnet file of a recorded structure (its supernet, settings and input size)."""
    missing = [key for key in RECORDED if key not in structure]
    if missing:
        raise ConfigError(f"{path}: the record has no {', '.join(missing)}; it is not a one-shot subnet")
    with open(path, "w", encoding="utf-8") as f:
        f.write("# A subnet found by ppnas's one-shot search: finetune it with\n")
        f.write("#   python tools/bignas.py -c CONFIG --phase finetune_subnet -o subnet_settings=<this file>\n")
        yaml.safe_dump({key: structure[key] for key in RECORDED}, f, default_flow_style=None, sort_keys=False)


def export_subnet(structure: Mapping[str, Any], model: paddle.nn.Layer, save_dir: str) -> List[str]:
    os.makedirs(save_dir, exist_ok=True)
    path, weights = os.path.join(save_dir, SUBNET_FILE), os.path.join(save_dir, WEIGHTS_FILE)
    write_fragment(structure, path)
    paddle.save(model.state_dict(), weights)
    return [path, weights]
