"""A supernet's search space declared as United-Perception declares it, and its token list.

Declaration (one mapping per module, e.g. `backbone`; one entry per dimension: `depth`, `out_channel`,
`kernel_size`, `expand_ratio`, `group_num`, or any other the supernet reads):

    backbone:
      out_channel:
        space: {min: [16, 24], max: [32, 64], stride: [8, 8]}   # per stage; a number applies to every stage
        sample_strategy: stage_wise
      depth: {space: {min: [1, 1], max: [2, 3], stride: 1}, sample_strategy: stage_wise_depth}
      kernel_size: [3, 3]                                       # a list: fixed per stage, not searched

`space` may give `dynamic_range` (the values of each stage, as United-Perception allows) instead of or besides
`min`/`max`: the values are then the dynamic range's within [min, max]. `image_size_list` adds the input
resolution (a list of sides, of [h, w] or [1, 3, h, w] shapes, or {min, max, stride}).

Tokens: the engine's samplers, history and constraint work on integer token lists, so the space maps each
searched position to one token (an index into its ascending values) by its sample strategy:
- `stage_wise`: one token per stage; `block_wise`: one per block (up to the stage's largest depth);
- `net_wise`: one token for every stage (the stages' values must be equal; it keeps its token even with one
  value, as BlazeFaceNasSpace keeps its kernel token with kernel_choices [3]);
- `stage_wise_depth`: depth itself per stage; any other dimension follows the depth choice's index where its
  range has as many values as the stage's depth range (United-Perception's rule), else one token per stage.
A position with one value has no token (net_wise aside). Tokens run module by module, then by `token_order`:
`stage` (each stage's dimensions in declared order: MobileNetV2SpaceSeg's layout) or `dim` (each dimension's
stages: BlazeFaceNasSpace's layout); the resolution token comes last. A token list decodes to
United-Perception's `subnet_settings` (per module, per dimension, the value of each stage; block_wise: a list
per stage) and an `image_size` [1, 3, h, w].
"""

import copy
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ppnas.errors import ConfigError
from search_space.tokens import check_tokens

SAMPLE_STRATEGIES = ("net_wise", "stage_wise", "stage_wise_depth", "block_wise")
TOKEN_ORDERS = ("stage", "dim")
DEPTH = "depth"
SPACE_KEYS = ("min", "max", "stride", "dynamic_range")
Settings = Dict[str, Dict[str, List[Any]]]


@dataclass(frozen=True)
class Position:
    """One token: the dimension, the stages it sets (all of them for net_wise) and the block (block_wise)."""

    module: str
    dim: str
    stages: Tuple[int, ...]
    block: Optional[int]
    values: Tuple[Any, ...]


@dataclass
class Subnet:
    """One subnet: United-Perception's `subnet_settings` and its input `image_size` [1, 3, h, w]."""

    settings: Settings
    image_size: List[int]

    def to_dict(self) -> Dict[str, Any]:
        return {"subnet_settings": copy.deepcopy(self.settings), "image_size": list(self.image_size)}


def _per_stage(value: Any, stages: int, where: str) -> List[Any]:
    values = value if isinstance(value, (list, tuple)) else [value] * stages
    if len(values) != stages:
        raise ConfigError(f"{where} has {len(values)} entries for {stages} stages: give one per stage or a number")
    return list(values)


def _number(value: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return value


def _arange(low: Any, high: Any, stride: Any, where: str) -> List[Any]:
    if _number(stride, where + ".stride") <= 0:
        raise ConfigError(f"{where}.stride must be positive, got {stride}")
    if _number(low, where + ".min") > _number(high, where + ".max"):
        raise ConfigError(f"{where}: min {low} is larger than max {high}")
    if all(isinstance(v, int) for v in (low, high, stride)):
        return list(range(low, high + 1, stride))
    return [round(float(v), 6) for v in np.arange(low, high + 1e-6, stride)]


def _stage_count(spec: Any) -> int:
    if isinstance(spec, (list, tuple)):
        return len(spec)
    space = spec.get("space") or {}
    for key in ("dynamic_range", "min", "max"):
        if isinstance(space.get(key), (list, tuple)):
            return len(space[key])
    return 1


def resolve_dim(spec: Any, where: str, stages: Optional[int] = None) -> Dict[str, Any]:
    """A dimension as `{dynamic_range: [[values of each stage]], sample_strategy}`, values ascending."""
    if isinstance(spec, (list, tuple)):
        values = _per_stage(spec, stages or len(spec), where)
        return {"dynamic_range": [[v] for v in values], "sample_strategy": "stage_wise"}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("space"), Mapping):
        raise ConfigError(
            f"{where} must be a list (fixed per stage) or {{space: {{min, max, stride}}, sample_strategy}}"
        )
    unknown = sorted(set(spec) - {"space", "sample_strategy"}) + sorted(set(spec["space"]) - set(SPACE_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]}; a dimension takes space ({', '.join(SPACE_KEYS)}) and sample_strategy"
        )
    strategy = spec.get("sample_strategy", "stage_wise")
    if strategy not in SAMPLE_STRATEGIES:
        raise ConfigError(f"{where}.sample_strategy must be one of {', '.join(SAMPLE_STRATEGIES)}, got {strategy!r}")
    space = spec["space"]
    stages = stages or _stage_count(spec)
    lows = _per_stage(space.get("min"), stages, where + ".space.min")
    highs = _per_stage(space.get("max"), stages, where + ".space.max")
    if space.get("dynamic_range") is not None:
        given = _per_stage(space["dynamic_range"], stages, where + ".space.dynamic_range")
        ranges = []
        for values, low, high in zip(given, lows, highs):
            values = values if isinstance(values, (list, tuple)) else [values]
            ranges.append([v for v in values if (low is None or v >= low) and (high is None or v <= high)])
    else:
        strides = _per_stage(space.get("stride", 1), stages, where + ".space.stride")
        if None in lows or None in highs:
            raise ConfigError(f"{where}.space needs min and max (or dynamic_range)")
        ranges = [_arange(lo, hi, st, f"{where}.space") for lo, hi, st in zip(lows, highs, strides)]
    for stage, values in enumerate(ranges):
        if not values:
            raise ConfigError(f"{where}: stage {stage} has no value left between min and max")
    return {"dynamic_range": [sorted(set(values)) for values in ranges], "sample_strategy": strategy}


def merge_declaration(defaults: Mapping[str, Any], given: Optional[Mapping[str, Any]], where: str) -> Dict[str, Any]:
    """The supernet's default declaration with a config's changes: a given dimension replaces the default's
    `sample_strategy` and the `space` keys it names (min/max with a default dynamic range narrow that range)."""
    merged = copy.deepcopy(dict(defaults))
    if not given:
        return merged
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where} must map module names ({', '.join(defaults)}) to their dimensions")
    for module, dims in given.items():
        if module not in merged:
            raise ConfigError(f"{where}: the supernet has no module '{module}'; its modules: {', '.join(defaults)}")
        if not isinstance(dims, Mapping):
            raise ConfigError(f"{where}.{module} must map dimensions to their spaces")
        for dim, spec in dims.items():
            if dim not in merged[module]:
                known = ", ".join(merged[module])
                raise ConfigError(f"{where}.{module}: the supernet has no dimension '{dim}'; its dimensions: {known}")
            base = merged[module][dim]
            if isinstance(spec, Mapping) and isinstance(base, Mapping):
                space = dict(base.get("space") or {})
                given_space = dict(spec.get("space") or {})
                if "stride" in given_space and "dynamic_range" not in given_space:
                    space.pop("dynamic_range", None)
                merged[module][dim] = {**base, **spec, "space": {**space, **given_space}}
            else:
                merged[module][dim] = copy.deepcopy(spec)
    return merged


def resolve_image_sizes(value: Any, default_shape: Sequence[int]) -> List[List[int]]:
    """`image_size_list` as [1, 3, h, w] shapes, smallest first: sides, [h, w], [1, 3, h, w] or {min, max, stride};
    None: the task's input shape alone."""
    if value is None:
        return [[1, 3, *default_shape[-2:]]]
    if isinstance(value, Mapping):
        sides = _arange(value.get("min"), value.get("max"), value.get("stride", 32), "image_size_list")
        value = list(sides)
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"image_size_list must be a list of sizes or {{min, max, stride}}, got {value!r}")
    shapes = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            shapes.append([1, 3, item, item])
        elif isinstance(item, (list, tuple)) and len(item) in (2, 4) and all(isinstance(v, int) for v in item):
            shapes.append([1, 3, *item[-2:]])
        else:
            raise ConfigError(f"image_size_list: {item!r} is not a side, [h, w] or [1, 3, h, w]")
    return sorted({tuple(s): s for s in shapes}.values(), key=lambda s: (s[2] * s[3], s[2]))


class ElasticSpace:
    """The token list of a declared space (see the module docstring): `range_table`, `decode`, `encode`."""

    def __init__(
        self,
        declaration: Mapping[str, Mapping[str, Any]],
        image_size_list: Sequence[Sequence[int]],
        token_order: str = "stage",
        baseline: Optional[Mapping[str, Any]] = None,
        name: str = "the space",
    ) -> None:
        if token_order not in TOKEN_ORDERS:
            raise ConfigError(f"token_order must be one of {', '.join(TOKEN_ORDERS)}, got {token_order!r}")
        self.declaration = {
            module: {
                dim: resolve_dim(spec, f"space.{module}.{dim}", _module_stages(dims, module))
                for dim, spec in dims.items()
            }
            for module, dims in declaration.items()
        }
        self.image_size_list = [list(s) for s in image_size_list]
        self.token_order = token_order
        self.positions = self._positions()
        self.baseline = dict(baseline) if baseline else None
        self.name = name

    # --- layout ------------------------------------------------------------------------------------------
    def stages(self, module: str) -> int:
        return len(next(iter(self.declaration[module].values()))["dynamic_range"])

    def max_depths(self, module: str) -> List[int]:
        dims = self.declaration[module]
        if DEPTH not in dims:
            return [1] * self.stages(module)
        return [max(values) for values in dims[DEPTH]["dynamic_range"]]

    def _tied_to_depth(self, module: str, dim: str, stage: int) -> bool:
        """United-Perception's stage_wise_depth: a dimension takes the depth choice's index where the ranges match."""
        dims = self.declaration[module]
        spec = dims[dim]
        if dim == DEPTH or spec["sample_strategy"] != "stage_wise_depth" or DEPTH not in dims:
            return False
        depth_values = dims[DEPTH]["dynamic_range"][stage]
        return len(depth_values) > 1 and len(depth_values) == len(spec["dynamic_range"][stage])

    def _dim_positions(self, module: str, dim: str, stage: int) -> List[Position]:
        spec = self.declaration[module][dim]
        ranges, strategy = spec["dynamic_range"], spec["sample_strategy"]
        if strategy == "net_wise":
            if any(r != ranges[0] for r in ranges):
                raise ConfigError(f"space.{module}.{dim}: net_wise needs the same values at every stage, got {ranges}")
            return [Position(module, dim, tuple(range(len(ranges))), None, tuple(ranges[0]))] if stage == 0 else []
        values = tuple(ranges[stage])
        if len(values) == 1 or self._tied_to_depth(module, dim, stage):
            return []
        if strategy == "block_wise":
            return [Position(module, dim, (stage,), b, values) for b in range(self.max_depths(module)[stage])]
        return [Position(module, dim, (stage,), None, values)]

    def _positions(self) -> List[Position]:
        out: List[Position] = []
        for module, dims in self.declaration.items():
            stages = range(self.stages(module))
            if self.token_order == "stage":
                out += [p for s in stages for dim in dims for p in self._dim_positions(module, dim, s)]
            else:
                out += [p for dim in dims for s in stages for p in self._dim_positions(module, dim, s)]
        return out

    @property
    def searches_resolution(self) -> bool:
        return len(self.image_size_list) > 1

    def range_table(self) -> List[int]:
        table = [len(p.values) for p in self.positions]
        return table + ([len(self.image_size_list)] if self.searches_resolution else [])

    def max_tokens(self) -> List[int]:
        return [n - 1 for n in self.range_table()]

    def min_tokens(self) -> List[int]:
        return [0] * len(self.range_table())

    def init_tokens(self) -> List[int]:
        """The baseline subnet's tokens (its values, or the nearest ones in a narrowed space); else the largest."""
        if self.baseline is None:
            return self.max_tokens()
        return self.encode(self.baseline["subnet_settings"], self.baseline.get("image_size"), nearest=True)

    # --- tokens <-> settings -----------------------------------------------------------------------------
    def _largest(self) -> Settings:
        out: Settings = {}
        for module, dims in self.declaration.items():
            depths = self.max_depths(module)
            out[module] = {}
            for dim, spec in dims.items():
                tops = [values[-1] for values in spec["dynamic_range"]]
                out[module][dim] = (
                    [[v] * d for v, d in zip(tops, depths)] if spec["sample_strategy"] == "block_wise" else tops
                )
        return out

    def decode(self, tokens: Sequence[int]) -> Subnet:
        tokens = self._checked(tokens)
        settings = self._largest()
        for position, token in zip(self.positions, tokens):
            value = position.values[token]
            values = settings[position.module][position.dim]
            for stage in position.stages:
                if position.block is None:
                    values[stage] = value
                else:
                    values[stage][position.block] = value
        for module, dims in self.declaration.items():
            for dim, spec in dims.items():
                for stage in range(self.stages(module)):
                    if self._tied_to_depth(module, dim, stage):
                        depth_values = dims[DEPTH]["dynamic_range"][stage]
                        index = depth_values.index(settings[module][DEPTH][stage])
                        settings[module][dim][stage] = spec["dynamic_range"][stage][index]
        size = self.image_size_list[tokens[-1]] if self.searches_resolution else self.image_size_list[0]
        return Subnet(settings, list(size))

    def _checked(self, tokens: Sequence[int]) -> List[int]:
        return check_tokens(list(tokens), self.range_table(), self.name)

    def complete(self, settings: Optional[Mapping[str, Any]]) -> Settings:
        """`settings` with every module and dimension it leaves out at its largest value (United-Perception's
        default), checked for unknown names."""
        out = self._largest()
        for module, dims in (settings or {}).items():
            if module not in out:
                raise ConfigError(f"subnet_settings: no module '{module}'; the modules are {', '.join(out)}")
            if not isinstance(dims, Mapping):
                raise ConfigError(f"subnet_settings.{module} must map dimensions to per-stage values")
            for dim, values in dims.items():
                if dim not in out[module]:
                    raise ConfigError(
                        f"subnet_settings.{module}: no dimension '{dim}'; the dimensions are {', '.join(out[module])}"
                    )
                stages = self.stages(module)
                if not isinstance(values, (list, tuple)) or len(values) != stages:
                    raise ConfigError(
                        f"subnet_settings.{module}.{dim} must list {stages} values (one per stage), got {values!r}"
                    )
                values = copy.deepcopy(list(values))
                if self.declaration[module][dim]["sample_strategy"] == "block_wise":  # a value per block
                    depths = self.max_depths(module)
                    values = [_blocks(v, d, f"subnet_settings.{module}.{dim}") for v, d in zip(values, depths)]
                out[module][dim] = values
        return out

    def encode(
        self, settings: Optional[Mapping[str, Any]], image_size: Optional[Sequence[int]] = None, nearest: bool = False
    ) -> List[int]:
        """Tokens of `settings` (completed, see `complete`) at `image_size`; `nearest` picks the closest value of
        a position instead of refusing a value outside it."""
        full = self.complete(settings)
        tokens = []
        for p in self.positions:
            stage_value = full[p.module][p.dim][p.stages[0]]
            value = stage_value[p.block] if p.block is not None else stage_value
            tokens.append(_index(p.values, value, f"subnet_settings.{p.module}.{p.dim}[{p.stages[0]}]", nearest))
        if self.searches_resolution:
            size = list(image_size or self.image_size_list[-1])
            sides = [s[2:] for s in self.image_size_list]
            if len(size) not in (2, 4):
                raise ConfigError(f"image_size must be [h, w] or [1, 3, h, w], got {size}")
            tokens.append(_index(sides, size[-2:], "image_size", nearest, key=lambda s: s[0] * s[1]))
        subnet = self.decode(tokens)
        if not nearest and subnet.settings != full:
            raise ConfigError(
                f"subnet_settings {json.dumps(full)} is not a subnet of this space (a value tied to another, "
                f"or net_wise values that differ between stages): the closest is {json.dumps(subnet.settings)}"
            )
        return tokens

    def definition(self) -> Dict[str, Any]:
        """What a supernet trained over this space must agree on (checkpoint and search_meta.json)."""
        return {
            "declaration": self.declaration,
            "image_size_list": self.image_size_list,
            "token_order": self.token_order,
        }


def _module_stages(dims: Mapping[str, Any], module: str) -> int:
    counts = {dim: _stage_count(spec) for dim, spec in dims.items()}
    widest = max(counts.values())
    for dim, count in counts.items():
        if count not in (1, widest):
            raise ConfigError(f"space.{module}: {dim} has {count} stages, other dimensions have {widest}")
    return widest


def _blocks(values: Any, depth: int, where: str) -> List[Any]:
    """A block_wise stage's values, one per block up to the largest depth (the last repeats for blocks not given:
    a subnet that stops earlier does not run them)."""
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if not values or len(values) > depth:
        raise ConfigError(f"{where}: a block_wise stage takes 1 to {depth} values (one per block), got {values}")
    return values + [values[-1]] * (depth - len(values))


def _index(values: Sequence[Any], value: Any, where: str, nearest: bool, key: Any = None) -> int:
    if value in values:
        return list(values).index(value)
    if nearest and values and isinstance(value, (int, float, list)):
        measure = key or float
        return min(range(len(values)), key=lambda i: abs(measure(values[i]) - measure(value)))
    raise ConfigError(f"{where} = {value!r} is not in this space; its values are {list(values)}")
