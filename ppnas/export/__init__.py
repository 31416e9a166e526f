"""Export a found model for deployment: a Paddle Inference model, its family's deploy config, optionally ONNX.

One adapter per model family (`ppnas/export/<family>.py`) rebuilds the found network from the search's
structure file and weights and says how its deploy config is written; everything else (saving, checking
Paddle Inference against dygraph, ONNX against Paddle Inference) is shared (`ppnas/export/run.py`).
Adapters are named here as "module:function" and imported only when used, so that exporting a detector
does not import PaddleSeg and the report can name families without importing either.

Adding a family is one entry below and one small module whose function takes an `ExportRequest` and
returns an `Exportable` (ppnas/export/model.py); a one-image network can use `image_model`.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import importlib
from typing import Callable, Dict

from ppnas.errors import ConfigError

FAMILIES: Dict[str, str] = {
    "detection": "ppnas.export.detection:prepare",
    "segmentation": "ppnas.export.segmentation:prepare",
}


def family_names() -> list:
    return sorted(FAMILIES)


def adapter(family: str) -> Callable:
    """The `prepare(request) -> Exportable` function of `family`."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family '{family}'; known families: {', '.join(family_names())}")
    module_name, _, function_name = FAMILIES[family].partition(":")
    return getattr(importlib.import_module(module_name), function_name)
