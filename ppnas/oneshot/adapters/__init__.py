"""The task side of the one-shot search: data, loss, distillation and metric of each task, for any supernet.

A supernet's `task` names its adapter; every adapter offers the same calls (see detection.py), so the training
rule, calibration, evaluation and phases are written once.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import importlib
from typing import Any, Mapping

ADAPTERS = {
    "detection": "ppnas.oneshot.adapters.detection:DetectionAdapter",
    "segmentation": "ppnas.oneshot.adapters.segmentation:SegmentationAdapter",
}


def adapter_class(cfg: Mapping[str, Any]) -> Any:
    """The adapter class of the config's task (imported on use: a detection search does not import PaddleSeg)."""
    module, _, name = ADAPTERS[cfg["task"]].partition(":")
    return getattr(importlib.import_module(module), name)


def adapter_for(cfg: Mapping[str, Any]) -> Any:
    return adapter_class(cfg)(cfg)
