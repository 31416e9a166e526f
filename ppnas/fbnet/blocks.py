"""The candidate blocks of FBNet's PFLD search, in a registry keyed by the example's names.

A name reads `<kind>_k<kernel>[_e<expansion>][_res][_d<dilation>][_se]`:
- `mb`: inverted residual (1x1 expand when expansion > 1, depthwise kxk, optional squeeze-excitation,
  1x1 project); `_res` adds the identity shortcut when stride is 1 and channels match;
- `sep`: depthwise-separable conv (depthwise kxk, 1x1), no shortcut;
- `gh`: ghost bottleneck (GhostNet: a 1x1 conv makes half the channels, a cheap depthwise kxk the other
  half; a strided depthwise kxk before it when stride 2), identity shortcut when shapes match.
`skip` (FBNet's own space has it) is the identity: it removes the layer, so it is a candidate only where
input and output agree (stride 1, same channels), which the supernet gives it: the non-first layers of a stage.
Every block is built at (c_in, c_out, stride) and keeps the spatial size / stride.
"""

import re
from dataclasses import dataclass
from typing import Dict, Optional

import paddle
from paddle import nn

from ppnas.errors import ConfigError

NAME_RE = re.compile(r"^(mb|sep|gh)_k(\d+)(?:_e(\d+))?(_res)?(?:_d(\d+))?(_se)?$")
# the example's candidates (stage_0 and stage_1 lists) and the original PFLD blocks (mb_k3_e4_res)
SKIP = "skip"
EXAMPLE_NAMES = (
    "mb_k3_res",
    "mb_k3_e2_res",
    "mb_k3_e4_res",
    "mb_k3_res_d3",
    "mb_k5_res",
    "mb_k5_e2_res",
    "mb_k3_e2_res_se",
    "mb_k5_res_se",
    "mb_k5_e2_res_se",
    "sep_k3",
    "sep_k5",
    "gh_k3",
    "gh_k5",
)


@dataclass(frozen=True)
class BlockSpec:
    kind: str
    kernel: int
    expansion: int = 1
    residual: bool = False
    dilation: int = 1
    se: bool = False


def parse_name(name: str) -> BlockSpec:
    match = NAME_RE.match(name)
    if match is None:
        raise ConfigError(f"cannot parse block name '{name}'")
    kind, kernel, expansion, res, dilation, se = match.groups()
    return BlockSpec(kind, int(kernel), int(expansion or 1), bool(res), int(dilation or 1), bool(se))


REGISTRY: Dict[str, BlockSpec] = {name: parse_name(name) for name in EXAMPLE_NAMES}
REGISTRY[SKIP] = BlockSpec("skip", kernel=0)


def check_candidate(name: str, where: str) -> None:
    if name not in REGISTRY:
        raise ConfigError(f"unknown candidate block '{name}' in {where}; valid: {', '.join(sorted(REGISTRY))}")


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, dilation: int = 1, act: bool = True
) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    layers = [
        nn.Conv2D(c_in, c_out, kernel, stride, padding, dilation=dilation, groups=groups, bias_attr=False),
        nn.BatchNorm2D(c_out),
    ]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Layer):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.reduce = nn.Conv2D(channels, max(channels // reduction, 8), 1)
        self.expand = nn.Conv2D(max(channels // reduction, 8), channels, 1)
        self.relu = nn.ReLU()
        self.gate = nn.Hardsigmoid()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Layer):
    def __init__(self, c_in: int, c_out: int, stride: int, spec: BlockSpec, mid: Optional[int] = None) -> None:
        super().__init__()
        mid = mid or c_in * spec.expansion
        layers = [conv_bn(c_in, mid, 1)] if mid != c_in else []
        layers.append(conv_bn(mid, mid, spec.kernel, stride, groups=mid, dilation=spec.dilation))
        if spec.se:
            layers.append(SqueezeExcite(mid))
        layers.append(conv_bn(mid, c_out, 1, act=False))
        self.body = nn.Sequential(*layers)
        self.shortcut = spec.residual and stride == 1 and c_in == c_out

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.body(x)
        return x + out if self.shortcut else out


class SeparableConv(nn.Layer):
    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_in, kernel, stride, groups=c_in), conv_bn(c_in, c_out, 1))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.body(x)


class GhostModule(nn.Layer):
    """c_out channels: half from a 1x1 conv, the rest from a depthwise kxk of those (GhostNet, ratio 2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, act: bool) -> None:
        super().__init__()
        primary = (c_out + 1) // 2
        cheap = c_out - primary
        self.primary = conv_bn(c_in, primary, 1, act=act)
        self.cheap = conv_bn(primary, cheap, kernel, groups=primary if cheap == primary else 1, act=act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.primary(x)
        return paddle.concat([y, self.cheap(y)], axis=1)


class GhostBottleneck(nn.Layer):
    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int) -> None:
        super().__init__()
        layers = [GhostModule(c_in, c_out, kernel, act=True)]
        if stride > 1:
            layers.append(conv_bn(c_out, c_out, kernel, stride, groups=c_out, act=False))
        layers.append(GhostModule(c_out, c_out, kernel, act=False))
        self.body = nn.Sequential(*layers)
        self.shortcut = stride == 1 and c_in == c_out

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.body(x)
        return x + out if self.shortcut else out


def build_block(name: str, c_in: int, c_out: int, stride: int) -> nn.Layer:
    """The registered block `name` at (c_in, c_out, stride)."""
    check_candidate(name, "the block registry")
    spec = REGISTRY[name]
    if spec.kind == "skip":
        if stride != 1 or c_in != c_out:
            raise ConfigError(f"'{SKIP}' needs stride 1 and c_in == c_out, got {c_in} -> {c_out} at stride {stride}")
        return nn.Identity()
    if spec.kind == "mb":
        return InvertedResidual(c_in, c_out, stride, spec)
    if spec.kind == "sep":
        return SeparableConv(c_in, c_out, stride, spec.kernel)
    return GhostBottleneck(c_in, c_out, stride, spec.kernel)
