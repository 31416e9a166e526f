"""What the latency tools (tools/latency.py, tools/build_latency_table.py, the latency benchmarks) need of a
search config: its space, input shape, table, and one measurable model (a `nn.Layer` taking one image) per
token list or published structure. It sits beside the tasks it builds from, not in `latency/`, which knows
nothing of tasks.

Detection configs are built with the detection task's own functions (ppnas.tasks.detection) but without
its datasets, so pricing a candidate needs no data; segmentation configs go through the DeepLab task; an
FBNet config (a `Supernet` block) gives one token per searched layer, the index of its candidate block.
"""

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import paddle

from ppnas.config import config_kind, load_config, merge, override_pairs, parse_overrides, resolve_path
from ppnas.errors import ConfigError


@dataclass
class CandidateSource:
    space_name: str
    input_shape: List[int]
    range_table: List[int]
    init_tokens: List[int]
    table_file: Optional[str]
    missing_keys: str
    decode: Callable[[Sequence[int]], Dict[str, Any]]
    measurable: Callable[[Sequence[int]], paddle.nn.Layer]
    measurable_structure: Optional[Callable[[Mapping[str, Any]], paddle.nn.Layer]] = None
    first_tokens: List[List[int]] = field(default_factory=list)  # sampled before any random draw

    def set_input_size(self, size: int) -> None:
        self.input_shape = [1, 3, int(size), int(size)]

    def sample_tokens(self, count: int, seed: int = 0) -> List[List[int]]:
        """`count` distinct token lists: `first_tokens`, the init tokens, then random ones (seeded by `seed`)."""
        rng = random.Random(seed)
        out: List[List[int]] = [list(t) for t in self.first_tokens[:count]]
        tokens = list(self.init_tokens)
        while len(out) < min(count, math.prod(self.range_table)):
            if tokens not in out:
                out.append(tokens)
            tokens = [rng.randrange(upper) for upper in self.range_table]
        return out


def load_candidates(path: str, overrides: Sequence[str] = ()) -> CandidateSource:
    """From a search config file and `-o key=value` overrides (a SLIM block marks a segmentation config)."""
    cfg = load_config(path)
    kind = config_kind(cfg)
    if kind == "segmentation":
        return _segmentation(path, overrides)
    if kind == "fbnet":
        return _fbnet(merge(cfg, parse_overrides(overrides)))
    return detection_candidates(merge(cfg, parse_overrides(overrides)))


def detection_candidates(cfg: Mapping[str, Any], extra_keys: Optional[Mapping[str, Any]] = None) -> CandidateSource:
    """A detection config's candidates (a one-shot config's: its `extra_keys`), built as the search builds them,
    without its datasets."""
    from ppnas.spaces import build_space
    from ppnas.tasks.detection import BlazeFaceForward, build_blazeface, with_search_defaults

    cfg = with_search_defaults(cfg, extra_keys=extra_keys)
    space = build_space(cfg["search_space"], kernel_choices=cfg["kernel_choices"])
    if not hasattr(space, "decode"):
        raise ConfigError(f"search_space {cfg['search_space']} is not a BlazeFace space: use BlazeFaceNasSpace")
    block = cfg.get("Constraint") or {}

    def from_structure(structure: Mapping[str, Any]) -> paddle.nn.Layer:
        return BlazeFaceForward(build_blazeface(structure, cfg))

    return CandidateSource(
        space_name=cfg["search_space"],
        input_shape=[1, 3, int(cfg["input_size"]), int(cfg["input_size"])],
        range_table=list(space.range_table()),
        init_tokens=list(space.init_tokens()),
        table_file=resolve_path(cfg, block.get("table_file")),
        missing_keys=block.get("missing_keys", "error"),
        decode=lambda tokens: dict(space.decode(tokens)),
        measurable=lambda tokens: from_structure(space.decode(tokens)),
        measurable_structure=from_structure,
    )


def _segmentation(path: str, overrides: Sequence[str]) -> CandidateSource:
    from ppnas.tasks.segmentation import DeepLabTask
    from ppnas.tasks.segmentation_config import load_seg_config

    seg = load_seg_config(path, override_pairs(overrides, example="SLIM.NAS_CONSTRAINT_MAX=5000"))
    task = DeepLabTask(seg)
    constraint = seg.constraint()
    return CandidateSource(
        space_name=task.space_name,
        input_shape=list(task.input_shape),
        range_table=list(task.space.range_table()),
        init_tokens=list(task.space.init_tokens()),
        table_file=constraint.table_file,
        missing_keys=constraint.missing_keys,
        decode=task.decode,
        measurable=lambda tokens: task.measurable(task.build(tokens)),
    )


def _fbnet(cfg: Mapping[str, Any]) -> CandidateSource:
    from ppnas.fbnet.settings import fbnet_config
    from ppnas.fbnet.supernet import LandmarkForward, LandmarkModel

    fb = fbnet_config(cfg)
    spec = fb.spec

    def build(names: Sequence[str]) -> paddle.nn.Layer:
        return LandmarkForward(LandmarkModel(spec, names).backbone)

    counts = [len(slot.candidates) for slot in spec.layers]
    # every candidate of every layer at least once: a table built from these samples covers the whole LUT
    cover = [[i % n for n in counts] for i in range(max(counts))]
    baseline = spec.choice_indexes(spec.baseline, "Supernet.baseline") if spec.baseline else None
    return CandidateSource(
        space_name="FBNetPFLD",
        input_shape=[1, 3, spec.input_size, spec.input_size],
        range_table=counts,
        init_tokens=baseline or cover[0],
        table_file=fb.table_file,
        missing_keys=fb.missing_keys,
        decode=lambda tokens: {"choices": [s.candidates[t] for s, t in zip(spec.layers, tokens)]},
        measurable=lambda tokens: build([s.candidates[t] for s, t in zip(spec.layers, tokens)]),
        first_tokens=cover,
    )
