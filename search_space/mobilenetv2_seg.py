"""MobileNetV2SpaceSeg: the 25-token MobileNetV2 backbone space of PaddleSeg's NAS example, in dygraph.

Tokens: [head] + 6 blocks x [multiply (expansion t), filters (c), repeat (n), kernel (k)]. Block strides are
fixed (head 1, then 2, 2, 2, 1, 2, 1); with output stride 16 the stride-2 of block 5 becomes 1. The init
tokens decode to stock MobileNetV2 (16 | 6,24,2 | 6,32,3 | 6,64,4 | 6,96,3 | 6,160,3 | 6,320,1).

The backbone feeds PaddleSeg's DeepLabV3P. Its outputs are [shortcut (stride 4), block 2 (stride 8),
block 4 (stride 16), block 6 (stride 16)]; DeepLabV3P takes backbone_indices (0, 3): the decoder shortcut
is the depthwise output of the last unit of block 1 (stride 4), ASPP reads the last block, as in the
original static-graph space. PaddleSlim's own MobileNetV2 spaces return static-graph builders, so this
one is written here; its units are PaddleSeg's MobileNetV2 layers.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import paddle
from paddle import nn
from paddleseg.cvlibs import manager
from paddleseg.models.backbones.mobilenetv2 import ConvBNLayer, InvertedResidualUnit
from paddleslim.nas.search_space import SEARCHSPACE
from paddleslim.nas.search_space.search_space_base import SearchSpaceBase

from ppnas.errors import SearchSpaceError
from search_space.tokens import check_tokens

HEAD_NUM = [3, 4, 8, 12, 16, 24, 32]
FILTER_NUMS = [
    [3, 4, 8, 12, 16, 24, 32, 48],
    [8, 12, 16, 24, 32, 48, 64, 80],
    [16, 24, 32, 48, 64, 80, 96, 128],
    [24, 32, 48, 64, 80, 96, 128, 144, 160, 192],
    [32, 48, 64, 80, 96, 128, 144, 160, 192, 224],
    [64, 80, 96, 128, 144, 160, 192, 224, 256, 320, 384, 512],
]
MULTIPLY = [1, 2, 3, 4, 6]
REPEAT = [1, 2, 3, 4, 5, 6]
K_SIZE = [3, 5]
BLOCK_STRIDES = [2, 2, 2, 1, 2, 1]  # blocks 1..6; the head block has stride 1
INIT_TOKENS = [4, 4, 5, 1, 0, 4, 4, 2, 0, 4, 4, 3, 0, 4, 5, 2, 0, 4, 7, 2, 0, 4, 9, 0, 0]
STEM_CHANNELS = 32
BACKBONE_INDICES = (0, 3)  # DeepLabV3P: decoder shortcut (stride 4), ASPP input (last block)
SHORTCUT_BLOCK = 1  # the block whose last depthwise output is the stride-4 shortcut
FEATURE_BLOCKS = (2, 4, 6)  # blocks whose outputs follow the shortcut in the feature list


def block_strides(output_stride: int) -> List[int]:
    """Fixed block strides; a stride that would take the network past `output_stride` becomes 1."""
    current, strides = 2, []  # the stem halves the input
    for stride in BLOCK_STRIDES:
        if current * stride > output_stride:
            stride = 1
        current *= stride
        strides.append(stride)
    return strides


@dataclass(frozen=True)
class MobileNetV2SegArch:
    """Decoded tokens: the head width and (t, c, n, k) of blocks 1..6."""

    head_channels: int
    blocks: Tuple[Tuple[int, int, int, int], ...]
    output_stride: int = 16

    @property
    def feat_channels(self) -> List[int]:
        return MobileNetV2SegBackbone.feature_channels(self.head_channels, self.blocks)

    @property
    def backbone_indices(self) -> Tuple[int, int]:
        return BACKBONE_INDICES

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able structure (the history's `structure`); `from_dict` reads it back."""
        strides = block_strides(self.output_stride)
        return {
            "head_channels": self.head_channels,
            "blocks": [{"t": t, "c": c, "n": n, "k": k, "stride": s} for (t, c, n, k), s in zip(self.blocks, strides)],
            "output_stride": self.output_stride,
            "feat_channels": self.feat_channels,
            "backbone_indices": list(self.backbone_indices),
        }

    @classmethod
    def from_dict(cls, structure: Mapping[str, Any]) -> "MobileNetV2SegArch":
        try:
            blocks = tuple((int(b["t"]), int(b["c"]), int(b["n"]), int(b["k"])) for b in structure["blocks"])
            return cls(int(structure["head_channels"]), blocks, int(structure.get("output_stride", 16)))
        except (KeyError, TypeError, ValueError) as err:
            raise SearchSpaceError(f"not a MobileNetV2SpaceSeg structure ({err!r}): {dict(structure)}") from None

    def backbone_config(self) -> Dict[str, Any]:
        """The PaddleSeg YAML mapping of the backbone (`model.backbone`)."""
        return {
            "type": MobileNetV2SegBackbone.__name__,
            "head_channels": self.head_channels,
            "blocks": [list(b) for b in self.blocks],
            "output_stride": self.output_stride,
        }

    def build_backbone(self, in_channels: int = 3) -> "MobileNetV2SegBackbone":
        return MobileNetV2SegBackbone(self.head_channels, self.blocks, in_channels, self.output_stride)


class _Block(nn.Layer):
    """n PaddleSeg inverted-residual units with kernel k; residual add on units 2..n."""

    def __init__(self, in_c: int, t: int, c: int, n: int, k: int, stride: int, name: str) -> None:
        super().__init__()
        self.units = nn.LayerList(
            [
                InvertedResidualUnit(
                    num_channels=in_c if i == 0 else c,
                    num_in_filter=in_c if i == 0 else c,
                    num_filters=c,
                    stride=stride if i == 0 else 1,
                    filter_size=k,
                    padding=(k - 1) // 2,
                    expansion_factor=t,
                    name=f"{name}_{i + 1}",
                )
                for i in range(n)
            ]
        )

    def forward(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """The block output and the depthwise output of its last unit."""
        for i, unit in enumerate(self.units):
            expanded = unit._expand_conv(x, if_act=True)
            depthwise = unit._bottleneck_conv(expanded, if_act=True)
            y = unit._linear_conv(depthwise, if_act=False)
            x = x + y if i > 0 else y
        return x, depthwise


@manager.BACKBONES.add_component
class MobileNetV2SegBackbone(nn.Layer):
    """Token-parametrised MobileNetV2 for DeepLabV3P: stem, head block, 6 blocks of (t, c, n, k)."""

    def __init__(
        self,
        head_channels: int,
        blocks: Sequence[Sequence[int]],
        in_channels: int = 3,
        output_stride: int = 16,
    ) -> None:
        super().__init__()
        if len(blocks) != len(BLOCK_STRIDES) or any(len(b) != 4 for b in blocks):
            raise SearchSpaceError(f"blocks must be {len(BLOCK_STRIDES)} lists [t, c, n, k], got {list(blocks)}")
        if output_stride not in (8, 16, 32):
            raise SearchSpaceError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        # PaddleSeg's layers give their parameters fixed names, which dygraph refuses twice per process:
        # a unique prefix per instance lets a search build one candidate after another.
        prefix = paddle.utils.unique_name.generate("seg_nas")
        self.stem = ConvBNLayer(in_channels, 3, STEM_CHANNELS, stride=2, padding=1, name=f"{prefix}_stem")
        self.head = _Block(STEM_CHANNELS, 1, head_channels, 1, 3, 1, name=f"{prefix}_head")
        layers, in_c = [], head_channels
        for i, ((t, c, n, k), stride) in enumerate(zip(blocks, block_strides(output_stride)), start=1):
            layers.append(_Block(in_c, int(t), int(c), int(n), int(k), stride, name=f"{prefix}_block{i}"))
            in_c = int(c)
        self.blocks = nn.LayerList(layers)
        self.feat_channels = self.feature_channels(head_channels, blocks)

    @staticmethod
    def feature_channels(head_channels: int, blocks: Sequence[Sequence[int]]) -> List[int]:
        t1, c1, n1, _ = blocks[SHORTCUT_BLOCK - 1]
        shortcut_in = head_channels if n1 == 1 else c1  # input of block 1's last unit
        return [int(round(shortcut_in * t1))] + [int(blocks[i - 1][1]) for i in FEATURE_BLOCKS]

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        x, _ = self.head(self.stem(x, if_act=True))
        feats = []
        for index, block in enumerate(self.blocks):  # no `start=`: paddle.jit.to_static rejects it
            x, depthwise = block(x)
            if index + 1 == SHORTCUT_BLOCK:
                feats.append(depthwise)
            if index + 1 in FEATURE_BLOCKS:
                feats.append(x)
        return feats


@SEARCHSPACE.register
class MobileNetV2SpaceSeg(SearchSpaceBase):
    """The 25-token space; `token2arch` returns `[MobileNetV2SegArch]` (build with `.build_backbone()`)."""

    def __init__(
        self,
        input_size: Optional[int] = None,
        output_size: Optional[int] = None,
        block_num: Optional[int] = None,
        block_mask: Optional[list] = None,
        output_stride: int = 16,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise SearchSpaceError(f"MobileNetV2SpaceSeg takes no options {sorted(kwargs)}; only output_stride")
        super().__init__(input_size, output_size, block_num, block_mask)
        self.output_stride = output_stride

    def init_tokens(self) -> List[int]:
        return list(INIT_TOKENS)

    def range_table(self) -> List[int]:
        table = [len(HEAD_NUM)]
        for filters in FILTER_NUMS:
            table += [len(MULTIPLY), len(filters), len(REPEAT), len(K_SIZE)]
        return table

    def token2arch(self, tokens: Optional[Sequence[int]] = None) -> List[MobileNetV2SegArch]:
        tokens = check_tokens(
            list(self.init_tokens() if tokens is None else tokens), self.range_table(), type(self).__name__
        )
        blocks = []
        for i, filters in enumerate(FILTER_NUMS):
            mul, filt, rep, ker = tokens[1 + 4 * i : 5 + 4 * i]
            blocks.append((MULTIPLY[mul], filters[filt], REPEAT[rep], K_SIZE[ker]))
        return [MobileNetV2SegArch(HEAD_NUM[tokens[0]], tuple(blocks), self.output_stride)]
