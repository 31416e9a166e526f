"""The DeepLabV3+ supernet: an elastic MobileNetV2 backbone over MobileNetV2SpaceSeg's 25 tokens inside PaddleSeg's
own DeepLabV3P (its ASPP and decoder made dynamic, so they follow the backbone's widths).

Space (United-Perception's declaration, token order `stage`): backbone stages 0 (the head block, t=1, n=1, k=3)
to 6, each with expand_ratio (`multiply`), out_channel (`filter_num`), depth (`repeat`) and kernel_size
(`k_size`), all stage_wise over MobileNetV2SpaceSeg's value lists: the default space's tokens are the 25 tokens of
MobileNetV2SpaceSeg in its order ([head] + 6 x [multiply, filters, repeat, kernel]). A config may narrow a
dimension with min/max (`SLIM.BIGNAS_SPACE`); lowering a max keeps the tokens MobileNetV2SpaceSeg's.

Parameter names are those of PaddleSeg's DeepLabV3P with the search's MobileNetV2SegBackbone at the largest
setting (`backbone.blocks.0.units.1._expand_conv._conv.weight`, `head.aspp.aspp_blocks.1.depthwise_conv...`):
a subnet's weights are a slice of the same key.
"""

import copy
import functools
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import paddle
import paddle.nn as nn
from paddleseg.cvlibs import manager
from paddleseg.models.deeplab import DeepLabV3P

from ppnas.errors import ConfigError
from ppnas.oneshot.dynamic.blocks import DynamicConvBN, DynamicInvertedResidual, DynamicStage
from ppnas.oneshot.dynamic.convert import make_dynamic
from ppnas.oneshot.pricing import PricePart, after
from ppnas.oneshot.space import ElasticSpace, Subnet
from ppnas.oneshot.supernet import SUPERNETS, Supernet
from ppnas.tasks.segmentation import MODEL_TYPE, export_model, model_block, structure_block
from ppnas.tasks.segmentation_config import paddleseg_config
from search_space.mobilenetv2_seg import (
    BACKBONE_INDICES,
    FEATURE_BLOCKS,
    FILTER_NUMS,
    HEAD_NUM,
    INIT_TOKENS,
    K_SIZE,
    MULTIPLY,
    REPEAT,
    SHORTCUT_BLOCK,
    STEM_CHANNELS,
    MobileNetV2SegArch,
    MobileNetV2SegBackbone,
    MobileNetV2SpaceSeg,
    block_strides,
)

DIMS = ("expand_ratio", "out_channel", "depth", "kernel_size")  # MobileNetV2SpaceSeg's order in a block
Block = Tuple[int, int, int, int]  # (t, c, n, k)


def arch_of(settings: Mapping[str, Any], output_stride: int) -> MobileNetV2SegArch:
    backbone = settings["backbone"]
    t, c, n, k = (backbone[dim] for dim in DIMS)
    blocks = tuple((t[i], c[i], n[i], k[i]) for i in range(1, len(c)))
    return MobileNetV2SegArch(int(c[0]), blocks, output_stride)


def settings_of(arch: MobileNetV2SegArch) -> Dict[str, Any]:
    stages: List[Block] = [(1, arch.head_channels, 1, 3), *arch.blocks]
    return {"backbone": {dim: [stage[i] for stage in stages] for i, dim in enumerate(DIMS)}}


class ElasticBlock(nn.Layer):
    """The backbone space's block (n units of (t, c, k), residual on units 2..n) with elastic t, c, n, k."""

    def __init__(self, in_channels: int, block: Block, stride: int) -> None:
        super().__init__()
        t, c, n, k = block
        self.units = DynamicStage(
            [
                DynamicInvertedResidual(in_channels if i == 0 else c, c, stride if i == 0 else 1, t, k, shortcut=i > 0)
                for i in range(n)
            ]
        )

    def set_active(self, block: Block) -> None:
        t, c, n, k = block
        self.units.active_depth = n
        for unit in self.units:
            unit.active_expand_ratio, unit.active_out_channels, unit.active_kernel_size = t, c, k

    def forward(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """The block output and the depthwise output of its last unit."""
        for unit in self.units.active_blocks():
            x, depthwise = unit.forward_with_depthwise(x)
        return x, depthwise


class ElasticMobileNetV2(nn.Layer):
    """MobileNetV2SegBackbone at the largest setting of the space, under its names."""

    def __init__(self, largest: MobileNetV2SegArch) -> None:
        super().__init__()
        self.stem = DynamicConvBN(3, STEM_CHANNELS, 3, stride=2, act="relu6")
        self.head = ElasticBlock(STEM_CHANNELS, (1, largest.head_channels, 1, 3), 1)
        layers, in_channels = [], largest.head_channels
        for block, stride in zip(largest.blocks, block_strides(largest.output_stride)):
            layers.append(ElasticBlock(in_channels, block, stride))
            in_channels = block[1]
        self.blocks = nn.LayerList(layers)
        self.feat_channels = MobileNetV2SegBackbone.feature_channels(largest.head_channels, largest.blocks)

    def set_active(self, arch: MobileNetV2SegArch) -> None:
        self.head.set_active((1, arch.head_channels, 1, 3))
        for layer, block in zip(self.blocks, arch.blocks):
            layer.set_active(block)

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        x, _ = self.head(self.stem(x))
        feats = []
        for index, block in enumerate(self.blocks):
            x, depthwise = block(x)
            if index + 1 == SHORTCUT_BLOCK:
                feats.append(depthwise)
            if index + 1 in FEATURE_BLOCKS:
                feats.append(x)
        return feats


class Stem(nn.Layer):
    """MobileNetV2SegBackbone's stem as its forward calls it."""

    def __init__(self, stem: nn.Layer) -> None:
        super().__init__()
        self.stem = stem

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.stem(x, if_act=True)


class SegHead(nn.Layer):
    """DeepLabV3P after its backbone (ASPP, decoder, the logits resized to the image), on given features: PaddleSeg's
    own forward with the backbone's output replaced by the part's inputs."""

    def __init__(self, model: nn.Layer, features: int) -> None:
        super().__init__()
        self.head, self.features = model.head, features
        self.align_corners, self.data_format = model.align_corners, model.data_format
        self._feats: List[Any] = []

    def backbone(self, x: paddle.Tensor) -> List[Any]:
        return self._feats

    def forward(self, x: paddle.Tensor, *used: paddle.Tensor) -> List[paddle.Tensor]:
        self._feats = [None] * self.features  # the head reads only BACKBONE_INDICES
        for index, feat in zip(BACKBONE_INDICES, used):
            self._feats[index] = feat
        return DeepLabV3P.forward(self, x)


def _block_part(index: int, plain: Callable[[], nn.Layer]) -> nn.Layer:
    backbone = plain().backbone
    return backbone.head if index == 0 else backbone.blocks[index - 1]


@SUPERNETS.register
class DeepLabV3PSupernet(Supernet):
    """PaddleSeg's DeepLabV3P over an elastic MobileNetV2: `supernet(image)` gives the active subnet's logits."""

    task = "segmentation"
    token_order = "stage"
    report_module = "ppnas.tasks.segmentation"

    @classmethod
    def space_name(cls, cfg: Mapping[str, Any]) -> str:
        return str(cfg["search_space"])

    @classmethod
    def default_space(cls, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        if cfg["search_space"] != MobileNetV2SpaceSeg.__name__:
            raise ConfigError(f"the DeepLabV3+ supernet searches MobileNetV2SpaceSeg, got {cfg['search_space']}")
        blocks = len(FILTER_NUMS)
        spaces = {  # regular ranges as min/max/stride (a config may widen them), the others as value lists
            "expand_ratio": {"dynamic_range": [[1]] + [MULTIPLY] * blocks},
            "out_channel": {"dynamic_range": [HEAD_NUM, *FILTER_NUMS]},
            "depth": {"min": [1] * (blocks + 1), "max": [1] + [max(REPEAT)] * blocks, "stride": 1},
            "kernel_size": {"min": [3] * (blocks + 1), "max": [3] + [max(K_SIZE)] * blocks, "stride": 2},
        }
        return {"backbone": {dim: {"space": spaces[dim], "sample_strategy": "stage_wise"} for dim in DIMS}}

    @classmethod
    def baseline(cls, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        """MobileNetV2SpaceSeg's init tokens: stock MobileNetV2."""
        arch = MobileNetV2SpaceSeg().token2arch(INIT_TOKENS)[0]
        return {"subnet_settings": settings_of(arch), "image_size": list(cfg["input_shape"])}

    @classmethod
    def check_space(cls, space: ElasticSpace) -> None:
        dims = space.declaration["backbone"]
        head = {dim: dims[dim]["dynamic_range"][0] for dim in ("expand_ratio", "depth", "kernel_size")}
        if head != {"expand_ratio": [1], "depth": [1], "kernel_size": [3]}:
            raise ConfigError(
                f"space.backbone: stage 0 is MobileNetV2's head block (t=1, n=1, k=3; only its width is searched), "
                f"got {head}: give per-stage min/max lists that keep stage 0 at those values"
            )

    def __init__(self, space: ElasticSpace, cfg: Mapping[str, Any]) -> None:
        super().__init__(space, cfg)
        self.paddleseg = copy.deepcopy(cfg["seg"].paddleseg)  # PaddleSeg builds a model from a whole config
        self.model_cfg = dict(self.paddleseg.get("model") or {})
        if self.model_cfg.get("type") != MODEL_TYPE:
            raise ConfigError(f"model.type must be {MODEL_TYPE} for this supernet, got {self.model_cfg.get('type')!r}")
        self.output_stride = int((self.model_cfg.get("backbone") or {}).get("output_stride", 16))
        self.backbone = ElasticMobileNetV2(arch_of(self.subnet.settings, self.output_stride))
        kwargs = {k: v for k, v in self.model_cfg.items() if k not in ("type", "backbone", "backbone_indices")}
        model = manager.MODELS[MODEL_TYPE](backbone=self.backbone, backbone_indices=BACKBONE_INDICES, **kwargs)
        self.head = make_dynamic(model.head)  # ASPP and decoder follow the backbone's widths
        self.align_corners, self.data_format = model.align_corners, model.data_format

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        self.backbone.set_active(arch_of(settings, self.output_stride))

    def structure(self, subnet: Subnet) -> Dict[str, Any]:
        return arch_of(subnet.settings, self.output_stride).to_dict()

    def plain_model(self, subnet: Subnet) -> nn.Layer:
        return paddleseg_config({**self.paddleseg, "model": model_block(self.structure(subnet), self.model_cfg)}).model

    def price_parts(self, subnet: Subnet) -> List[PricePart]:
        """The stem, MobileNetV2's head block and each block (part 1 + b is block b: its in-width, t, c, n, k and
        stride; it returns its output and its last depthwise output), then the rest of DeepLabV3P on the features
        it reads (the shortcut's depthwise output and the last block's output) and the image (the logits' size)."""
        arch = arch_of(subnet.settings, self.output_stride)
        blocks = [((1, arch.head_channels, 1, 3), 1), *zip(arch.blocks, block_strides(self.output_stride))]
        parts = [PricePart(("stem",), lambda plain: Stem(plain().backbone.stem), (None,))]
        in_channels = STEM_CHANNELS
        for index, (block, stride) in enumerate(blocks):
            key = ("block", in_channels, *block, stride)
            parts.append(PricePart(key, functools.partial(_block_part, index), after(index)))
            in_channels = block[1]
        features = [(1 + SHORTCUT_BLOCK, 1)] + [(1 + b, 0) for b in FEATURE_BLOCKS]  # the backbone's feature list
        used = tuple(features[i] for i in BACKBONE_INDICES)
        parts.append(PricePart(("seg_head",), lambda plain: SegHead(plain(), len(features)), (None, *used)))
        return parts

    def summary(self, subnet: Subnet) -> str:
        return structure_block(self.structure(subnet))

    def export(self, subnet: Subnet, model: nn.Layer, save_dir: str) -> List[str]:
        return export_model(self.structure(subnet), model, save_dir, self.model_cfg)

    def forward(self, x: paddle.Tensor) -> Sequence[paddle.Tensor]:
        return DeepLabV3P.forward(self, x)  # PaddleSeg's: backbone, head, logits upsampled to the input
