"""Dynamic blocks built from the dynamic ops (United-Perception's `dynamic_blocks`, in Paddle dygraph).

- DynamicConvBN: conv (elastic out channels, kernel, groups; or depthwise) + BatchNorm + activation, with the
  sublayer names of PaddleDetection's and PaddleSeg's ConvBNLayer (`_conv`, `_batch_norm`);
- DynamicInvertedResidual: MobileNetV2's unit with elastic expansion ratio, kernel and output channels, with
  the names of PaddleSeg's InvertedResidualUnit (`_expand_conv`, `_bottleneck_conv`, `_linear_conv`);
- DynamicStage: a stage of blocks with elastic depth (the first `active_depth` run).
Settings are set on the block (`active_*`, None = the largest) before a call, as United-Perception's
`set_active_subnet` does. `plain()` is the real library layer of the active setting (PaddleDetection's
ConvBNLayer, PaddleSeg's InvertedResidualUnit, a paddle Sequential), with the same state-dict keys.
"""

from typing import Any, List, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppnas.oneshot.dynamic.ops import DynamicBatchNorm2D, DynamicConv2D, DynamicDepthwiseConv2D, Elastic

ACTIVATIONS = (None, "relu", "relu6", "leaky", "hard_swish")  # PaddleDetection ConvBNLayer's names


def activate(x: paddle.Tensor, act: Optional[str]) -> paddle.Tensor:
    if act == "relu":
        return F.relu(x)
    if act == "relu6":
        return F.relu6(x)
    if act == "leaky":
        return F.leaky_relu(x)
    if act == "hard_swish":
        return x * F.relu6(x + 3) / 6.0
    return x


class DynamicConvBN(nn.Layer, Elastic):
    """Conv (no bias) + BN + activation; `depthwise` convs follow their input's width."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        depthwise: bool = False,
        act: Optional[str] = "relu",
        weight_attr: Any = None,
    ) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}")
        self.act = act
        if depthwise:
            self._conv: DynamicConv2D = DynamicDepthwiseConv2D(
                in_channels, kernel_size, stride, weight_attr=weight_attr
            )
        else:
            self._conv = DynamicConv2D(
                in_channels, out_channels, kernel_size, stride, groups=groups, weight_attr=weight_attr
            )
        self._batch_norm = DynamicBatchNorm2D(out_channels)

    @property
    def active_out_channels(self) -> Optional[int]:
        return self._conv.active_out_channels

    @active_out_channels.setter
    def active_out_channels(self, value: Optional[int]) -> None:
        self._conv.active_out_channels = value

    @property
    def active_kernel_size(self) -> Optional[int]:
        return self._conv.active_kernel_size

    @active_kernel_size.setter
    def active_kernel_size(self, value: Optional[int]) -> None:
        self._conv.active_kernel_size = value

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return activate(self._batch_norm(self._conv(x)), self.act)

    def plain(self) -> nn.Layer:
        from ppdet.modeling.backbones.blazenet import ConvBNLayer  # the same three steps, names and act names

        conv = self._conv.plain()
        return ConvBNLayer(
            conv._in_channels,
            conv._out_channels,
            int(conv._kernel_size[0]),
            stride=conv._stride,
            padding=conv._padding,
            num_groups=conv._groups,
            act=self.act,
        )


class DynamicInvertedResidual(nn.Layer, Elastic):
    """MobileNetV2's unit: 1x1 expand (relu6), depthwise k x k (relu6), 1x1 linear; `shortcut` adds the input.

    The expanded width is round(input channels x active_expand_ratio), as PaddleSeg's InvertedResidualUnit
    computes it; `active_kernel_size` and `active_out_channels` set the depthwise kernel and the output width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        kernel_size: int,
        shortcut: bool = False,
    ) -> None:
        super().__init__()
        mid = int(round(in_channels * expand_ratio))
        self.stride, self.shortcut, self.max_expand_ratio = stride, shortcut, expand_ratio
        self._expand_conv = DynamicConvBN(in_channels, mid, 1, act="relu6")
        self._bottleneck_conv = DynamicConvBN(mid, mid, kernel_size, stride, depthwise=True, act="relu6")
        self._linear_conv = DynamicConvBN(mid, out_channels, 1, act=None)
        self.active_expand_ratio: Optional[float] = None
        self.active_kernel_size: Optional[int] = None
        self.active_out_channels: Optional[int] = None
        self.active_in_channels = in_channels

    def forward_with_depthwise(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """The unit's output and its depthwise output (DeepLabV3+ taps the latter as its decoder shortcut)."""
        self.active_in_channels = x.shape[1]
        ratio = self.active_expand_ratio or self.max_expand_ratio
        self._expand_conv.active_out_channels = int(round(x.shape[1] * ratio))
        self._bottleneck_conv.active_kernel_size = self.active_kernel_size
        self._linear_conv.active_out_channels = self.active_out_channels
        depthwise = self._bottleneck_conv(self._expand_conv(x))
        y = self._linear_conv(depthwise)
        return (x + y if self.shortcut else y), depthwise

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.forward_with_depthwise(x)[0]

    def plain(self) -> nn.Layer:
        from paddleseg.models.backbones.mobilenetv2 import InvertedResidualUnit

        class Unit(InvertedResidualUnit):
            """PaddleSeg's unit with its shortcut flag bound, so that it takes one input as the others do."""

            def forward(self, x: paddle.Tensor) -> paddle.Tensor:
                return super().forward(x, ifshortcut=shortcut)

        shortcut = self.shortcut
        kernel = self._bottleneck_conv._conv.plain()._kernel_size[0]
        return Unit(
            num_channels=self.active_in_channels,
            num_in_filter=self.active_in_channels,
            num_filters=self._linear_conv._conv.plain()._out_channels,
            stride=self.stride,
            filter_size=kernel,
            padding=(kernel - 1) // 2,
            expansion_factor=self.active_expand_ratio or self.max_expand_ratio,
            name=paddle.utils.unique_name.generate("dynamic_unit"),  # PaddleSeg names parameters after it
        )


class DynamicStage(nn.LayerList, Elastic):
    """Blocks run in order; a subnet runs the first `active_depth` of them (None: all)."""

    def __init__(self, blocks: Sequence[nn.Layer]) -> None:
        super().__init__(blocks)
        self.active_depth: Optional[int] = None

    def active_blocks(self) -> List[nn.Layer]:
        return list(self)[: self.active_depth or len(self)]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for block in self.active_blocks():
            x = block(x)
        return x

    def plain(self) -> nn.Sequential:
        return nn.Sequential(*(block.plain() for block in self.active_blocks()))
