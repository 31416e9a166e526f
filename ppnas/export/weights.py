"""Load a search's weights into the rebuilt structure, refusing any that do not fit it."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
from typing import Any, Dict

import paddle

from ppnas.errors import DataError, ExportError


def _shape(value: Any) -> list:
    return list(value.shape)


def check_weights(expected: Dict[str, Any], found: Dict[str, Any], weights: str, structure: str) -> None:
    """The first parameter (in the model's order) whose shape differs, is missing or is extra is an error."""
    for name, param in expected.items():
        if name not in found:
            raise ExportError(
                f"{weights} does not match {structure}: parameter {name} (shape {_shape(param)}) is missing"
            )
        if _shape(found[name]) != _shape(param):
            raise ExportError(
                f"{weights} does not match {structure}: parameter {name} has shape {_shape(found[name])} "
                f"in the weights, {_shape(param)} in the structure"
            )
    extra = [name for name in found if name not in expected]
    if extra:
        raise ExportError(
            f"{weights} does not match {structure}: {len(extra)} parameters the structure lacks, first {extra[0]} "
            f"(shape {_shape(found[extra[0]])})"
        )


def load_weights(model: paddle.nn.Layer, weights: str, structure: str) -> None:
    """`paddle.load(weights)` into `model`, after checking every name and shape (set_state_dict only warns)."""
    try:
        state = paddle.load(weights)
    except Exception as err:  # paddle.load raises bare ValueError/pickle errors on a file that is not weights
        raise DataError(f"{weights} is not a Paddle weights file (.pdparams): {err}") from None
    if not isinstance(state, dict):
        raise DataError(f"{weights} is not a Paddle weights file (.pdparams): it holds a {type(state).__name__}")
    check_weights(model.state_dict(), state, weights, structure)
    model.set_state_dict(state)
