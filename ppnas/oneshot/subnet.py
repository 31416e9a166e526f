"""One subnet of the trained supernet (`--phase evaluate_subnet` / `finetune_subnet`), given as `subnet_settings`
(United-Perception's shape) or `subnet_tokens`: its measurement at its input size, its inherited accuracy,
optionally its accuracy after finetuning, and its export under save_dir."""

import os
from typing import Any, Dict, List, Mapping, Sequence

import paddle
import yaml

from ppnas.constraint import Constraint
from ppnas.engine.seeding import seed_everything
from ppnas.errors import ConfigError
from ppnas.oneshot.evaluate import SupernetTask
from ppnas.oneshot.search import supernet_task
from ppnas.oneshot.settings import load_oneshot_config, subnet_tokens_of
from ppnas.oneshot.supernet import build_supernet


def measured_subnet(task: SupernetTask, constraint: Constraint, tokens: List[int]) -> Dict[str, Any]:
    """What the Constraint sees of the subnet (at its own input size), and whether its window admits it."""
    measurement = task.price(constraint, tokens)
    return {
        "tokens": tokens,
        "structure": task.decode(tokens),
        "flops": measurement.flops,
        "params": measurement.params,
        "latency_ms": measurement.latency_ms,
        "inside_window": constraint.admits(measurement),
    }


def evaluate_subnet(cfg: Mapping[str, Any], constraint: Constraint, finetune: bool) -> Dict[str, Any]:
    """The subnet's inherited metric (and after finetuning: finetune_iters at finetune_lr_scale x the learning
    rate), exported into `<save_dir>/subnet_<tokens>[_finetuned]/`."""
    task = supernet_task(cfg, "finetune_subnet" if finetune else "evaluate_subnet")
    tokens = subnet_tokens_of(cfg, task.space)
    model = task.build(tokens)
    result = measured_subnet(task, constraint, tokens)
    metric = task.adapter.metric
    result[f"inherited_{metric}"] = task.train_and_evaluate(model)
    name = "subnet_" + "_".join(map(str, tokens))
    if finetune:
        seed_everything(int(cfg["seed"]))
        subnet = task.space.decode(tokens)
        result[f"finetuned_{metric}"] = task.adapter.finetune(model, subnet.image_size)
        result["finetune_iters"] = int(cfg["finetune_iters"])
        name += "_finetuned"
    result["exported"] = task.export(tokens, model, os.path.join(cfg["save_dir"], name))
    return result


def load_subnet(config_path: str, subnet_path: str, weights: str, overrides: Sequence[str] = ()) -> paddle.nn.Layer:
    """The plain model a subnet file describes, built by its supernet from the search config, with its weights
    (every key present, no extra one)."""
    cfg = load_oneshot_config(config_path, overrides)
    with open(subnet_path, encoding="utf-8") as f:
        recorded: Dict[str, Any] = yaml.safe_load(f) or {}
    if recorded.get("supernet") != cfg["supernet"]:
        raise ConfigError(
            f"{subnet_path} is a subnet of {recorded.get('supernet')}, the config's supernet is {cfg['supernet']}"
        )
    supernet = build_supernet(cfg)
    subnet = supernet.space.decode(supernet.space.encode(recorded["subnet_settings"], recorded.get("image_size")))
    model = supernet.plain_model(subnet)
    state = paddle.load(weights)
    missing, extra = sorted(set(model.state_dict()) - set(state)), sorted(set(state) - set(model.state_dict()))
    if missing or extra:
        raise ConfigError(f"{weights} does not fit the subnet: missing {missing[:3]}, extra {extra[:3]}")
    model.set_state_dict(state)
    return model
