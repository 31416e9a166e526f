"""PFLD (backbone + auxiliary angle net) with its searched slots filled by mixed ops or by chosen candidates.

Backbone (NNI's PFLD example, generalised to the stages of the config): the stem (conv 3x3/2 = feature y1,
depthwise-separable 3x3/2 = the auxiliary net's input, the entry block /2 to the first stage's channels;
ppnas/fbnet/stem_head.py) -> the searched layers, stage by stage (a stage's first layer takes its stride) ->
multi-scale concat of every stage's output and y1, each brought to the last stage's map by a strided
depthwise conv (kernel stride+1, padding 1, as the example's 9/8 and 3/2 pools) -> the head (1x1 conv,
inverted residual with SE, separable conv, depthwise conv over the whole map, 1x1 conv to 2 x num_points).
The auxiliary net (conv stack, global max pool, two fc) predicts pitch, yaw, roll from the stem's feature.

Searched slots (`SupernetSpec.layers`, in this order): the stem when `stem_channels` or `entry` lists more
than one choice (candidates `stem<width>_<entry>`), every layer of every stage (a stage's candidate blocks;
`skip` only for its non-first layers), and the head when `head_channels` lists more than one width
(candidates `head<width>`). An unsearched stem or head is fixed, and priced in the LUT's fixed part.

The supernet (`FBNetSupernet`) fills each searched slot with a `MixedOp` over its candidates and owns one
architecture parameter vector per slot; the plain subnet (`LandmarkModel`) has one candidate per slot. Both
share every other sublayer's name, so the chosen candidates' weights carry over by name.
"""

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppnas.config import check_keys
from ppnas.errors import ConfigError
from ppnas.fbnet.blocks import SKIP, build_block, check_candidate, conv_bn
from ppnas.fbnet.stem_head import Head, Stem, depthwise_pool, head_name, parse_stem, stem_name
from ppnas.storage import text_hash

STAGE_KEYS = ("name", "layers", "channels", "stride", "candidates")
SUPERNET_DEFAULTS: Dict[str, Any] = {
    "input_size": 112,
    "num_points": 106,
    "stem_channels": 16,  # a width, or a list of widths to search
    "entry": "mb_k3_e2_res",  # the entry block (stride 2) after the stem, or a list of blocks to search
    "head_channels": 64,  # a width, or a list of widths to search
    "stages": [],
    "baseline": None,  # one candidate name per searched slot: the in-supernet model the benchmark compares with
}
STEM, BLOCK, HEAD = "stem", "block", "head"


@dataclass(frozen=True)
class LayerSlot:
    """One searched slot: where it sits and what it may be."""

    index: int  # position among the searched slots (the architecture parameter vector it owns)
    stage: str  # the stage's name, or "stem" / "head"
    c_in: int
    c_out: int
    stride: int
    size: int  # input height = width
    candidates: Tuple[str, ...]
    kind: str = BLOCK  # stem | block | head

    @property
    def input_shape(self) -> List[int]:
        return [1, self.c_in, self.size, self.size]


@dataclass
class SupernetSpec:
    input_size: int
    num_points: int
    stem_channels: List[int]
    entry: List[str]
    head_channels: List[int]
    stages: List[Dict[str, Any]]
    baseline: Optional[List[str]]
    layers: List[LayerSlot] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "input_size": self.input_size,
            "num_points": self.num_points,
            "stem_channels": self.stem_channels,
            "entry": self.entry,
            "head_channels": self.head_channels,
            "stages": self.stages,
        }

    def fingerprint(self) -> str:
        """What a LUT depends on in the supernet: a hash of its structure (not of the baseline)."""
        return text_hash(json.dumps(self.as_dict(), sort_keys=True))

    @property
    def stem_candidates(self) -> List[str]:
        return [stem_name(width, entry) for width in self.stem_channels for entry in self.entry]

    @property
    def head_candidates(self) -> List[str]:
        return [head_name(width) for width in self.head_channels]

    def slot(self, kind: str) -> Optional[LayerSlot]:
        """The searched stem or head slot (None when that end is fixed)."""
        return next((s for s in self.layers if s.kind == kind), None)

    @property
    def block_slots(self) -> List[LayerSlot]:
        return [s for s in self.layers if s.kind == BLOCK]

    @property
    def stage_ends(self) -> List[int]:
        """Index among the block slots of the last layer of each stage."""
        ends, count = [], 0
        for stage in self.stages:
            count += stage["layers"]
            ends.append(count - 1)
        return ends

    @property
    def final_size(self) -> int:
        last = self.block_slots[-1]
        return last.size // last.stride

    def concat_channels(self, stem_width: int) -> int:
        """Channels of the multi-scale concat (every stage's output, then y1) for a stem of `stem_width`."""
        return sum(stage["channels"] for stage in self.stages) + stem_width

    def choice_indexes(self, names: Sequence[str], where: str) -> List[int]:
        """Per-slot candidate indexes of a list of candidate names (one per searched slot)."""
        if len(names) != len(self.layers):
            raise ConfigError(
                f"{where} names {len(names)} candidates; the supernet has {len(self.layers)} searched slots"
            )
        out = []
        for slot, name in zip(self.layers, names):
            if name not in slot.candidates:
                raise ConfigError(
                    f"{where}: '{name}' is not a candidate of layer {slot.index} ({slot.stage}); "
                    f"its candidates: {', '.join(slot.candidates)}"
                )
            out.append(slot.candidates.index(name))
        return out


def _choices(value: Any, key: str, cast: type) -> List[Any]:
    """A value or a non-empty list of distinct values of `cast` (a width or a block name)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        out = [cast(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"Supernet.{key} must be one {cast.__name__} or a list of them, got {value!r}") from None
    if not out or len(set(out)) != len(out) or (cast is int and min(out) < 1):
        raise ConfigError(f"Supernet.{key} must list distinct, positive choices, got {value!r}")
    return out


def _stage(number: int, stage: Any) -> Dict[str, Any]:
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
    if candidates == [SKIP]:
        raise ConfigError(f"stage '{name}' lists only '{SKIP}': its first layer needs a block (skip is for the others)")
    layers, channels, stride = int(stage.get("layers", 0)), int(stage.get("channels", 0)), int(stage.get("stride", 1))
    if layers < 1 or channels < 1 or stride not in (1, 2):
        raise ConfigError(f"stage '{name}' needs layers >= 1, channels >= 1 and stride 1 or 2")
    return {"name": name, "layers": layers, "channels": channels, "stride": stride, "candidates": candidates}


def supernet_spec(block: Optional[Mapping[str, Any]]) -> SupernetSpec:
    """The `Supernet` block of a config, checked: a stage needs layers and known candidates, the stem and head
    choices must be valid, and every map size must divide evenly down to the last stage's."""
    block = dict(block or {})
    check_keys(block, SUPERNET_DEFAULTS, where="Supernet")
    cfg = {**SUPERNET_DEFAULTS, **block}
    if not cfg["stages"]:
        raise ConfigError("Supernet.stages is empty: give at least one stage with layers, channels and candidates")
    stages = [_stage(number, stage) for number, stage in enumerate(cfg["stages"])]
    size = int(cfg["input_size"])
    if size % 8:
        raise ConfigError(f"Supernet.input_size must be a multiple of 8, got {size}")
    entry = _choices(cfg["entry"], "entry", str)
    for name in entry:
        check_candidate(name, "Supernet.entry")
        if name == SKIP:
            raise ConfigError(f"Supernet.entry cannot be '{SKIP}': the entry block changes channels and strides by 2")
    spec = SupernetSpec(
        input_size=size,
        num_points=int(cfg["num_points"]),
        stem_channels=_choices(cfg["stem_channels"], "stem_channels", int),
        entry=entry,
        head_channels=_choices(cfg["head_channels"], "head_channels", int),
        stages=stages,
        baseline=list(cfg["baseline"]) if cfg["baseline"] else None,
    )
    _add_slots(spec)
    final = spec.final_size
    sources = [size // 2] + [spec.block_slots[end].size // spec.block_slots[end].stride for end in spec.stage_ends]
    for source in sources:
        if source % final:
            raise ConfigError(f"a {source}x{source} feature cannot be pooled to the final {final}x{final} map")
    if spec.baseline is not None:
        spec.choice_indexes(spec.baseline, "Supernet.baseline")
    return spec


def _add_slots(spec: SupernetSpec) -> None:
    """The searched slots in forward order: stem (if searched), every stage layer, head (if searched)."""
    c_in, size = spec.stages[0]["channels"], spec.input_size // 8  # stem /2, separable /2, entry block /2
    if len(spec.stem_candidates) > 1:
        spec.layers.append(LayerSlot(0, STEM, 3, c_in, 8, spec.input_size, tuple(spec.stem_candidates), STEM))
    for stage in spec.stages:
        for i in range(stage["layers"]):
            stride = stage["stride"] if i == 0 else 1
            if size % stride:
                raise ConfigError(f"stage '{stage['name']}': a {size}x{size} map cannot be strided by {stride}")
            candidates = tuple(c for c in stage["candidates"] if i > 0 or c != SKIP)
            spec.layers.append(
                LayerSlot(len(spec.layers), stage["name"], c_in, stage["channels"], stride, size, candidates)
            )
            c_in, size = stage["channels"], size // stride
    if len(spec.head_candidates) > 1:
        c_in = spec.concat_channels(spec.stem_channels[0])  # priced with the first stem (see docs/fbnet.md)
        slot = LayerSlot(len(spec.layers), HEAD, c_in, 2 * spec.num_points, 1, size, tuple(spec.head_candidates), HEAD)
        spec.layers.append(slot)


def slot_label(slot: LayerSlot) -> str:
    """How reports and figures name a searched slot."""
    return slot.kind if slot.kind != BLOCK else f"layer {slot.index} ({slot.stage})"


def candidate_layer(spec: SupernetSpec, slot: LayerSlot, name: str) -> nn.Layer:
    """Candidate `name` of `slot` alone, at the slot's input (what the LUT prices)."""
    if slot.kind == STEM:
        return Stem(name, slot.c_out, spec.input_size, spec.final_size)
    if slot.kind == HEAD:
        return Head(name, slot.c_in, slot.size, spec.num_points)
    return build_block(name, slot.c_in, slot.c_out, slot.stride)


def _pad_channels(x: paddle.Tensor, channels: int) -> paddle.Tensor:
    if x.shape[1] == channels:
        return x
    zeros = paddle.zeros([x.shape[0], channels - x.shape[1], *x.shape[2:]], dtype=x.dtype)
    return paddle.concat([x, zeros], axis=1)


def _weighted_sum(outputs: Sequence[paddle.Tensor], weights: paddle.Tensor) -> paddle.Tensor:
    widest = max(out.shape[1] for out in outputs)
    return paddle.add_n([weights[i] * _pad_channels(out, widest) for i, out in enumerate(outputs)])


Output = Union[paddle.Tensor, Tuple[paddle.Tensor, ...]]


class MixedOp(nn.Layer):
    """sum_i w_i * op_i(x) over a slot's candidates (FBNet's mixed op). Outputs narrower than the widest
    candidate's are padded with zero channels; a candidate that returns a tuple is mixed element by element."""

    def __init__(self, ops: Sequence[nn.Layer]) -> None:
        super().__init__()
        self.ops = nn.LayerList(list(ops))

    def forward(self, x: paddle.Tensor, weights: paddle.Tensor) -> Output:
        outputs = [op(x) for op in self.ops]
        if isinstance(outputs[0], tuple):
            return tuple(_weighted_sum([out[k] for out in outputs], weights) for k in range(len(outputs[0])))
        return _weighted_sum(outputs, weights)


class PFLDBackbone(nn.Layer):
    """Image -> (landmarks [N, 2 * num_points], the stem's feature for the auxiliary net); see the module
    docstring. `choices` (one candidate per searched slot) builds the plain subnet, None the supernet."""

    def __init__(self, spec: SupernetSpec, choices: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        self.stem_slot, self.head_slot = spec.slot(STEM), spec.slot(HEAD)
        self.block_slots, self.stage_ends = spec.block_slots, spec.stage_ends
        final, first = spec.final_size, spec.stages[0]["channels"]

        def names(slot: Optional[LayerSlot], fixed: str) -> List[str]:
            if slot is None:
                return [fixed]
            return list(slot.candidates) if choices is None else [choices[slot.index]]

        def layer(slot: Optional[LayerSlot], ops: List[nn.Layer]) -> nn.Layer:
            return MixedOp(ops) if slot is not None and choices is None else ops[0]

        stems = names(self.stem_slot, spec.stem_candidates[0])
        self.stem_width = max(parse_stem(name)[0] for name in stems)  # the widest: narrower ones are zero-padded
        self.stem = layer(self.stem_slot, [Stem(name, first, spec.input_size, final) for name in stems])
        self.blocks = nn.LayerList(
            [layer(s, [build_block(n, s.c_in, s.c_out, s.stride) for n in names(s, "")]) for s in self.block_slots]
        )
        ends = [self.block_slots[e] for e in self.stage_ends]
        self.pools = nn.LayerList([depthwise_pool(s.c_out, s.size // s.stride, final) for s in ends])
        c_in = spec.concat_channels(self.stem_width)
        heads = names(self.head_slot, spec.head_candidates[0])
        self.head = layer(self.head_slot, [Head(name, c_in, final, spec.num_points) for name in heads])

    def slot_prefixes(self) -> Dict[str, int]:
        """The state-dict prefix of each searched slot's layer ("backbone.stem." ...) -> the slot's index."""
        named = [("stem.", self.stem_slot), ("head.", self.head_slot)]
        named += [(f"blocks.{i}.", slot) for i, slot in enumerate(self.block_slots)]
        return {f"backbone.{prefix}": slot.index for prefix, slot in named if slot is not None}

    def forward(
        self, x: paddle.Tensor, weights: Optional[Sequence[paddle.Tensor]] = None
    ) -> Tuple[paddle.Tensor, paddle.Tensor]:
        def run(layer: nn.Layer, slot: Optional[LayerSlot], inputs: paddle.Tensor) -> Output:
            return layer(inputs) if weights is None or slot is None else layer(inputs, weights[slot.index])

        x, y1, features = run(self.stem, self.stem_slot, x)
        scales = []
        for i, (slot, block) in enumerate(zip(self.block_slots, self.blocks)):
            x = run(block, slot, x)
            if i in self.stage_ends:
                scales.append(self.pools[len(scales)](x))
        # y1 last: a narrower stem's y1 is the leading part of the widest one's (ppnas/fbnet/stem_head.py)
        return run(self.head, self.head_slot, paddle.concat(scales + [y1], axis=1)), features


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
    """What the supernet needs of a LUT: per-slot candidate prices, the fixed part, the calibration."""

    per_layer: List[List[float]]
    fixed: float
    slope: float = 1.0
    offset: float = 0.0
    scale: float = 1.0  # LUT unit -> loss unit (ms, or MFLOPs)


class FBNetSupernet(nn.Layer):
    """PFLD with mixed ops, the auxiliary net, and one architecture parameter vector per searched slot.

    forward(images, temperature, gumbel) -> (landmarks, angles, expected latency of the searched part, expected
    latency of the whole model), both latencies in loss units (ms, or MFLOPs): training samples the mixing
    weights with Gumbel-softmax; `gumbel=False` uses softmax(alpha / temperature).
    """

    def __init__(self, spec: SupernetSpec, latency: LatencyVectors) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = PFLDBackbone(spec)
        self.aux = AuxiliaryNet(self.backbone.stem_width)
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

    def expected_latency(self, weights: Sequence[paddle.Tensor]) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """(searched part, whole model) in loss units: the searched part is what the architecture parameters
        change (the calibration's slope times each slot's price mix); the whole model adds the fixed part and
        the calibration's offset."""
        lat = self.latency
        mixed = paddle.add_n([paddle.sum(w * getattr(self, f"lut_{i}")) for i, w in enumerate(weights)])
        return lat.slope * mixed * lat.scale, (lat.slope * (mixed + lat.fixed) + lat.offset) * lat.scale

    def forward(
        self, images: paddle.Tensor, temperature: float = 1.0, gumbel: bool = True
    ) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        weights = self.mixing_weights(temperature, gumbel)
        landmarks, features = self.backbone(images, weights)
        return (landmarks, self.aux(features), *self.expected_latency(weights))

    def probabilities(self) -> List[List[float]]:
        return [F.softmax(alpha).numpy().tolist() for alpha in self.alphas]


class LandmarkModel(nn.Layer):
    """The plain PFLD of one candidate per searched slot, with its auxiliary net: images -> (landmarks, angles)."""

    def __init__(self, spec: SupernetSpec, choices: Sequence[str]) -> None:
        super().__init__()
        self.spec = spec
        self.choices = list(choices)
        spec.choice_indexes(self.choices, "the subnet")
        self.backbone = PFLDBackbone(spec, self.choices)
        self.aux = AuxiliaryNet(self.backbone.stem_width)

    def forward(self, images: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        landmarks, features = self.backbone(images)
        return landmarks, self.aux(features)


class LandmarkForward(nn.Layer):
    """What is deployed and timed: image -> landmarks (the auxiliary net is for training only)."""

    def __init__(self, backbone: nn.Layer) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.backbone(images)[0]
