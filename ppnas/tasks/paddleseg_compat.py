"""Make paddleseg 2.7 (and 2.8) run on paddle 2.6, whose reductions return 0-D tensors.

Two places break (../shared/notes/PILOTS.md, "Segmentation"):
- `paddleseg.utils.metrics.calculate_area` concatenates per-class 0-D sums: `paddle.concat` refuses 0-D
  inputs, so every `paddleseg.core.evaluate` fails. Replaced by the same computation with `paddle.stack`.
- `paddleseg.core.train` logs `loss.numpy()[0]`, an IndexError on a 0-D loss. Its `loss_computation` is
  wrapped to return shape-[1] losses, the shape paddle < 2.5 gave.
`apply()` patches both in place and is idempotent; every ppnas module that trains or evaluates with
PaddleSeg calls it first.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import functools
import importlib
from typing import Any, Callable, List, Tuple

import paddle
from paddleseg.utils import metrics

# `paddleseg.core.train` the attribute is the function (paddleseg.core re-exports it); we need the module.
paddleseg_train = importlib.import_module("paddleseg.core.train")


def calculate_area(
    pred: paddle.Tensor, label: paddle.Tensor, num_classes: int, ignore_index: int = 255
) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """PaddleSeg's calculate_area (intersection, prediction and label pixels per class), 0-D safe."""
    if len(pred.shape) == 4:
        pred = paddle.squeeze(pred, axis=1)
    if len(label.shape) == 4:
        label = paddle.squeeze(label, axis=1)
    if pred.shape != label.shape:
        raise ValueError(f"Shape of `pred` and `label should be equal, but there are {pred.shape} and {label.shape}.")
    mask = label != ignore_index
    pred_area, label_area, intersect_area = [], [], []
    for i in range(num_classes):
        pred_i = paddle.logical_and(pred == i, mask)
        label_i = label == i
        pred_area.append(paddle.sum(paddle.cast(pred_i, "int32")))
        label_area.append(paddle.sum(paddle.cast(label_i, "int32")))
        intersect_area.append(paddle.sum(paddle.cast(paddle.logical_and(pred_i, label_i), "int32")))
    return paddle.stack(intersect_area), paddle.stack(pred_area), paddle.stack(label_area)


def _one_d_losses(loss_computation: Callable[..., List[paddle.Tensor]]) -> Callable[..., List[paddle.Tensor]]:
    @functools.wraps(loss_computation)
    def wrapper(*args: Any, **kwargs: Any) -> List[paddle.Tensor]:
        return [loss.reshape([1]) for loss in loss_computation(*args, **kwargs)]

    return wrapper


def apply() -> None:
    """Patch paddleseg for 0-D tensors (once per process)."""
    if metrics.calculate_area is calculate_area:
        return
    metrics.calculate_area = calculate_area
    paddleseg_train.loss_computation = _one_d_losses(paddleseg_train.loss_computation)
