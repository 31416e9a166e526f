"""The two ends of PFLD that a search may change as well as its layers: the stem (with the entry block) and the head.

- stem `stem<w>_<entry>`: conv 3x3/2 to w channels (feature y1) -> depthwise-separable 3x3/2 to w (the auxiliary
  net's input) -> the entry block `<entry>` (any registered block, stride 2) to the first stage's channels; and
  y1 brought to the final map by a strided depthwise conv (kernel stride+1, padding 1: NNI's 9/8 "pool"). It
  returns (x, pooled y1, auxiliary feature). PFLD's own is `stem16_mb_k3_e2_res`.
- head `head<w>`: the multi-scale concat -> 1x1 conv to w -> inverted residual with SE (2w inside) ->
  separable conv to 2w -> depthwise conv over the whole final map -> 1x1 conv to 2 x num_points. PFLD's: `head64`.

Candidates of one searched stem differ in width: the mixed op pads their y1 and auxiliary feature with zero
channels to the widest (ppnas.fbnet.supernet.MixedOp), and y1 comes last in the concat, so the head's first
conv and the auxiliary net's first conv of a narrower subnet are the supernet's cut to their leading input
channels (ppnas.fbnet.derive.subnet_from_supernet does that cut).
"""

import re
from typing import Tuple

import paddle
from paddle import nn

from ppnas.errors import ConfigError
from ppnas.fbnet.blocks import BlockSpec, InvertedResidual, SeparableConv, build_block, check_candidate, conv_bn

STEM_RE = re.compile(r"^stem(\d+)_(.+)$")
HEAD_RE = re.compile(r"^head(\d+)$")


def stem_name(width: int, entry: str) -> str:
    return f"stem{width}_{entry}"


def head_name(width: int) -> str:
    return f"head{width}"


def parse_stem(name: str) -> Tuple[int, str]:
    """(width, entry block) of a stem candidate's name."""
    match = STEM_RE.match(name)
    if match is None:
        raise ConfigError(f"'{name}' is not a stem candidate: they read stem<width>_<entry block>, e.g. stem16_sep_k3")
    check_candidate(match.group(2), f"stem candidate '{name}'")
    return int(match.group(1)), match.group(2)


def parse_head(name: str) -> int:
    match = HEAD_RE.match(name)
    if match is None:
        raise ConfigError(f"'{name}' is not a head candidate: they read head<width>, e.g. head64")
    return int(match.group(1))


def depthwise_pool(channels: int, size: int, final: int) -> nn.Layer:
    """A `size` map to the `final` one by a strided depthwise conv (identity when it is the final one)."""
    if size == final:
        return nn.Identity()
    step = size // final
    return nn.Conv2D(channels, channels, step + 1, step, 1, groups=channels, bias_attr=False)


class Stem(nn.Layer):
    """Image -> (first stage's input, y1 pooled to the final map, the auxiliary net's feature)."""

    def __init__(self, name: str, c_out: int, input_size: int, final_size: int) -> None:
        super().__init__()
        width, entry = parse_stem(name)
        self.conv = conv_bn(3, width, 3, 2)
        self.down = SeparableConv(width, width, 2)
        self.entry = build_block(entry, width, c_out, 2)
        self.pool = depthwise_pool(width, input_size // 2, final_size)

    def forward(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        y1 = self.conv(x)
        features = self.down(y1)
        return self.entry(features), self.pool(y1), features


class Head(nn.Layer):
    """Multi-scale features [N, c_in, final, final] -> landmarks [N, 2 x num_points]."""

    def __init__(self, name: str, c_in: int, final_size: int, num_points: int) -> None:
        super().__init__()
        width = parse_head(name)
        self.body = nn.Sequential(
            conv_bn(c_in, width, 1),
            InvertedResidual(width, width, 1, BlockSpec("mb", 3, residual=True, se=True), mid=2 * width),
            SeparableConv(width, 2 * width, 1),
            nn.Conv2D(2 * width, 2 * width, final_size, groups=2 * width, bias_attr=False),
            # starts at the image centre with small weights: the points are normalised to [0, 1], and a
            # kaiming-sized output layer would begin tens of units off and spend the first epochs on scale
            nn.Conv2D(
                2 * width,
                2 * num_points,
                1,
                weight_attr=nn.initializer.Normal(std=0.001),
                bias_attr=nn.initializer.Constant(0.5),
            ),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.flatten(self.body(x), 1)
