"""A subnet's weights: the supernet's, key by key, sliced to the plain model's shapes (the first channels of every
axis, the centre of the kernel); a key that differs between the two goes through the supernet's `source_key`."""

from typing import Dict

import numpy as np
import paddle

from ppnas.errors import ConfigError
from ppnas.oneshot.dynamic.ops import slice_to
from ppnas.oneshot.space import Subnet
from ppnas.oneshot.supernet import Supernet


def subnet_state_dict(supernet: Supernet, model: paddle.nn.Layer, subnet: Subnet) -> Dict[str, np.ndarray]:
    """`model`'s state dict (the plain model of `subnet`) filled from the supernet, every key matched."""
    source = supernet.state_dict()
    out = {}
    for key, target in model.state_dict().items():
        own = supernet.source_key(key, subnet)
        if own not in source:
            raise ConfigError(f"the supernet has no weight for {key}: it was built for another space")
        value = source[own].numpy()
        try:
            out[key] = slice_to(value, target.shape)
        except ValueError:
            raise ConfigError(
                f"{key}: the subnet needs {list(target.shape)}, the supernet has {list(value.shape)}"
            ) from None
    return out
