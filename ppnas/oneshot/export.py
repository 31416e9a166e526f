"""A subnet of the supernet as a stock PaddleDetection BlazeFace: sliced weights + the detection search's fragment.

The weights of ppdet's `BlazeFace` at a subnet are, key by key, a slice of the supernet's weight of the same
name (first c channels of every axis but the kernel's, whose centre is cropped), with one rename: with 5x5 in
the space, the first conv of a 3x3 pair (`..._dw_1`) is the 5x5 conv (`..._dw`).
"""

from typing import Any, Dict, Mapping, Sequence

import numpy as np
import paddle

from ppnas.errors import ConfigError
from ppnas.oneshot.supernet import BlazeFaceSupernet


def _source_key(key: str, supernet_keys: Mapping[str, Any]) -> str:
    if key in supernet_keys:
        return key
    renamed = key.replace("_dw_1.", "_dw.")
    if renamed in supernet_keys:
        return renamed
    raise ConfigError(f"the supernet has no weight for {key}: it was built for another space or kernel_choices")


def slice_to(value: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The first n of each channel axis; the centre of the kernel axes (2 and 3 of a conv weight)."""
    index = []
    for axis, size in enumerate(shape):
        offset = (value.shape[axis] - size) // 2 if axis >= 2 else 0
        index.append(slice(offset, offset + size))
    return value[tuple(index)]


def subnet_state_dict(supernet: BlazeFaceSupernet, model: paddle.nn.Layer) -> Dict[str, np.ndarray]:
    """`model`'s state dict (a ppdet BlazeFace at a subnet) filled from the supernet, every key matched."""
    source = supernet.state_dict()
    out = {}
    for key, target in model.state_dict().items():
        value = source[_source_key(key, source)].numpy()
        if any(t > s for t, s in zip(target.shape, value.shape)) or len(target.shape) != len(value.shape):
            raise ConfigError(f"{key}: the subnet needs {list(target.shape)}, the supernet has {list(value.shape)}")
        out[key] = slice_to(value, target.shape)
    return out
