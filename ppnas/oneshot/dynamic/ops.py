"""Dynamic ops: Paddle layers held at their largest size, run by a subnet at a smaller one (United-Perception's
`dynamic_ops`, in Paddle dygraph).

Each op keeps the weight of its largest setting and slices it per call: the first `c` output (and input)
channels, the centre `k x k` of the kernel, the per-group input channels of `g` groups. The input width is
read from the input itself (whatever the previous op produced) and remembered, so `plain()` can build the
Paddle layer of the active setting and `subnet_state_dict()` can fill it: the dynamic op at a setting and
that plain layer with the sliced weights compute the same function (tested).

Parameter names are Paddle's own (`weight`, `bias`, `_mean`, `_variance`), so a supernet whose sublayers mirror
a plain model's layout shares its state-dict keys and a subnet's weights are, key by key, a slice.
"""

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

Padding = Union[int, str]


def slice_to(value: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The first n of every axis; on the kernel axes (2 and 3 of a conv weight) the centre."""
    if len(value.shape) != len(shape) or any(t > s for t, s in zip(shape, value.shape)):
        raise ValueError(f"cannot slice {list(value.shape)} to {list(shape)}")
    index = []
    for axis, size in enumerate(shape):
        offset = (value.shape[axis] - size) // 2 if axis >= 2 else 0
        index.append(slice(offset, offset + size))
    return value[tuple(index)]


def sliced_state(source: Mapping[str, Any], target: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """`target`'s state dict filled with slices of `source`'s values of the same keys."""
    return {key: slice_to(np.asarray(source[key].numpy()), value.shape) for key, value in target.items()}


class Elastic:
    """What every dynamic op and block offers: its plain Paddle layer at the active setting, and the slice of its
    weights that layer takes."""

    def plain(self) -> nn.Layer:
        raise NotImplementedError

    def subnet_state_dict(self) -> Dict[str, np.ndarray]:
        """The weights of `plain()`, sliced out of this op's (run it once first: the input width is read then)."""
        return sliced_state(self.state_dict(), self.plain().state_dict())


def _centre(weight: paddle.Tensor, kernel: int) -> paddle.Tensor:
    offset = (weight.shape[-1] - kernel) // 2
    return weight[:, :, offset : offset + kernel, offset : offset + kernel]


class DynamicConv2D(nn.Conv2D, Elastic):
    """Conv2D with elastic output channels (`active_out_channels`), kernel (`active_kernel_size`, the centre of
    the largest) and groups (`active_groups`); input channels are those of the input. `None` means the largest.
    `active_stride` overrides the stride (PaddleDetection's BlazeBlock moves it to a second conv at 3x3).

    Built with the smallest group count (the widest per-group input); `padding` None keeps 'same' padding
    ((k - 1) / 2 x dilation) at every kernel size, as United-Perception's DynamicConv2d does.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: Optional[Padding] = None,
        dilation: int = 1,
        groups: int = 1,
        weight_attr: Any = None,
        bias_attr: Any = False,
    ) -> None:
        same = (kernel_size - 1) // 2 * dilation
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=same if padding is None else padding,
            dilation=dilation,
            groups=groups,
            weight_attr=weight_attr,
            bias_attr=bias_attr,
        )
        self.active_out_channels: Optional[int] = None
        self.active_kernel_size: Optional[int] = None
        self.active_groups: Optional[int] = None
        self.active_stride: Optional[int] = None
        self.active_in_channels = in_channels

    @property
    def max_kernel(self) -> int:
        return int(self._kernel_size[0])

    def _setting(self, in_channels: int) -> Tuple[int, int, int]:
        """(output channels, kernel, groups) of the active setting for an input of `in_channels`."""
        return (
            self.active_out_channels or self._out_channels,
            self.active_kernel_size or self.max_kernel,
            self.active_groups or self._groups,
        )

    def _padding_for(self, kernel: int) -> Padding:
        """The largest kernel's padding less what the cropped border took (keeps 'same' convs 'same')."""
        if isinstance(self._padding, str):
            return self._padding
        shrink = (self.max_kernel - kernel) // 2 * int(self._dilation[0])
        if isinstance(self._padding, int):
            return self._padding - shrink
        return [int(p) - shrink for p in self._padding]

    def active_weight(self, in_channels: int) -> paddle.Tensor:
        out, kernel, groups = self._setting(in_channels)
        return _centre(self.weight[:out, : in_channels // groups], kernel)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        in_channels = x.shape[1]
        self.active_in_channels = in_channels
        out, kernel, groups = self._setting(in_channels)
        bias = None if self.bias is None else self.bias[:out]
        return F.conv2d(
            x,
            self.active_weight(in_channels),
            bias,
            stride=self.active_stride or self._stride,
            padding=self._padding_for(kernel),
            dilation=self._dilation,
            groups=groups,
        )

    def plain(self) -> nn.Conv2D:
        out, kernel, groups = self._setting(self.active_in_channels)
        return nn.Conv2D(
            self.active_in_channels,
            out,
            kernel,
            stride=self.active_stride or self._stride,
            padding=self._padding_for(kernel),
            dilation=self._dilation,
            groups=groups,
            bias_attr=None if self.bias is not None else False,
        )


class DynamicDepthwiseConv2D(DynamicConv2D):
    """Depthwise Conv2D: as many output channels and groups as the input has channels; elastic kernel."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: Optional[Padding] = None,
        dilation: int = 1,
        weight_attr: Any = None,
        bias_attr: Any = False,
    ) -> None:
        super().__init__(channels, channels, kernel_size, stride, padding, dilation, channels, weight_attr, bias_attr)

    def _setting(self, in_channels: int) -> Tuple[int, int, int]:
        return in_channels, self.active_kernel_size or self.max_kernel, in_channels


class DynamicLinear(nn.Linear, Elastic):
    """Linear with elastic output features (`active_out_features`); input features are those of the input.
    Paddle's Linear weight is [in, out]: both axes are sliced from the front."""

    def __init__(self, in_features: int, out_features: int, weight_attr: Any = None, bias_attr: Any = None) -> None:
        super().__init__(in_features, out_features, weight_attr=weight_attr, bias_attr=bias_attr)
        self.active_out_features: Optional[int] = None
        self.active_in_features = in_features

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        self.active_in_features = x.shape[-1]
        out = self.active_out_features or self.weight.shape[1]
        bias = None if self.bias is None else self.bias[:out]
        return F.linear(x, self.weight[: self.active_in_features, :out], bias)

    def plain(self) -> nn.Linear:
        out = self.active_out_features or self.weight.shape[1]
        return nn.Linear(self.active_in_features, out, bias_attr=None if self.bias is not None else False)


class BatchStatistics:
    """Running sums of per-batch means and biased variances (BN calibration averages them)."""

    def __init__(self) -> None:
        self.mean: Optional[paddle.Tensor] = None
        self.variance: Optional[paddle.Tensor] = None
        self.batches = 0

    def add(self, mean: paddle.Tensor, variance: paddle.Tensor) -> None:
        self.mean = mean if self.mean is None else self.mean + mean
        self.variance = variance if self.variance is None else self.variance + variance
        self.batches += 1

    def average(self) -> Tuple[paddle.Tensor, paddle.Tensor]:
        return self.mean / self.batches, self.variance / self.batches


class DynamicBatchNorm2D(nn.BatchNorm2D, Elastic):
    """BatchNorm2D at the largest width; a call on c channels uses and updates only the first c statistics.

    It reads `self.training` on every call (PaddleSlim's SuperBatchNorm2D latches the mode of its first call).
    While `calibration` holds a BatchStatistics, a train-mode call adds the batch's mean and biased variance to
    it instead of updating the running statistics. Those are the statistics paddle's batch-norm kernel computes
    anyway to normalise the batch: run with momentum 0 it writes them into the copies it is given, so
    calibration costs no extra pass over the activations (`x.var` would cost about ten times `x.mean`).
    """

    def __init__(self, num_features: int, momentum: float = 0.9, epsilon: float = 1e-05) -> None:
        super().__init__(num_features, momentum=momentum, epsilon=epsilon)
        self.calibration: Optional[BatchStatistics] = None
        self.active_channels = num_features

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        c = self.active_channels = x.shape[1]
        weight, bias = self.weight[:c], self.bias[:c]
        if not self.training:
            return F.batch_norm(
                x, self._mean[:c], self._variance[:c], weight, bias, training=False, epsilon=self._epsilon
            )
        # paddle updates the running statistics it is given in place: give it copies of the active slice
        mean, variance = self._mean[:c].clone(), self._variance[:c].clone()
        calibrating = self.calibration is not None
        out = F.batch_norm(
            x,
            mean,
            variance,
            weight,
            bias,
            training=True,
            momentum=0.0 if calibrating else self._momentum,
            epsilon=self._epsilon,
        )
        if calibrating:
            self.calibration.add(mean, variance)
        else:
            self.write_statistics(mean, variance)
        return out

    @paddle.no_grad()
    def write_statistics(self, mean: paddle.Tensor, variance: paddle.Tensor) -> None:
        """Set the first len(mean) running statistics, next to the untouched inactive channels."""
        c = mean.shape[0]
        self._mean.set_value(paddle.concat([mean, self._mean[c:]]))
        self._variance.set_value(paddle.concat([variance, self._variance[c:]]))

    def plain(self) -> nn.BatchNorm2D:
        return nn.BatchNorm2D(self.active_channels, momentum=self._momentum, epsilon=self._epsilon)
