"""The weight-sharing BlazeFace supernet: BlazeNet at the largest setting of BlazeFaceNasSpace, sliced per subnet.

Written here, not with PaddleSlim 2.6's OFA layers, because four of OFA's parts are broken for this model
(see ../shared/notes/ONESHOT.md): SuperBatchNorm2D latches train/eval mode on its first call, `export`
keeps uncut BN and uncropped kernels, its distillation config raises, and a converted ppdet BlazeNet fails
at the residual add of a narrow subnet. Here every conv holds its largest weight and a subnet takes the
first c output (and input) channels and the centre k x k of the kernel; BatchNorm normalises with the
active slice of its statistics and reads `self.training` on every call, so there is no mode latch.

Parameter names are those of PaddleDetection's `BlazeFace` at the largest setting, so a subnet's weights
are a slice of the same key (see ppnas/oneshot/export.py). With 5x5 in the space, a 3x3 subnet runs the
centre 3x3 of the 5x5 conv (`...1_dw`) at stride 1 followed by a second 3x3 conv (`...1_dw_2`, its own
weights) at the block's stride, which is how ppdet's BlazeBlock builds its 3x3 variant.
The head's convs (ppdet's FaceHead) take the first c input channels; anchors, SSD loss and post-processing
are ppdet's own objects, built by the detection task's `build_blazeface`.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal

from ppnas.errors import ConfigError
from ppnas.tasks.detection import build_blazeface

Structure = Mapping[str, Any]
BACKBONE_CONV_LR = 0.1  # ppdet's BlazeNet ConvBNLayer: conv weights learn at a tenth of the base rate


def max_tokens(space: Any) -> List[int]:
    """The largest setting: every value list is increasing, so the last index of each token."""
    return [n - 1 for n in space.range_table()]


def min_tokens(space: Any) -> List[int]:
    return [0] * len(space.range_table())


class SlicedBatchNorm(nn.BatchNorm2D):
    """BatchNorm2D at the largest width; a call on c channels uses and updates only the first c statistics.

    `calibration` (a list) makes train-mode calls collect (batch mean, biased batch variance) instead of
    updating the running statistics, for BN calibration (see ppnas/oneshot/algorithm.py).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.calibration: Optional[List[Tuple[paddle.Tensor, paddle.Tensor]]] = None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        c = x.shape[1]
        weight, bias = self.weight[:c], self.bias[:c]
        if not self.training:
            return F.batch_norm(
                x, self._mean[:c], self._variance[:c], weight, bias, training=False, epsilon=self._epsilon
            )
        if self.calibration is not None:
            with paddle.no_grad():
                self.calibration.append((x.mean(axis=[0, 2, 3]), x.var(axis=[0, 2, 3], unbiased=False)))
        # paddle updates the running statistics it is given in place: give it copies of the active
        # slice, then write them back next to the untouched inactive channels
        mean, variance = self._mean[:c].clone(), self._variance[:c].clone()
        out = F.batch_norm(
            x, mean, variance, weight, bias, training=True, momentum=self._momentum, epsilon=self._epsilon
        )
        if self.calibration is None:
            self.write_statistics(mean, variance)
        return out

    @paddle.no_grad()
    def write_statistics(self, mean: paddle.Tensor, variance: paddle.Tensor) -> None:
        c = mean.shape[0]
        self._mean.set_value(paddle.concat([mean, self._mean[c:]]))
        self._variance.set_value(paddle.concat([variance, self._variance[c:]]))


class SlicedConvBN(nn.Layer):
    """ppdet's ConvBNLayer (conv without bias, BN, activation) at the largest width and kernel."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, depthwise: bool = False, act: Optional[str] = "relu"
    ) -> None:
        super().__init__()
        self.depthwise = depthwise
        self.act = act
        self._conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size=kernel,
            groups=out_channels if depthwise else 1,
            weight_attr=ParamAttr(learning_rate=BACKBONE_CONV_LR, initializer=KaimingNormal()),
            bias_attr=False,
        )
        self._batch_norm = SlicedBatchNorm(out_channels)

    def forward(self, x: paddle.Tensor, out_channels: int, kernel: int = 1, stride: int = 1) -> paddle.Tensor:
        weight = self._conv.weight
        in_slice = 1 if self.depthwise else x.shape[1]
        offset = (weight.shape[-1] - kernel) // 2
        weight = weight[:out_channels, :in_slice, offset : offset + kernel, offset : offset + kernel]
        y = F.conv2d(x, weight, stride=stride, padding=kernel // 2, groups=out_channels if self.depthwise else 1)
        y = self._batch_norm(y)
        if self.act == "relu":
            return F.relu(y)
        if self.act == "relu6":
            return F.relu6(y)
        if self.act == "leaky":
            return F.leaky_relu(y)
        if self.act == "hard_swish":
            return y * F.relu6(y + 3) / 6.0
        return y


def _depthwise(
    first: SlicedConvBN, second: SlicedConvBN, x: paddle.Tensor, channels: int, use_5x5: bool, stride: int
) -> paddle.Tensor:
    """One depthwise position of a BlazeBlock: the 5x5 conv, or the centre 3x3 of it and then the second 3x3."""
    if use_5x5:
        return first(x, channels, kernel=5, stride=stride)
    return second(first(x, channels, kernel=3, stride=1), channels, kernel=3, stride=stride)


class SuperBlazeBlock(nn.Layer):
    """ppdet's BlazeBlock at the largest channels; forward takes the subnet's channels of this block."""

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
        self.stride = stride
        self.double = double is not None
        first = "_dw" if kernel_max == 5 else "_dw_1"  # ppdet's name of the first conv at the largest kernel
        self.dw_names = [(f"{name}1{first}", f"{name}1_dw_2")]
        self.add_sublayer(self.dw_names[0][0], SlicedConvBN(in_channels, in_channels, kernel_max, depthwise=True))
        self.add_sublayer(self.dw_names[0][1], SlicedConvBN(in_channels, in_channels, 3, depthwise=True))
        self.conv_pw = SlicedConvBN(in_channels, mid, 1, act=act if self.double else None)
        if self.double:
            self.dw_names.append((f"{name}2{first}", f"{name}2_dw_2"))
            self.add_sublayer(self.dw_names[1][0], SlicedConvBN(mid, mid, kernel_max, depthwise=True))
            self.add_sublayer(self.dw_names[1][1], SlicedConvBN(mid, mid, 3, depthwise=True))
            self.conv_pw2 = SlicedConvBN(mid, double, 1)
        self.shortcut_name = f"{name}_shortcut_conv"
        if stride != 1:
            self.add_sublayer(self.shortcut_name, SlicedConvBN(in_channels, double or mid, 1))

    def _dw(self, position: int, x: paddle.Tensor, channels: int, use_5x5: bool, stride: int) -> paddle.Tensor:
        first, second = (getattr(self, n) for n in self.dw_names[position])
        return _depthwise(first, second, x, channels, use_5x5, stride)

    def forward(self, x: paddle.Tensor, filters: Sequence[int], use_5x5: bool) -> paddle.Tensor:
        # filters as in the space: [in (= the depthwise channels), mid] or [in, mid, double]
        channels, out = filters[0], filters[1]
        y = self._dw(0, x, channels, use_5x5, self.stride)
        y = self.conv_pw(y, out)
        if self.double:
            y = self._dw(1, y, out, use_5x5, 1)
            out = filters[2]
            y = self.conv_pw2(y, out)
        if self.stride != 1:
            x = F.max_pool2d(x, kernel_size=self.stride, stride=self.stride, ceil_mode=True)
            x = getattr(self, self.shortcut_name)(x, out)
        return F.relu(paddle.add(x, y))


def _block_filters(structure: Structure) -> List[List[int]]:
    """Each block's [dw channels, mid, (double)] in order, blaze blocks then double blocks."""
    out = [[b[0], b[1]] for b in structure["blaze_filters"]]
    return out + [[d[0], d[1], d[2]] for d in structure["double_blaze_filters"]]


class SuperBlazeNet(nn.Layer):
    """BlazeNet at the largest structure; forward(image, structure) runs that subnet."""

    def __init__(self, largest: Structure, kernel_max: int, act: Optional[str]) -> None:
        super().__init__()
        first = largest["blaze_filters"][0][0]
        self.conv1 = SlicedConvBN(3, first, 3)
        self.blocks: List[SuperBlazeBlock] = []
        in_channels = first
        specs = [("blaze", b[0], b[1], None, b[2] if len(b) == 3 else 1) for b in largest["blaze_filters"]]
        specs += [
            ("double_blaze", d[0], d[1], d[2], d[3] if len(d) == 4 else 1) for d in largest["double_blaze_filters"]
        ]
        counts: Dict[str, int] = {}
        for kind, channels, mid, double, stride in specs:
            if channels != in_channels:
                raise ConfigError(f"the supernet needs depthwise blocks (channels {channels} != input {in_channels})")
            index = counts[kind] = counts.get(kind, -1) + 1
            name = f"{kind}_{index}"
            block = SuperBlazeBlock(in_channels, mid, double, stride, kernel_max, act, name)
            self.blocks.append(self.add_sublayer(name, block))
            in_channels = double or mid

    def forward(self, image: paddle.Tensor, structure: Structure) -> List[paddle.Tensor]:
        use_5x5 = bool(structure.get("use_5x5kernel", False))
        y = self.conv1(image, structure["blaze_filters"][0][0], kernel=3, stride=2)
        outs = []
        for block, filters in zip(self.blocks, _block_filters(structure)):
            y = block(y, filters, use_5x5)
            outs.append(y)
        return [outs[-4], outs[-1]]


class BlazeFaceSupernet(nn.Layer):
    """BlazeNet + BlazeNeck + FaceHead sharing weights over BlazeFaceNasSpace.

    Behaves as ppdet's BlazeFace for the active subnet (`set_subnet`): `model(data)` gives {'loss'} in
    train mode and {'bbox', 'bbox_num'} in eval mode, so the detection task's evaluation runs on it.
    """

    def __init__(self, space: Any, model_cfg: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        cfg = dict(model_cfg or {})
        neck_type = str((cfg.get("BlazeNeck") or {}).get("neck_type", "None"))
        if neck_type != "None":
            raise ConfigError(f"the supernet supports BlazeNeck.neck_type None only (no neck weights), got {neck_type}")
        self.space = space
        self.kernel_max = max(space.kernel_choices)
        self.largest = dict(space.decode(max_tokens(space)))
        act = (cfg.get("BlazeNet") or {}).get("act", "relu")
        self.backbone = SuperBlazeNet(self.largest, self.kernel_max, act)
        reference = build_blazeface(self.largest, cfg)  # ppdet's neck, head, anchors, loss, post-process
        self.neck = reference.neck
        self.blaze_head = reference.blaze_head
        self.post_process = reference.post_process
        self.active: Dict[str, Any] = dict(self.largest)

    def set_subnet(self, structure: Structure) -> None:
        self.active = dict(structure)

    def head_outputs(self, image: paddle.Tensor) -> Tuple[List[paddle.Tensor], List[paddle.Tensor], Any]:
        """FaceHead's box and score predictions (per feature map) and its anchors, for the active subnet."""
        feats = self.neck(self.backbone(image, self.active))
        head = self.blaze_head
        boxes, scores = [], []
        for feat, box_conv, score_conv in zip(feats, head.box_convs, head.score_convs):
            c = feat.shape[1]
            box = F.conv2d(feat, box_conv.weight[:, :c], box_conv.bias, padding=box_conv._padding)
            score = F.conv2d(feat, score_conv.weight[:, :c], score_conv.bias, padding=score_conv._padding)
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
