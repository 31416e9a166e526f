"""PFLD (backbone + auxiliary angle net) with its searched layers filled by mixed ops or by chosen blocks.

Backbone (NNI's PFLD example, generalised to the stages of the config): stem conv 3x3/2 (feature y1) ->
depthwise-separable 3x3/2 (the auxiliary net's input) -> inverted residual /2 to the first stage's
channels -> the searched layers, stage by stage (a stage's first layer takes its stride) -> multi-scale
concat of y1 and every stage's output, each brought to the last stage's map by a strided depthwise conv
(kernel stride+1, padding 1, as the example's 9/8 and 3/2 pools) -> 1x1 conv -> inverted residual with SE
-> separable conv -> depthwise conv over the whole map -> 1x1 conv to 2 x num_points outputs.
The auxiliary net (conv stack, global max pool, two fc) predicts pitch, yaw, roll from the stem feature.

The supernet (`FBNetSupernet`) fills each searched layer with a `MixedOp` over the layer's candidates and
owns one architecture parameter vector per layer; the plain subnet (`LandmarkModel`) uses one block per
layer. Both share every other sublayer's name, so the chosen blocks' weights carry over by name.
"""

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppnas.config import check_keys
from ppnas.errors import ConfigError
from ppnas.fbnet.blocks import BlockSpec, InvertedResidual, SeparableConv, build_block, check_candidate, conv_bn
from ppnas.storage import text_hash

STAGE_KEYS = ("name", "layers", "channels", "stride", "candidates")
SUPERNET_DEFAULTS: Dict[str, Any] = {
    "input_size": 112,
    "num_points": 106,
    "stem_channels": 16,
    "head_channels": 64,
    "stages": [],
    "baseline": None,  # one candidate name per searched layer: the fixed model the benchmark compares with
}
ENTRY_BLOCK = BlockSpec("mb", 3, expansion=2)


@dataclass(frozen=True)
class LayerSlot:
    """One searched layer: where it sits and what it may be."""

    index: int
    stage: str
    c_in: int
    c_out: int
    stride: int
    size: int  # input height = width
    candidates: Tuple[str, ...]

    @property
    def input_shape(self) -> List[int]:
        return [1, self.c_in, self.size, self.size]


@dataclass
class SupernetSpec:
    input_size: int
    num_points: int
    stem_channels: int
    head_channels: int
    stages: List[Dict[str, Any]]
    baseline: Optional[List[str]]
    layers: List[LayerSlot] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "input_size": self.input_size,
            "num_points": self.num_points,
            "stem_channels": self.stem_channels,
            "head_channels": self.head_channels,
            "stages": self.stages,
        }

    def fingerprint(self) -> str:
        """What a LUT depends on in the supernet: a hash of its structure (not of the baseline)."""
        return text_hash(json.dumps(self.as_dict(), sort_keys=True))

    @property
    def stage_ends(self) -> List[int]:
        """Index of the last layer of each stage."""
        ends, count = [], 0
        for stage in self.stages:
            count += stage["layers"]
            ends.append(count - 1)
        return ends

    @property
    def final_size(self) -> int:
        return self.layers[-1].size // self.layers[-1].stride

    def choice_indexes(self, names: Sequence[str], where: str) -> List[int]:
        """Per-layer candidate indexes of a list of block names (one per searched layer)."""
        if len(names) != len(self.layers):
            raise ConfigError(f"{where} names {len(names)} blocks; the supernet has {len(self.layers)} searched layers")
        out = []
        for slot, name in zip(self.layers, names):
            check_candidate(name, where)
            if name not in slot.candidates:
                raise ConfigError(
                    f"{where}: '{name}' is not a candidate of layer {slot.index} ({slot.stage}); "
                    f"its candidates: {', '.join(slot.candidates)}"
                )
            out.append(slot.candidates.index(name))
        return out


def supernet_spec(block: Optional[Mapping[str, Any]]) -> SupernetSpec:
    """The `Supernet` block of a config, checked: a stage needs layers and known candidates, and every map
    size must divide evenly down to the last stage's."""
    block = dict(block or {})
    check_keys(block, SUPERNET_DEFAULTS, where="Supernet")
    cfg = {**SUPERNET_DEFAULTS, **block}
    stages = []
    if not cfg["stages"]:
        raise ConfigError("Supernet.stages is empty: give at least one stage with layers, channels and candidates")
    for number, stage in enumerate(cfg["stages"]):
        if not isinstance(stage, Mapping):
            raise ConfigError(f"Supernet.stages[{number}] must be a mapping of {', '.join(STAGE_KEYS)}")
        check_keys(stage, STAGE_KEYS, where=f"Supernet.stages[{number}]")
        name = str(stage.get("name", f"stage_{number}"))
        candidates = list(stage.get("candidates") or [])
        if not candidates:
            raise ConfigError(f"stage '{name}' has no candidates: list at least one block name")
        for candidate in candidates:
            check_candidate(candidate, f"stage '{name}'")
        if len(set(candidates)) != len(candidates):
            raise ConfigError(f"stage '{name}' lists a candidate twice: {candidates}")
        layers, channels, stride = (
            int(stage.get("layers", 0)),
            int(stage.get("channels", 0)),
            int(stage.get("stride", 1)),
        )
        if layers < 1 or channels < 1 or stride not in (1, 2):
            raise ConfigError(f"stage '{name}' needs layers >= 1, channels >= 1 and stride 1 or 2")
        stages.append(
            {"name": name, "layers": layers, "channels": channels, "stride": stride, "candidates": candidates}
        )
    size = int(cfg["input_size"])
    if size % 8:
        raise ConfigError(f"Supernet.input_size must be a multiple of 8, got {size}")
    spec = SupernetSpec(
        input_size=size,
        num_points=int(cfg["num_points"]),
        stem_channels=int(cfg["stem_channels"]),
        head_channels=int(cfg["head_channels"]),
        stages=stages,
        baseline=list(cfg["baseline"]) if cfg["baseline"] else None,
    )
    c_in, size = stages[0]["channels"], size // 8  # stem /4, entry block /2
    for stage in stages:
        for i in range(stage["layers"]):
            stride = stage["stride"] if i == 0 else 1
            if size % stride:
                raise ConfigError(f"stage '{stage['name']}': a {size}x{size} map cannot be strided by {stride}")
            spec.layers.append(
                LayerSlot(
                    len(spec.layers), stage["name"], c_in, stage["channels"], stride, size, tuple(stage["candidates"])
                )
            )
            c_in, size = stage["channels"], size // stride
    final = spec.final_size
    for source in [spec.input_size // 2] + [
        spec.layers[end].size // spec.layers[end].stride for end in spec.stage_ends
    ]:
        if source % final:
            raise ConfigError(f"a {source}x{source} feature cannot be pooled to the final {final}x{final} map")
    if spec.baseline is not None:
        spec.choice_indexes(spec.baseline, "Supernet.baseline")
    return spec


class MixedOp(nn.Layer):
    """sum_i w_i * op_i(x) over a layer's candidate blocks (FBNet's mixed op)."""

    def __init__(self, ops: Sequence[nn.Layer]) -> None:
        super().__init__()
        self.ops = nn.LayerList(list(ops))

    def forward(self, x: paddle.Tensor, weights: paddle.Tensor) -> paddle.Tensor:
        return paddle.add_n([weights[i] * op(x) for i, op in enumerate(self.ops)])


class PFLDBackbone(nn.Layer):
    """Image -> (landmarks [N, 2 * num_points], stem feature for the auxiliary net); see the module docstring."""

    def __init__(self, spec: SupernetSpec, make_layer: Callable[[LayerSlot], nn.Layer]) -> None:
        super().__init__()
        stem, first = spec.stem_channels, spec.stages[0]["channels"]
        self.stem = conv_bn(3, stem, 3, 2)
        self.stem_down = SeparableConv(stem, stem, 2)
        self.entry = InvertedResidual(stem, first, 2, ENTRY_BLOCK)
        self.blocks = nn.LayerList([make_layer(slot) for slot in spec.layers])
        self.stage_ends = spec.stage_ends
        final = spec.final_size
        sources = [(stem, spec.input_size // 2)]
        sources += [(spec.layers[e].c_out, spec.layers[e].size // spec.layers[e].stride) for e in self.stage_ends]
        self.pools = nn.LayerList(
            [
                nn.Conv2D(c, c, size // final + 1, size // final, 1, groups=c, bias_attr=False)
                if size > final
                else nn.Identity()
                for c, size in sources
            ]
        )
        head = spec.head_channels
        self.head = nn.Sequential(
            conv_bn(sum(c for c, _ in sources), head, 1),
            InvertedResidual(head, head, 1, BlockSpec("mb", 3, residual=True, se=True), mid=2 * head),
            SeparableConv(head, 2 * head, 1),
            nn.Conv2D(2 * head, 2 * head, final, groups=2 * head, bias_attr=False),
            # starts at the image centre with small weights: the points are normalised to [0, 1], and a
            # kaiming-sized output layer would begin tens of units off and spend the first epochs on scale
            nn.Conv2D(
                2 * head,
                2 * spec.num_points,
                1,
                weight_attr=nn.initializer.Normal(std=0.001),
                bias_attr=nn.initializer.Constant(0.5),
            ),
        )

    def forward(
        self, x: paddle.Tensor, weights: Optional[Sequence[paddle.Tensor]] = None
    ) -> Tuple[paddle.Tensor, paddle.Tensor]:
        y1 = self.stem(x)
        features = self.stem_down(y1)
        x = self.entry(features)
        scales = [y1]
        for i, block in enumerate(self.blocks):
            x = block(x) if weights is None else block(x, weights[i])
            if i in self.stage_ends:
                scales.append(x)
        x = paddle.concat([pool(s) for pool, s in zip(self.pools, scales)], axis=1)
        return paddle.flatten(self.head(x), 1), features


class AuxiliaryNet(nn.Layer):
    """Stem feature -> (pitch, yaw, roll) in degrees."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(c_in, 64, 3, 2),
            conv_bn(64, 64, 3),
            conv_bn(64, 32, 3, 2),
            conv_bn(32, 64, 3),
            nn.AdaptiveMaxPool2D(1),
        )
        self.fc = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(paddle.flatten(self.body(x), 1))


@dataclass
class LatencyVectors:
    """What the supernet needs of a LUT: per-layer candidate prices, the fixed part, the calibration."""

    per_layer: List[List[float]]
    fixed: float
    slope: float = 1.0
    offset: float = 0.0
    scale: float = 1.0  # LUT unit -> loss unit (FLOPs -> kFLOPs): the latency loss needs values > 1


class FBNetSupernet(nn.Layer):
    """PFLD with mixed ops, the auxiliary net, and one architecture parameter vector per searched layer.

    forward(images, temperature, gumbel) -> (landmarks, angles, expected latency in loss units): training
    samples the mixing weights with Gumbel-softmax; `gumbel=False` uses softmax(alpha / temperature).
    """

    def __init__(self, spec: SupernetSpec, latency: LatencyVectors) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = PFLDBackbone(
            spec, lambda slot: MixedOp([build_block(n, slot.c_in, slot.c_out, slot.stride) for n in slot.candidates])
        )
        self.aux = AuxiliaryNet(spec.stem_channels)
        self.alphas = nn.ParameterList(
            [
                self.create_parameter([len(slot.candidates)], default_initializer=nn.initializer.Constant(0.0))
                for slot in spec.layers
            ]
        )
        self.latency = latency
        for i, prices in enumerate(latency.per_layer):
            self.register_buffer(f"lut_{i}", paddle.to_tensor(prices, dtype="float32"), persistable=False)

    def arch_parameters(self) -> List[paddle.Tensor]:
        return list(self.alphas)

    def weight_parameters(self) -> List[paddle.Tensor]:
        arch = {id(p) for p in self.alphas}
        return [p for p in self.parameters() if id(p) not in arch]

    def mixing_weights(self, temperature: float, gumbel: bool) -> List[paddle.Tensor]:
        if gumbel:
            return [F.gumbel_softmax(alpha, temperature=temperature) for alpha in self.alphas]
        return [F.softmax(alpha / temperature) for alpha in self.alphas]

    def expected_latency(self, weights: Sequence[paddle.Tensor]) -> paddle.Tensor:
        """Calibrated sum of the fixed part and each layer's price mix, in loss units."""
        lat = self.latency
        raw = paddle.add_n([paddle.sum(w * getattr(self, f"lut_{i}")) for i, w in enumerate(weights)]) + lat.fixed
        return (lat.slope * raw + lat.offset) * lat.scale

    def forward(
        self, images: paddle.Tensor, temperature: float = 1.0, gumbel: bool = True
    ) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        weights = self.mixing_weights(temperature, gumbel)
        landmarks, features = self.backbone(images, weights)
        return landmarks, self.aux(features), self.expected_latency(weights)

    def probabilities(self) -> List[List[float]]:
        return [F.softmax(alpha).numpy().tolist() for alpha in self.alphas]


class LandmarkModel(nn.Layer):
    """The plain PFLD of one block per searched layer, with its auxiliary net: images -> (landmarks, angles)."""

    def __init__(self, spec: SupernetSpec, choices: Sequence[str]) -> None:
        super().__init__()
        self.spec = spec
        self.choices = list(choices)
        self.backbone = PFLDBackbone(
            spec, lambda slot: build_block(self.choices[slot.index], slot.c_in, slot.c_out, slot.stride)
        )
        self.aux = AuxiliaryNet(spec.stem_channels)

    def forward(self, images: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        landmarks, features = self.backbone(images)
        return landmarks, self.aux(features)


class LandmarkForward(nn.Layer):
    """What is deployed and timed: image -> landmarks (the auxiliary net is for training only)."""

    def __init__(self, backbone: PFLDBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.backbone(images)[0]
