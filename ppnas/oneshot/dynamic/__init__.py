"""Dynamic ops and blocks for supernets: largest weights held, a subnet slices them (see ops.py, blocks.py)."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
from ppnas.oneshot.dynamic.blocks import DynamicConvBN, DynamicInvertedResidual, DynamicStage
from ppnas.oneshot.dynamic.convert import make_dynamic, plain_copy
from ppnas.oneshot.dynamic.ops import (
    BatchStatistics,
    DynamicBatchNorm2D,
    DynamicConv2D,
    DynamicDepthwiseConv2D,
    DynamicLinear,
    Elastic,
    slice_to,
    sliced_state,
)

__all__ = [
    "BatchStatistics",
    "DynamicBatchNorm2D",
    "DynamicConv2D",
    "DynamicConvBN",
    "DynamicDepthwiseConv2D",
    "DynamicInvertedResidual",
    "DynamicLinear",
    "DynamicStage",
    "Elastic",
    "make_dynamic",
    "plain_copy",
    "slice_to",
    "sliced_state",
]
