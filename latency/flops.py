"""FLOPs exactly as `paddle.flops` counts them, taken from the static trace the latency estimate makes.

Why not paddle.flops itself: it runs a real forward pass (about 130 ms for a BlazeFace candidate at 640),
more than the rest of the constraint check; the trace has every shape without computing anything.

The rules are paddle.flops's (paddle/hapi/dynamic_flops.py, paddle 2.6). It hooks the layers that have no
sublayers and whose exact class (not a subclass) is one of these, and adds per call, with x the first
positional input and y the output:
- Conv1D/2D/3D and their transposes: numel(y) * (x.shape[1] / groups * prod(kernel) + 1 if it has a bias)
- BatchNorm2D and BatchNorm (eval mode): 2 * numel(x)
- Linear: in_features * numel(y)
- AvgPool1D/2D/3D: numel(y)
- AdaptiveAvgPool1D/2D/3D: (prod(x spatial // y spatial) + 1) * numel(y)
- LeakyReLU: numel(x)
- ReLU, ReLU6, Dropout: 0
Everything else counts 0: other layer classes (max pools, other activations, other norms), functional calls
(F.relu, paddle.add, F.interpolate, paddle.concat, ...) and the ops a counted layer runs beyond its rule.
So the rules are applied to layer calls, not ops: during the trace a post-hook on each counted layer
records its input and output variables, whose shapes come from the traced program. A forward that needs
the `paddle.jit.to_static` fallback (see latency.opkeys) gets both branches of a tensor-dependent `if`
converted, so its counted layers can differ from the one branch a real forward takes.
"""

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import paddle
from paddle import nn

from latency.opkeys import Trace, trace

Shape = List[int]


def _numel(shape: Shape) -> int:
    return int(np.prod(shape))


def _conv(layer: nn.Layer, x: Shape, y: Shape) -> int:
    kernel_ops = np.prod(layer.weight.shape[2:])
    bias_ops = 1 if layer.bias is not None else 0
    return abs(int(_numel(y) * (x[1] / layer._groups * kernel_ops + bias_ops)))


def _batch_norm(layer: nn.Layer, x: Shape, y: Shape) -> int:
    return 2 * _numel(x)


def _linear(layer: nn.Layer, x: Shape, y: Shape) -> int:
    return abs(int(layer.weight.shape[0] * _numel(y)))


def _avg_pool(layer: nn.Layer, x: Shape, y: Shape) -> int:
    return _numel(y)


def _adaptive_avg_pool(layer: nn.Layer, x: Shape, y: Shape) -> int:
    kernel = np.array(x[2:]) // np.array(y[2:])
    return abs(int((np.prod(kernel) + 1) * _numel(y)))


def _leaky_relu(layer: nn.Layer, x: Shape, y: Shape) -> int:
    return _numel(x)


# paddle.flops's register_hooks minus the classes it counts as 0
RULES: Dict[type, Callable[[nn.Layer, Shape, Shape], int]] = {
    **dict.fromkeys(
        (nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose), _conv
    ),
    nn.BatchNorm2D: _batch_norm,
    nn.BatchNorm: _batch_norm,
    nn.Linear: _linear,
    **dict.fromkeys((nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D), _avg_pool),
    **dict.fromkeys((nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D), _adaptive_avg_pool),
    nn.LeakyReLU: _leaky_relu,
}


@dataclass
class LayerCall:
    layer: nn.Layer
    x: str  # names of the static variables in and out
    y: str
    program: Any  # the program being built: a to_static fallback starts a new one


@contextlib.contextmanager
def recorded_calls(model: nn.Layer) -> Iterator[List[LayerCall]]:
    """Record every call of a counted layer of `model` while it is traced (see the module docstring)."""
    calls: List[LayerCall] = []

    def record(layer: nn.Layer, inputs: Tuple[Any, ...], output: Any) -> None:
        calls.append(LayerCall(layer, inputs[0].name, output.name, paddle.static.default_main_program()))

    handles = [
        sub.register_forward_post_hook(record)
        for sub in model.sublayers(include_self=True)
        if type(sub) in RULES and not list(sub.children())
    ]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def count_calls(calls: Sequence[LayerCall], traced: Trace) -> int:
    """paddle.flops's total over the calls of the last program built (an aborted first attempt is dropped)."""
    last = calls[-1].program if calls else None
    return sum(RULES[type(c.layer)](c.layer, traced.shape(c.x), traced.shape(c.y)) for c in calls if c.program is last)


def trace_with_flops(layer: nn.Layer, input_shape: Sequence[int]) -> Tuple[Trace, int]:
    """One trace of `layer` on an image of `input_shape` and its FLOPs as paddle.flops counts them."""
    with recorded_calls(layer) as calls:
        traced = trace(layer, input_shape)
    return traced, count_calls(calls, traced)


def count_flops(layer: nn.Layer, input_shape: Sequence[int]) -> int:
    """FLOPs of `layer` on one image of `input_shape`, equal to paddle.flops's (no forward pass)."""
    return trace_with_flops(layer, input_shape)[1]
