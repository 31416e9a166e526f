"""A tiny FBNet config (on conftest's `tiny_landmarks` set), shared by tests/test_fbnet_*.py and test_landmarks_*.py."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import pathlib
from typing import Any, Dict

import yaml

TRAIN, TEST, SIDE = 10, 4, 32
TINY_SUPERNET: Dict[str, Any] = {
    "input_size": SIDE,
    "stem_channels": 8,
    "head_channels": 16,
    "stages": [
        {"name": "s0", "layers": 1, "channels": 8, "stride": 1, "candidates": ["mb_k3_res", "sep_k3", "gh_k3"]},
        {"name": "s1", "layers": 2, "channels": 16, "stride": 2, "candidates": ["mb_k3_e2_res", "mb_k5_res_se"]},
    ],
    "baseline": ["mb_k3_res", "mb_k3_e2_res", "mb_k3_e2_res"],
}
# the same with searched stem widths, entry blocks and head widths, and a skip candidate in s1
TINY_SEARCHED: Dict[str, Any] = {
    **TINY_SUPERNET,
    "stem_channels": [4, 8],
    "entry": ["mb_k3_e2_res", "sep_k3"],
    "head_channels": [8, 16],
    "stages": [
        TINY_SUPERNET["stages"][0],
        {**TINY_SUPERNET["stages"][1], "candidates": ["mb_k3_e2_res", "mb_k5_res_se", "skip"]},
    ],
    "baseline": ["stem8_mb_k3_e2_res", "mb_k3_res", "mb_k3_e2_res", "mb_k3_e2_res", "head16"],
}


def tiny_config(folder: pathlib.Path, data: pathlib.Path, **blocks: Any) -> pathlib.Path:
    """A config file in `folder`: tiny supernet, 2 epochs (1 warm-up), batch 4; `blocks` replace/merge keys."""
    cfg: Dict[str, Any] = {
        "save_dir": str(folder / "out"),
        "seed": 3,
        "Data": {"dataset_dir": str(data), "image_size": SIDE, "batch_size": 4, "holdout_fraction": 0.3},
        "Supernet": TINY_SUPERNET,
        "Search": {"epochs": 2, "warmup_epochs": 1, "nas_lr": 0.1},
        "Retrain": {"epochs": 1},
    }
    for key, value in blocks.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    path = folder / "fbnet.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path
