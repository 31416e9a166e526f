"""The latency lookup table (LUT) of a supernet: each candidate of each searched slot priced at the slot's input.

Prices come from the project's latency module: with a table (`table_file`: latency_855.txt, or one built
here by tools/build_latency_table.py) each block alone is estimated with `latency.estimate` under the
table's `missing_keys` policy; without a table the price is the block's FLOPs (latency.flops, paddle.flops's
rules). A searched stem or head is priced the same way, alone (`skip` costs nothing). The rest of the
network (what is not searched: the pools of the multi-scale concat, and the stem or head when fixed) is
priced once as `fixed`: the whole subnet of every slot's first candidate minus those candidates. Entries are
raw table sums, so a table's calibration `a * sum + b` is applied once to the whole network, not once per block.

The LUT file (JSON) records what it was built from: the supernet's structure, the table file's content
hash and the missing-key policy (and, for the messages, the table's path). It is reused while they match;
a search refuses a LUT built for another config, and `--phase build_lut` rebuilds it. A LUT edited by hand
is checked against the supernet (`check_lut`) before any of it is used.
"""

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from latency.estimate import estimate_latency
from latency.flops import count_flops
from latency.table import LatencyTable
from ppnas.errors import ConfigError
from ppnas.fbnet.supernet import LandmarkForward, LandmarkModel, LatencyVectors, SupernetSpec, candidate_layer
from ppnas.storage import atomic_write_json, content_hash

_logger = logging.getLogger(__name__)

FLOPS_UNIT = "FLOPs"
MFLOPS = 1e-6  # FLOPs -> MFLOPs: the latency loss's unit without a table (ms with one)


@dataclass
class LookupTable:
    metric: str  # "latency" (a table) or "flops"
    unit: str  # the table's unit, or FLOPs
    ms_per_unit: Optional[float]  # None for FLOPs
    per_layer: List[List[float]]  # raw price of each layer's candidates, in `unit`
    candidates: List[List[str]]
    fixed: float  # raw price of everything that is not searched
    calibration: Optional[List[float]]  # [a, b] of the table, b in `unit`
    inputs: Dict[str, Any]  # what it was built from (see `lut_inputs`)
    table_file: Optional[str] = None  # the table's path when it was built (its content is in `inputs`)

    def raw_total(self, choices: Sequence[int]) -> float:
        """Plain table sum (or FLOPs) of the subnet with candidate `choices[l]` at layer l, in `unit`."""
        return self.fixed + sum(prices[c] for prices, c in zip(self.per_layer, choices))

    def total(self, choices: Sequence[int]) -> float:
        """Predicted price of that subnet (calibrated when the table is), in `unit`."""
        slope, offset = self.calibration or (1.0, 0.0)
        return slope * self.raw_total(choices) + offset

    def latency_ms(self, choices: Sequence[int]) -> Optional[float]:
        return None if self.ms_per_unit is None else self.total(choices) * self.ms_per_unit

    def bounds(self) -> Tuple[float, float]:
        """(cheapest, dearest) subnet price."""
        cheap = [min(range(len(p)), key=p.__getitem__) for p in self.per_layer]
        dear = [max(range(len(p)), key=p.__getitem__) for p in self.per_layer]
        return self.total(cheap), self.total(dear)

    def vectors(self) -> LatencyVectors:
        """The supernet's view: prices plus calibration, and the scale to loss units (ms or MFLOPs)."""
        slope, offset = self.calibration or (1.0, 0.0)
        scale = MFLOPS if self.ms_per_unit is None else self.ms_per_unit
        return LatencyVectors([list(p) for p in self.per_layer], self.fixed, slope, offset, scale)

    @property
    def loss_unit(self) -> str:
        return "MFLOPs" if self.ms_per_unit is None else "ms"

    def to_loss_unit(self, value: float) -> float:
        """A price in `unit` (calibrated, as `total` gives it) in the latency loss's unit."""
        return value * (MFLOPS if self.ms_per_unit is None else self.ms_per_unit)

    def save(self, path: str) -> str:
        return atomic_write_json(path, asdict(self), indent=1)

    @classmethod
    def load(cls, path: str) -> "LookupTable":
        try:
            with open(path, encoding="utf-8") as f:
                return cls(**json.load(f))
        except (json.JSONDecodeError, TypeError) as err:
            raise ConfigError(f"{path} is not a LUT file ({err}): delete it or run --phase build_lut") from None


def lut_inputs(spec: SupernetSpec, table_file: Optional[str], missing_keys: str) -> Dict[str, Any]:
    """What a LUT depends on: the supernet's structure and the table's content (not its path)."""
    table = None
    if table_file:
        if not os.path.isfile(table_file):
            raise ConfigError(f"latency table not found: {table_file}")
        table = content_hash(table_file)
    return {"supernet": spec.fingerprint(), "table_sha": table, "missing_keys": missing_keys if table else None}


def _pricer(table: Optional[LatencyTable], missing_keys: str) -> Callable[[Any, Sequence[int]], float]:
    def price(layer: Any, shape: Sequence[int]) -> float:
        layer.eval()
        if table is None:
            return float(count_flops(layer, shape))
        return estimate_latency(layer, shape, table, missing_keys).raw_total

    return price


def price_layers(spec: SupernetSpec, table: Optional[LatencyTable], missing_keys: str = "error") -> List[List[float]]:
    """Raw price of each candidate alone at its slot's input shape (table sum, or FLOPs)."""
    price = _pricer(table, missing_keys)
    return [[price(candidate_layer(spec, s, name), s.input_shape) for name in s.candidates] for s in spec.layers]


def build_lut(spec: SupernetSpec, table_file: Optional[str] = None, missing_keys: str = "error") -> LookupTable:
    """Price every candidate of every searched layer, and the fixed rest (see the module docstring)."""
    table = LatencyTable.load(table_file) if table_file else None
    per_layer = price_layers(spec, table, missing_keys)
    first = [s.candidates[0] for s in spec.layers]
    whole_model = LandmarkForward(LandmarkModel(spec, first).backbone)
    whole = _pricer(table, missing_keys)(whole_model, [1, 3, spec.input_size, spec.input_size])
    return LookupTable(
        metric="flops" if table is None else "latency",
        unit=FLOPS_UNIT if table is None else table.unit,
        ms_per_unit=None if table is None else table.ms_per_unit,
        per_layer=per_layer,
        candidates=[list(s.candidates) for s in spec.layers],
        fixed=whole - sum(prices[0] for prices in per_layer),
        calibration=None if table is None or table.calibration is None else list(table.calibration),
        inputs=lut_inputs(spec, table_file, missing_keys),
        table_file=table_file,
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_lut(lut: LookupTable, spec: SupernetSpec, path: str) -> None:
    """A LUT file read back must price this supernet: its layers, their candidates, finite numbers everywhere."""
    rebuild = "run --phase build_lut to rebuild it"
    if lut.metric not in ("latency", "flops"):
        raise ConfigError(f"{path}: metric must be 'latency' or 'flops', got {lut.metric!r}; {rebuild}")
    layers = spec.layers
    if not isinstance(lut.candidates, list) or len(lut.candidates) != len(layers):
        count = len(lut.candidates) if isinstance(lut.candidates, list) else lut.candidates
        raise ConfigError(f"{path}: it lists candidates of {count} layers, the supernet has {len(layers)}; {rebuild}")
    if not isinstance(lut.per_layer, list) or len(lut.per_layer) != len(layers):
        count = len(lut.per_layer) if isinstance(lut.per_layer, list) else lut.per_layer
        raise ConfigError(f"{path}: it prices {count} layers, the supernet has {len(layers)}; {rebuild}")
    for slot, names, prices in zip(layers, lut.candidates, lut.per_layer):
        where = f"{path}: layer {slot.index} ({slot.stage})"
        if list(names or []) != list(slot.candidates):
            raise ConfigError(f"{where} lists candidates {names}, the supernet {list(slot.candidates)}; {rebuild}")
        if not isinstance(prices, list) or len(prices) != len(names):
            raise ConfigError(f"{where}: {len(names)} candidates need {len(names)} prices, got {prices!r}; {rebuild}")
        for name, price in zip(names, prices):
            if not _number(price):
                raise ConfigError(f"{where}, candidate {name}: price {price!r} is not a finite number; {rebuild}")
    if not _number(lut.fixed):
        raise ConfigError(
            f"{path}: 'fixed' (the price of the unsearched rest) is {lut.fixed!r}, not a number; {rebuild}"
        )
    if lut.ms_per_unit is not None and not (_number(lut.ms_per_unit) and lut.ms_per_unit > 0):
        raise ConfigError(f"{path}: ms_per_unit must be a positive number or null, got {lut.ms_per_unit!r}; {rebuild}")
    calibration = lut.calibration
    if calibration is not None and not (
        isinstance(calibration, list) and len(calibration) == 2 and all(map(_number, calibration))
    ):
        raise ConfigError(f"{path}: calibration must be [a, b] or null, got {calibration!r}; {rebuild}")
    if not isinstance(lut.inputs, dict):
        raise ConfigError(f"{path}: 'inputs' must be a mapping, got {lut.inputs!r}; {rebuild}")


def _mismatch(path: str, lut: LookupTable, inputs: Dict[str, Any], table_file: Optional[str]) -> str:
    """Why a LUT cannot be reused, and what to do: a search never rebuilds it in another unit by accident."""
    built_with = lut.inputs.get("table_sha")
    if built_with and not inputs["table_sha"]:
        return (
            f"{path} was built with the latency table {lut.table_file or '(path not recorded)'} and this run has no "
            f"LUT.table_file: pass the same one (-o LUT.table_file={lut.table_file or 'TABLE'}), or rebuild it on "
            f"purpose with --phase build_lut (without a table it prices FLOPs)"
        )
    if inputs["table_sha"] and not built_with:
        return (
            f"{path} was built without a latency table (it prices FLOPs) and this run has LUT.table_file "
            f"{table_file}: run --phase build_lut to price it with that table, or leave LUT.table_file out"
        )
    changed = ", ".join(k for k in inputs if lut.inputs.get(k) != inputs[k])
    return f"{path} was built for another config ({changed} differ): run --phase build_lut to rebuild it"


def ensure_lut(
    path: str, spec: SupernetSpec, table_file: Optional[str], missing_keys: str, rebuild: bool
) -> Tuple[LookupTable, str]:
    """The LUT at `path` when it was built from these inputs, else a new one (`rebuild`) or an error.

    Returns (lut, what happened: "reused" | "built" | "rebuilt").
    """
    inputs = lut_inputs(spec, table_file, missing_keys)
    if os.path.isfile(path):
        try:
            lut = LookupTable.load(path)
            check_lut(lut, spec, path)
        except ConfigError:
            if not rebuild:
                raise
        else:
            if lut.inputs == inputs:
                return lut, "reused"
            if not rebuild:
                raise ConfigError(_mismatch(path, lut, inputs, table_file))
    action = "rebuilt" if os.path.isfile(path) else "built"
    lut = build_lut(spec, table_file, missing_keys)
    lut.save(path)
    _logger.debug("LUT %s: %s (%s)", action, path, lut.metric)
    return lut, action
