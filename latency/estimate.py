"""Estimate a model's latency from a per-op table: the sum of the table's values over the ops it runs.

What is priced: only ops of the kinds the table covers (`LatencyTable.kinds`). latency_855.txt holds conv
keys only, so with it the estimate is the sum over every conv (and depthwise conv) of the whole network,
exactly what PaddleSlim computed; batch_norm, relu, adds and pools are then not priced and are counted
in `unpriced_ops`. A table built by tools/build_latency_table.py covers every op type the model runs.

Missing keys: `missing="error"` raises one TableError listing every missing key; `missing="nearest"`
prices each missing key with the closest key of the same op type and pattern (conv: kernel, stride,
groups kind, bias/relu flags; other ops: every non-shape field) and reports it in `substitutions`.

Fusion: an op the table's engine folds into the conv before it (header `fuses`, latency/fusion.py) is priced
at 0 and counted in `fused_ops`.

Calibration: a table may store `calib_a`/`calib_b` (fitted by bench/latency_accuracy.py on fully measured
models); the estimate is then `a * sum + b` (`calibrated` is True and `raw_total` keeps the plain sum).
"""

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Dict, List, Optional, Sequence, Tuple

import paddle

from latency.fusion import fused_ops, table_fuses
from latency.opkeys import OpRecord, trace_ops
from latency.table import LatencyTable, op_kind
from ppnas.errors import TableError

MISSING_POLICIES = ("error", "nearest")
# indexes of the key fields that are shapes (channels, height, width); every other field is pattern
SHAPE_FIELDS = {
    "conv": (4, 5, 6, 7),
    "activation": (2, 3, 4),
    "batch_norm": (3, 4, 5),
    "eltwise": (3, 4, 5),
    "pooling": (3, 4, 5),
    "softmax": (3, 4, 5),
    "interp": (4, 5, 6, 7, 8),
    "concat": (3, 4, 5),
}


@dataclass
class LatencyEstimate:
    total: float  # table units; calibrated when the table stores a calibration
    unit: str
    latency_ms: float
    num_ops: int  # ops priced
    keys: List[str]  # priced keys in execution order (a key repeats when several ops share it)
    missing_keys: List[str] = field(default_factory=list)  # distinct keys the table lacks
    substitutions: List[Dict[str, Any]] = field(default_factory=list)  # {"key", "used", "latency"}
    raw_total: float = 0.0  # plain sum of table values
    calibrated: bool = False
    unpriced_ops: Dict[str, int] = field(default_factory=dict)  # op type -> count, kinds the table lacks
    fused_ops: Dict[str, int] = field(default_factory=dict)  # op type -> count, folded into a conv (fusion.py)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "latency": self.total,
            "unit": self.unit,
            "raw_latency": self.raw_total,
            "calibrated": self.calibrated,
            "num_ops": self.num_ops,
            "missing_keys": self.missing_keys,
            "substitutions": self.substitutions,
            "unpriced_ops": self.unpriced_ops,
            "fused_ops": self.fused_ops,
        }


def estimate_latency(
    layer: paddle.nn.Layer, input_shape: Sequence[int], table: LatencyTable, missing: str = "error"
) -> LatencyEstimate:
    """Estimate `layer` (taking one image of `input_shape`) with `table` (see the module docstring)."""
    return estimate_ops(trace_ops(layer, input_shape), table, missing)


def estimate_ops(ops: Sequence[OpRecord], table: LatencyTable, missing: str = "error") -> LatencyEstimate:
    return price_ops(classify_ops(ops, table, fused_ops(ops, table_fuses(table))), table, missing)


@dataclass
class OpClasses:
    """What the table makes of a list of ops before any price is looked up: the keys it prices (in order), the
    ops of kinds it lacks and the ops folded into a conv. Classes of consecutive parts of a network add up
    (`extend`), so a model priced by parts (ppnas/oneshot/pricing.py) gets the estimate of the whole."""

    keys: List[str] = field(default_factory=list)
    unpriced: Dict[str, int] = field(default_factory=dict)
    fused: Dict[str, int] = field(default_factory=dict)

    def extend(self, other: "OpClasses") -> None:
        self.keys.extend(other.keys)
        for mine, theirs in ((self.unpriced, other.unpriced), (self.fused, other.fused)):
            for op_type, count in theirs.items():
                mine[op_type] = mine.get(op_type, 0) + count


def classify_ops(ops: Sequence[OpRecord], table: LatencyTable, folded: Collection[int]) -> OpClasses:
    """Split `ops` into priced keys, unpriced and fused ops; `folded` are the indexes fusion.fused_ops gives."""
    kinds = set(table.kinds)
    classes = OpClasses()
    for index, op in enumerate(ops):
        if index in folded:
            classes.fused[op.op_type] = classes.fused.get(op.op_type, 0) + 1
        elif op.key is not None and op.kind in kinds:
            classes.keys.append(op.key)
        elif not op.free:
            classes.unpriced[op.op_type] = classes.unpriced.get(op.op_type, 0) + 1
    return classes


def price_ops(
    classes: OpClasses,
    table: LatencyTable,
    missing: str = "error",
    nearest: Optional[Callable[[str, LatencyTable], Optional[str]]] = None,
) -> LatencyEstimate:
    """The estimate of classified ops: table prices (or the missing-key policy's), summed in order, calibrated.
    `nearest` replaces `nearest_key` (a caller pricing many models memoises it: it scans the whole table)."""
    nearest = nearest or nearest_key
    if missing not in MISSING_POLICIES:
        raise TableError(f"missing-key policy must be one of {', '.join(MISSING_POLICIES)}, got '{missing}'")
    keys = classes.keys
    missing_keys = list(dict.fromkeys(k for k in keys if k not in table.entries))
    prices = dict(table.entries)
    substitutions = []
    if missing_keys:
        where = table.path or "the latency table"
        if missing == "error":
            raise TableError(
                f"{where} lacks {len(missing_keys)} op key(s) of this model: {'; '.join(missing_keys)} "
                "(build a table for this model and input size, or set missing_keys: nearest)"
            )
        unresolved = []
        for key in missing_keys:
            used = nearest(key, table)
            if used is None:
                unresolved.append(key)
                continue
            prices[key] = table.entries[used]
            substitutions.append({"key": key, "used": used, "latency": table.entries[used]})
        if unresolved:
            raise TableError(
                f"{where} has no key of the same op type and pattern for {len(unresolved)} op key(s): "
                f"{'; '.join(unresolved)} (build a table that covers them)"
            )
    raw = float(sum(prices[k] for k in keys))
    total = raw
    if table.calibration is not None:
        slope, offset = table.calibration
        total = slope * raw + offset
    return LatencyEstimate(
        total=total,
        unit=table.unit,
        latency_ms=total * table.ms_per_unit,
        num_ops=len(keys),
        keys=keys,
        missing_keys=missing_keys,
        substitutions=substitutions,
        raw_total=raw,
        calibrated=table.calibration is not None,
        unpriced_ops=dict(classes.unpriced),
        fused_ops=dict(classes.fused),
    )


def _split(key: str) -> Tuple[str, Tuple[Any, ...], Tuple[int, ...], Tuple[str, ...]]:
    """(kind, hard pattern, shape, soft pattern) of a key: neighbours must share kind and hard pattern."""
    fields = key.split(",")
    kind = op_kind(key)
    shape_at = SHAPE_FIELDS[kind]
    shape = tuple(int(fields[i]) for i in shape_at)
    if kind == "conv":
        c_in, c_out, groups = int(fields[4]), int(fields[7]), int(fields[8])
        group_kind = "depthwise" if groups == c_in == c_out and groups > 1 else groups
        hard = (fields[1], fields[2], fields[3], group_kind, fields[9], fields[11])
        soft = (fields[10], fields[12], *fields[13:])  # padding, dilation, non-square extras
        return kind, hard, shape, soft
    hard = tuple(v for i, v in enumerate(fields) if i not in shape_at)
    return kind, hard, shape, ()


def nearest_key(key: str, table: LatencyTable) -> Optional[str]:
    """The table key closest to `key` among those of the same kind and pattern (None if there is none).

    Distance: sum of |log(size ratio)| over channels and spatial sizes, plus 1 per differing padding,
    dilation or non-square extra (a soft mismatch weighs like a 2.7x size ratio).
    """
    kind, hard, shape, soft = _split(key)
    best: Optional[Tuple[float, str]] = None
    for other in table.entries:
        if op_kind(other) != kind:
            continue
        o_kind, o_hard, o_shape, o_soft = _split(other)
        if o_hard != hard:
            continue
        distance = sum(abs(math.log((a + 1) / (b + 1))) for a, b in zip(shape, o_shape))
        distance += sum(a != b for a, b in zip(soft, o_soft)) + abs(len(soft) - len(o_soft))
        if best is None or distance < best[0]:
            best = (distance, other)
    return None if best is None else best[1]
