"""The BlazeFace supernet: PaddleDetection's BlazeNet rebuilt on the dynamic blocks, its neck, FaceHead, anchors,
SSD loss and post-processing (the detection task's `build_blazeface`), over BlazeFaceNasSpace and beyond.

Space (United-Perception's declaration, token order `dim`): backbone stages 1-4 (the blaze blocks after conv1,
the stride-2 blaze blocks, the two double-blaze stages) with
- out_channel (stage_wise): BlazeFaceNasSpace's num1, num2, double, double lists;
- mid_channel (block_wise): the double blocks' middle width (0: the blaze stages have none);
- kernel_size (net_wise): kernel_choices;
- depth (stage_wise_depth): [1, 2, 2, 2] by default, so the default space is BlazeFaceNasSpace's 9 tokens in its
  order and every 9-token structure is a subnet. A config may open the blaze stages' depth (up to the original
  BlazeFace's [2, 3], `space: {backbone: {depth: {space: {min: [1, 1, 2, 2], max: [2, 3, 2, 2]}}}}`) and add
  input resolutions (`image_size_list`); the depth tokens, then the resolution token, follow the 9.
The double stages keep 2 blocks: PaddleDetection's BlazeNet feeds the head from the 4th block from the end and the
last one, at strides 8 and 16 (the anchors' steps), and the 9 tokens give each double block its own middle width.

Parameter names are PaddleDetection's at the largest depth (`backbone.blaze_1.blaze_11_dw_1._conv.weight`, ...):
a subnet's BlazeFace takes a slice of the same key, its blaze blocks renumbered when a stage is shallower
(`source_key`). With 5x5 in the space, a 3x3 subnet runs the centre 3x3 of the 5x5 conv (`..._dw`) at stride 1,
then a second 3x3 conv (`..._dw_2`) at the block's stride, as PaddleDetection's 3x3 BlazeBlock does.
"""

import functools
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal
from ppdet.modeling.backbones.blazenet import BlazeBlock

from ppnas.errors import ConfigError
from ppnas.oneshot.dynamic.blocks import DynamicConvBN
from ppnas.oneshot.dynamic.convert import make_dynamic
from ppnas.oneshot.pricing import PricePart, after
from ppnas.oneshot.space import ElasticSpace, Subnet
from ppnas.oneshot.supernet import SUPERNETS, Supernet
from ppnas.spaces import build_space
from ppnas.tasks.detection import build_blazeface, export_model, structure_block
from search_space.blazeface import DOUBLE_FILTER_NUM, MID_FILTER_NUM

BACKBONE_CONV_LR = 0.1  # ppdet's BlazeNet ConvBNLayer: conv weights learn at a tenth of the base rate
DOUBLE_DEPTH = 2  # blocks per double-blaze stage (see the module docstring)
BLAZE_STAGES = 2  # stages of single blaze blocks (their blocks are numbered blaze_0, blaze_1, ...)


def _conv(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int = 1,
    depthwise: bool = False,
    act: Optional[str] = "relu",
) -> DynamicConvBN:
    attr = ParamAttr(learning_rate=BACKBONE_CONV_LR, initializer=KaimingNormal())
    return DynamicConvBN(in_channels, out_channels, kernel, stride, depthwise=depthwise, act=act, weight_attr=attr)


class DynamicBlazeBlock(nn.Layer):
    """PaddleDetection's BlazeBlock at the largest channels and kernel, under its names; `set_active` picks
    the widths and the kernel of a subnet (depthwise convs follow their input)."""

    def __init__(
        self,
        in_channels: int,
        mid: int,
        double: Optional[int],
        stride: int,
        kernel_max: int,
        act: Optional[str],
        name: str,
    ) -> None:
        super().__init__()
        self.stride, self.double, self.kernel_max = stride, double is not None, kernel_max
        first = "_dw" if kernel_max == 5 else "_dw_1"  # ppdet's name of the first conv at the largest kernel
        first_stride = stride if kernel_max == 5 else 1
        widths = [(in_channels, stride)] + ([(mid, 1)] if self.double else [])
        self.dw_names: List[Tuple[str, str]] = []
        for position, (channels, block_stride) in enumerate(widths, start=1):
            names = (f"{name}{position}{first}", f"{name}{position}_dw_2")
            self.add_sublayer(
                names[0], _conv(channels, channels, kernel_max, first_stride if position == 1 else 1, depthwise=True)
            )
            self.add_sublayer(names[1], _conv(channels, channels, 3, block_stride, depthwise=True))
            self.dw_names.append(names)
        self.conv_pw = _conv(in_channels, mid, 1, act=act if self.double else None)
        if self.double:
            self.conv_pw2 = _conv(mid, double, 1)
        self.shortcut_name = f"{name}_shortcut_conv"
        if stride != 1:
            self.add_sublayer(self.shortcut_name, _conv(in_channels, double or mid, 1))
        self.use_5x5 = kernel_max == 5

    def set_active(self, mid: int, double: Optional[int], use_5x5: bool) -> None:
        self.conv_pw.active_out_channels = mid
        if self.double:
            self.conv_pw2.active_out_channels = double
        if self.stride != 1:
            getattr(self, self.shortcut_name).active_out_channels = double if self.double else mid
        self.use_5x5 = use_5x5
        for position, (first, _) in enumerate(self.dw_names):
            conv = getattr(self, first)
            conv.active_kernel_size = 5 if use_5x5 else 3
            conv._conv.active_stride = None if use_5x5 or position > 0 else 1

    def _depthwise(self, position: int, x: paddle.Tensor) -> paddle.Tensor:
        first, second = (getattr(self, n) for n in self.dw_names[position])
        return first(x) if self.use_5x5 else second(first(x))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.conv_pw(self._depthwise(0, x))
        if self.double:
            y = self.conv_pw2(self._depthwise(1, y))
        if self.stride != 1:
            x = F.max_pool2d(x, kernel_size=self.stride, stride=self.stride, ceil_mode=True)
            x = getattr(self, self.shortcut_name)(x)
        return F.relu(paddle.add(x, y))


def blazenet_structure(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """The keyword arguments of PaddleDetection's BlazeNet for a subnet's backbone settings."""
    backbone = settings["backbone"]
    b1, b2, d1, d2 = backbone["out_channel"]
    n1, n2 = backbone["depth"][:BLAZE_STAGES]
    m = [*backbone["mid_channel"][2][:DOUBLE_DEPTH], *backbone["mid_channel"][3][:DOUBLE_DEPTH]]
    return dict(
        blaze_filters=[[b1, b1]] * n1 + [[b1, b2, 2]] + [[b2, b2]] * (n2 - 1),
        double_blaze_filters=[[b2, m[0], d1, 2], [d1, m[1], d1], [d1, m[2], d2, 2], [d2, m[3], d2]],
        use_5x5kernel=backbone["kernel_size"][0] == 5,
    )


class DynamicBlazeNet(nn.Layer):
    """BlazeNet at the largest structure of the space; each stage runs its first `depths[stage]` blocks."""

    def __init__(self, space: ElasticSpace, act: Optional[str]) -> None:
        super().__init__()
        largest = space.decode(space.max_tokens()).settings
        structure = blazenet_structure(largest)
        kernel_max = largest["backbone"]["kernel_size"][0]
        max_depths = space.max_depths("backbone")
        first = structure["blaze_filters"][0][0]
        self.conv1 = _conv(3, first, 3, stride=2)
        self.stages: List[List[DynamicBlazeBlock]] = [[] for _ in max_depths]
        b1, b2 = first, structure["blaze_filters"][-1][1]
        blaze = [(b1, b1, None, 1)] * max_depths[0] + [(b1, b2, None, 2)] + [(b2, b2, None, 1)] * (max_depths[1] - 1)
        doubles = [tuple(d) if len(d) == 4 else (*d, 1) for d in structure["double_blaze_filters"]]
        stage_of = [0] * max_depths[0] + [1] * max_depths[1] + [2] * DOUBLE_DEPTH + [3] * DOUBLE_DEPTH
        names = [f"blaze_{i}" for i in range(len(blaze))] + [f"double_blaze_{i}" for i in range(len(doubles))]
        for stage, name, (channels, mid, double, stride) in zip(stage_of, names, blaze + doubles):
            block = DynamicBlazeBlock(channels, mid, double, stride, kernel_max, act, name)
            self.stages[stage].append(self.add_sublayer(name, block))
        self.depths = list(max_depths)

    def set_active(self, settings: Mapping[str, Any]) -> None:
        backbone = settings["backbone"]
        out, mids, self.depths = backbone["out_channel"], backbone["mid_channel"], list(backbone["depth"])
        use_5x5 = backbone["kernel_size"][0] == 5
        self.conv1.active_out_channels = out[0]
        for stage, blocks in enumerate(self.stages):
            for position, block in enumerate(blocks):
                if stage < BLAZE_STAGES:
                    block.set_active(out[stage], None, use_5x5)
                else:
                    block.set_active(mids[stage][position], out[stage], use_5x5)

    def forward(self, image: paddle.Tensor) -> List[paddle.Tensor]:
        y = self.conv1(image)
        outs = []
        for blocks, depth in zip(self.stages, self.depths):
            for block in blocks[:depth]:
                y = block(y)
                outs.append(y)
        return [outs[-4], outs[-1]]  # PaddleDetection BlazeNet's two outputs


class HeadBranch(nn.Layer):
    """FaceHead's box and score convs of one feature map, as BlazeFaceForward calls them."""

    def __init__(self, box: nn.Layer, score: nn.Layer) -> None:
        super().__init__()
        self.box, self.score = box, score

    def forward(self, feat: paddle.Tensor) -> List[paddle.Tensor]:
        return [self.box(feat), self.score(feat)]


def _blaze_block(
    in_channels: int,
    filters: Tuple[int, ...],
    double: bool,
    use_5x5: bool,
    act: str,
    name: str,
    plain: Callable[[], nn.Layer],
) -> nn.Layer:
    """BlazeNet's block of `filters` built alone with BlazeNet's arguments (building a whole model costs 10x)."""
    if double:
        kwargs = dict(double_channels=filters[2], stride=filters[3] if len(filters) == 4 else 1)
    else:
        kwargs = dict(stride=filters[2] if len(filters) == 3 else 1)
    return BlazeBlock(in_channels, filters[0], filters[1], use_5x5kernel=use_5x5, act=act, name=name, **kwargs)


def _head_branch(feature: int, plain: Callable[[], nn.Layer]) -> nn.Layer:
    head = plain().blaze_head
    return HeadBranch(head.box_convs[feature], head.score_convs[feature])


@SUPERNETS.register
class BlazeFaceSupernet(Supernet):
    """BlazeNet + BlazeNeck + FaceHead sharing weights; `model(data)` behaves as PaddleDetection's BlazeFace for
    the active subnet ({'loss'} in train mode, {'bbox', 'bbox_num'} in eval mode)."""

    task = "detection"
    token_order = "dim"
    report_module = "ppnas.tasks.detection"

    @classmethod
    def space_name(cls, cfg: Mapping[str, Any]) -> str:
        return str(cfg["search_space"])

    @classmethod
    def _nas_space(cls, cfg: Mapping[str, Any]) -> Any:
        space = build_space(cfg["search_space"], kernel_choices=cfg["kernel_choices"])
        if not hasattr(space, "num1"):
            raise ConfigError(f"search_space {cfg['search_space']} is not BlazeFaceNasSpace: the supernet needs it")
        return space

    @classmethod
    def default_space(cls, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        nas = cls._nas_space(cfg)
        kernels = [5 if use else 3 for use in nas.use_5x5]
        return {
            "backbone": {
                "out_channel": {
                    "space": {"dynamic_range": [nas.num1, nas.num2, DOUBLE_FILTER_NUM, DOUBLE_FILTER_NUM]},
                    "sample_strategy": "stage_wise",
                },
                "mid_channel": {
                    "space": {"dynamic_range": [[0], [0], MID_FILTER_NUM, MID_FILTER_NUM]},
                    "sample_strategy": "block_wise",
                },
                "kernel_size": {"space": {"dynamic_range": [kernels] * 4}, "sample_strategy": "net_wise"},
                "depth": {
                    "space": {"min": [1, 2, DOUBLE_DEPTH, DOUBLE_DEPTH], "max": [1, 2, DOUBLE_DEPTH, DOUBLE_DEPTH]},
                    "sample_strategy": "stage_wise_depth",
                },
            }
        }

    @classmethod
    def baseline(cls, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        """BlazeFaceNasSpace's init tokens (the structure the original example printed)."""
        nas = cls._nas_space(cfg)
        structure = nas.decode(list(cfg.get("init_tokens") or nas.init_tokens()))
        blaze, doubles = structure["blaze_filters"], structure["double_blaze_filters"]
        b1, b2 = blaze[0][0], blaze[-1][1]
        settings = {
            "out_channel": [b1, b2, doubles[1][2], doubles[3][2]],
            "mid_channel": [[0], [0, 0], [doubles[0][1], doubles[1][1]], [doubles[2][1], doubles[3][1]]],
            "kernel_size": [5 if structure["use_5x5kernel"] else 3] * 4,
            "depth": [1, 2, DOUBLE_DEPTH, DOUBLE_DEPTH],
        }
        return {"subnet_settings": {"backbone": settings}, "image_size": [1, 3, *cfg["input_shape"][2:]]}

    @classmethod
    def check_space(cls, space: ElasticSpace) -> None:
        depths = space.declaration["backbone"]["depth"]["dynamic_range"]
        if depths[2:] != [[DOUBLE_DEPTH], [DOUBLE_DEPTH]] or min(depths[0] + depths[1]) < 1:
            raise ConfigError(
                f"space.backbone.depth: the blaze stages take 1 or more blocks and the double-blaze stages exactly "
                f"{DOUBLE_DEPTH} (PaddleDetection's BlazeNet feeds its head from the 4th block from the end), got "
                f"{depths}"
            )

    def __init__(self, space: ElasticSpace, cfg: Mapping[str, Any]) -> None:
        super().__init__(space, cfg)
        model_cfg = dict(cfg)
        neck_type = str((model_cfg.get("BlazeNeck") or {}).get("neck_type", "None"))
        if neck_type != "None":
            raise ConfigError(f"the supernet supports BlazeNeck.neck_type None only (no neck weights), got {neck_type}")
        self.model_cfg = model_cfg
        self.act = str((model_cfg.get("BlazeNet") or {}).get("act", "relu"))
        self.backbone = DynamicBlazeNet(space, self.act)
        reference = build_blazeface(self.structure(self.subnet), model_cfg)  # ppdet's neck, head, loss, post-process
        self.neck = reference.neck
        self.blaze_head = make_dynamic(reference.blaze_head)  # its convs follow the subnet's widths
        self.post_process = reference.post_process
        self.max_depths = space.max_depths("backbone")
        self._keys: Optional[set] = None

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        self.backbone.set_active(settings)

    def structure(self, subnet: Subnet) -> Dict[str, Any]:
        return blazenet_structure(subnet.settings)

    def plain_model(self, subnet: Subnet) -> nn.Layer:
        return build_blazeface(self.structure(subnet), self.model_cfg)

    def price_parts(self, subnet: Subnet) -> List[PricePart]:
        """conv1, each blaze block (its filters and kernel; its input shape is the pricer's), then FaceHead's box
        and score convs per feature map: BlazeFaceForward runs exactly these (no neck, see check in __init__)."""
        structure = self.structure(subnet)
        use_5x5 = structure["use_5x5kernel"]
        filters = structure["blaze_filters"] + structure["double_blaze_filters"]
        singles = len(structure["blaze_filters"])
        in_channels = filters[0][0]  # BlazeNet's conv1 width
        parts = [PricePart(("conv1", in_channels), lambda plain: plain().backbone.conv1, (None,))]
        for index, block in enumerate(filters):
            double = index >= singles
            name = f"double_blaze_{index - singles}" if double else f"blaze_{index}"
            settings = (in_channels, tuple(block), double, use_5x5, self.act)
            parts.append(
                PricePart(("blaze", *settings), functools.partial(_blaze_block, *settings, name), after(index))
            )
            in_channels = block[2] if double else block[1]
        for feature, source in enumerate((len(filters) - 3, len(filters))):  # BlazeNet's outs[-4] and outs[-1]
            parts.append(PricePart(("face_head", feature), functools.partial(_head_branch, feature), after(source)))
        return parts

    def summary(self, subnet: Subnet) -> str:
        return structure_block(self.structure(subnet)) + f"\ninput size: {subnet.image_size}"

    def source_key(self, key: str, subnet: Subnet) -> str:
        """PaddleDetection numbers a subnet's blaze blocks from 0 over its own depths: map block k to the
        supernet's block at the same stage and position; with 5x5 in the space `..._dw_1` is `..._dw`."""
        if self._keys is None:
            self._keys = set(self.state_dict())
        parts = key.split(".")
        if len(parts) > 2 and parts[0] == "backbone" and parts[1].startswith("blaze_"):
            index = int(parts[1][len("blaze_") :])
            depth = subnet.settings["backbone"]["depth"][0]
            own = f"blaze_{index if index < depth else self.max_depths[0] + index - depth}"
            parts[2] = own + parts[2][len(parts[1]) :] if parts[2].startswith(parts[1]) else parts[2]
            parts[1] = own
            key = ".".join(parts)
        if key not in self._keys:
            key = key.replace("_dw_1.", "_dw.")
        return key

    def export(self, subnet: Subnet, model: nn.Layer, save_dir: str) -> List[str]:
        return export_model(self.structure(subnet), model, save_dir)

    def head_outputs(self, image: paddle.Tensor) -> Tuple[List[paddle.Tensor], List[paddle.Tensor], Any]:
        """FaceHead's box and score predictions (per feature map) and its anchors, for the active subnet."""
        feats = self.neck(self.backbone(image))
        head = self.blaze_head
        boxes, scores = [], []
        for i, feat in enumerate(feats):
            box, score = getattr(head, f"boxes{i}")(feat), getattr(head, f"scores{i}")(feat)
            boxes.append(paddle.reshape(paddle.transpose(box, [0, 2, 3, 1]), [0, -1, 4]))
            scores.append(paddle.reshape(paddle.transpose(score, [0, 2, 3, 1]), [0, -1, head.num_classes]))
        return boxes, scores, head.anchor_generator(feats, image)

    def ssd_loss(
        self, data: Mapping[str, Any], boxes: List[paddle.Tensor], scores: List[paddle.Tensor], anchors: Any
    ) -> paddle.Tensor:
        return self.blaze_head.get_loss(boxes, scores, data["gt_bbox"], data["gt_class"], anchors)

    def forward(self, data: Mapping[str, Any]) -> Dict[str, paddle.Tensor]:
        boxes, scores, anchors = self.head_outputs(data["image"])
        if self.training:
            return {"loss": self.ssd_loss(data, boxes, scores, anchors)}
        bbox, bbox_num = self.post_process((boxes, scores), anchors, data["im_shape"], data["scale_factor"])
        return {"bbox": bbox, "bbox_num": bbox_num}
