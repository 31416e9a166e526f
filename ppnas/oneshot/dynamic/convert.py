"""Between plain and dynamic layers, in both directions.

`make_dynamic(layer)` swaps, in place, every Conv2D, BatchNorm2D / BatchNorm and Linear under `layer` for its
dynamic op, keeping the very same parameters (names, values, learning-rate attributes). A library part placed
after an elastic backbone (PaddleSeg's DeepLabV3+ head, PaddleDetection's FaceHead) then follows the width of
whatever reaches it, with nothing else changed: PaddleSlim's OFA `Convert` does this too, but its BatchNorm
latches train/eval mode and its export keeps uncut weights (see ppnas/oneshot/dynamic/ops.py).

`plain_copy(layer)` is the other way: a deep copy of a supernet with every dynamic op or block replaced by its
`plain()` layer at the active setting (run the supernet at the subnet once first: input widths are read then).
"""

import copy
from typing import Optional

import paddle.nn as nn

from ppnas.oneshot.dynamic.ops import (
    DynamicBatchNorm2D,
    DynamicConv2D,
    DynamicDepthwiseConv2D,
    DynamicLinear,
    Elastic,
)


def _dynamic_conv(conv: nn.Conv2D) -> DynamicConv2D:
    kernel = int(conv._kernel_size[0])
    bias = None if conv.bias is not None else False
    depthwise = conv._groups > 1 and conv._groups == conv._in_channels == conv._out_channels
    if depthwise:
        new: DynamicConv2D = DynamicDepthwiseConv2D(
            conv._in_channels, kernel, conv._stride, conv._padding, conv._dilation, bias_attr=bias
        )
    else:
        new = DynamicConv2D(
            conv._in_channels,
            conv._out_channels,
            kernel,
            conv._stride,
            conv._padding,
            conv._dilation,
            conv._groups,
            bias_attr=bias,
        )
    new.weight = conv.weight
    if conv.bias is not None:
        new.bias = conv.bias
    return new


def _dynamic_norm(norm: nn.Layer) -> DynamicBatchNorm2D:
    if getattr(norm, "_act", None):
        raise ValueError(f"a BatchNorm with a fused activation ({norm._act}) has no dynamic form")
    new = DynamicBatchNorm2D(norm.weight.shape[0], momentum=norm._momentum, epsilon=norm._epsilon)
    new.weight, new.bias, new._mean, new._variance = norm.weight, norm.bias, norm._mean, norm._variance
    return new


def _dynamic_linear(linear: nn.Linear) -> DynamicLinear:
    new = DynamicLinear(*linear.weight.shape, bias_attr=None if linear.bias is not None else False)
    new.weight = linear.weight
    if linear.bias is not None:
        new.bias = linear.bias
    return new


def _dynamic_of(layer: nn.Layer) -> Optional[nn.Layer]:
    if isinstance(layer, Elastic):
        return None
    if type(layer) is nn.Conv2D:
        return _dynamic_conv(layer)
    if type(layer) in (nn.BatchNorm2D, nn.BatchNorm):
        return _dynamic_norm(layer)
    if type(layer) is nn.Linear:
        return _dynamic_linear(layer)
    return None


def make_dynamic(layer: nn.Layer) -> nn.Layer:
    """Swap the plain convs, BatchNorms and linears under `layer` for dynamic ones (in place); returns `layer`."""
    for name, child in list(layer._sub_layers.items()):
        swapped = _dynamic_of(child)
        if swapped is not None:
            swapped.training = child.training  # a head already put in eval mode stays in it
            layer._sub_layers[name] = swapped
        else:
            make_dynamic(child)
    return layer


def _replace_elastic(layer: nn.Layer) -> None:
    for name, child in list(layer._sub_layers.items()):
        if isinstance(child, Elastic):
            layer._sub_layers[name] = child.plain()
        else:
            _replace_elastic(child)


def plain_copy(layer: nn.Layer) -> nn.Layer:
    """A copy of `layer` in which every dynamic op and block is its plain layer at the active setting."""
    out = copy.deepcopy(layer)
    _replace_elastic(out)
    return out
