"""A tiny segmentation search config on generated Cityscapes-layout data, shared by the tests/test_seg_*.py."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import pathlib
from typing import Any, Dict

import yaml

from ppnas.demo.cityscapes import NUM_CLASSES, make_cityscapes_demo

TRAIN_IMAGES, VAL_IMAGES, SIDE, BATCH = 8, 4, 64, 4  # 2 iterations per epoch


def make_tiny_config(folder: pathlib.Path, **top: Any) -> pathlib.Path:
    """Data under folder/data, config at folder/tiny.yaml with relative dataset paths; `top` sets top-level keys."""
    make_cityscapes_demo(str(folder / "data"), TRAIN_IMAGES, VAL_IMAGES, (SIDE, SIDE), seed=1)
    dataset = {"type": "Dataset", "dataset_root": "data", "num_classes": NUM_CLASSES}
    cfg: Dict[str, Any] = {
        "batch_size": BATCH,
        "epochs": 2,
        "train_dataset": {
            **dataset,
            "mode": "train",
            "train_path": "data/train_list.txt",
            "transforms": [
                {"type": "RandomHorizontalFlip"},
                {"type": "RandomPaddingCrop", "crop_size": [SIDE, SIDE]},
                {"type": "Normalize"},
            ],
        },
        "val_dataset": {
            **dataset,
            "mode": "val",
            "val_path": "data/val_list.txt",
            "transforms": [{"type": "Normalize"}],
        },
        "optimizer": {"type": "sgd", "momentum": 0.9, "weight_decay": 4.0e-5},
        "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.05, "end_lr": 0.0, "power": 0.9},
        "loss": {"types": [{"type": "CrossEntropyLoss"}], "coef": [1]},
        "model": {"type": "DeepLabV3P", "backbone": {"type": "MobileNetV2SegBackbone"}, "num_classes": NUM_CLASSES},
        "SLIM": {"NAS_SEARCH_STEPS": 2, "NAS_SPACE_NAME": "MobileNetV2SpaceSeg", "NAS_SEED": 0},
    }
    cfg.update(top)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


# the trailing KEY VALUE pairs of the issue's command line
ISSUE_PAIRS = [
    "SLIM.NAS_PORT",
    "23333",
    "SLIM.NAS_ADDRESS",
    "",
    "SLIM.NAS_SEARCH_STEPS",
    "2",
    "SLIM.NAS_START_EVAL_EPOCH",
    "-1",
    "SLIM.NAS_IS_SERVER",
    "True",
    "SLIM.NAS_SPACE_NAME",
    "MobileNetV2SpaceSeg",
]
