"""The Constraint block: measure a candidate (FLOPs, params, table latency) and admit it or not.

Units: `flops` as `paddle.flops` counts them (one multiply-add counts as one; latency.flops counts them so
from the trace, without paddle.flops's forward pass), `params` as a count of parameters, `latency` in the
unit of the table's header (latency_855.txt: microseconds). Either bound may be absent. A candidate is
measured BEFORE any training, on a model taking one image of `input_shape`.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import paddle

from ppnas.config import check_keys, number_or_text, resolve_path
from ppnas.errors import ConfigError, ConstraintError

CTYPES = ("flops", "latency", "params")
MISSING_POLICIES = ("error", "nearest")
CONSTRAINT_KEYS = ("ctype", "min_constraint", "max_constraint", "table_file", "missing_keys")


@dataclass
class Measurement:
    """What the constraint saw of one candidate."""

    flops: float
    params: int
    latency: Optional[float] = None  # table units (see `latency_unit`)
    latency_unit: Optional[str] = None
    latency_ms: Optional[float] = None
    substitutions: List[Dict[str, Any]] = field(default_factory=list)

    def value(self, ctype: str) -> float:
        if ctype == "latency":
            if self.latency is None:
                raise ConstraintError("latency was not measured: set Constraint.table_file")
            return self.latency
        return float(self.flops if ctype == "flops" else self.params)


def count_params(layer: paddle.nn.Layer) -> int:
    return sum(math.prod(p.shape) for p in layer.parameters())


class Constraint:
    """A window [min_constraint, max_constraint] on FLOPs, params or table latency."""

    def __init__(
        self,
        ctype: str = "flops",
        min_constraint: Optional[float] = None,
        max_constraint: Optional[float] = None,
        table_file: Optional[str] = None,
        missing_keys: str = "error",
    ) -> None:
        if ctype not in CTYPES:
            raise ConfigError(f"Constraint.ctype must be one of {', '.join(CTYPES)}, got '{ctype}'")
        if missing_keys not in MISSING_POLICIES:
            raise ConfigError(
                f"Constraint.missing_keys must be one of {', '.join(MISSING_POLICIES)}, got '{missing_keys}'"
            )
        min_constraint, max_constraint = number_or_text(min_constraint), number_or_text(max_constraint)
        for name, bound in (("min_constraint", min_constraint), ("max_constraint", max_constraint)):
            if bound is not None and (not isinstance(bound, (int, float)) or isinstance(bound, bool)):
                raise ConfigError(f"Constraint.{name} must be a number, got {bound!r}")
        if min_constraint is not None and max_constraint is not None and min_constraint > max_constraint:
            raise ConfigError(
                f"Constraint window is empty: min_constraint {min_constraint} > max_constraint {max_constraint}"
            )
        if ctype == "latency" and not table_file:
            raise ConfigError("Constraint.ctype is latency but no table_file is given")
        self.ctype = ctype
        self.min_constraint = min_constraint
        self.max_constraint = max_constraint
        self.table_file = table_file
        self.missing_keys = missing_keys
        self._table = None

    @classmethod
    def from_config(cls, block: Optional[Mapping[str, Any]], cfg: Mapping[str, Any]) -> "Constraint":
        """From a `Constraint:` mapping; `table_file` resolves against the config file's folder."""
        if not block:
            return cls(ctype="flops")
        if not isinstance(block, Mapping):
            raise ConfigError(f"Constraint must be a mapping of {', '.join(CONSTRAINT_KEYS)}")
        check_keys(block, CONSTRAINT_KEYS, where="Constraint")
        kwargs = dict(block)
        kwargs["table_file"] = resolve_path(cfg, block.get("table_file"))
        return cls(**kwargs)

    @property
    def table(self) -> Any:
        if self._table is None and self.table_file:
            from latency.table import LatencyTable

            self._table = LatencyTable.load(self.table_file)
        return self._table

    def measure(self, layer: paddle.nn.Layer, input_shape: Sequence[int]) -> Measurement:
        """FLOPs and params always; latency when a table is configured. FLOPs and latency keys come from one
        shape-only trace of the model (latency.flops): no forward pass runs."""
        from latency.flops import trace_with_flops

        traced, flops = trace_with_flops(layer, input_shape)
        measurement = Measurement(flops=float(flops), params=count_params(layer))
        if self.table is not None:
            from latency.estimate import estimate_ops

            estimate = estimate_ops(traced.ops(), self.table, missing=self.missing_keys)
            measurement.latency = estimate.total
            measurement.latency_unit = estimate.unit
            measurement.latency_ms = estimate.latency_ms
            measurement.substitutions = list(estimate.substitutions)
        return measurement

    def measure_by(self, price: Callable[["Constraint"], Measurement]) -> Measurement:
        """The Measurement `price` makes with this constraint (a task that prices a candidate without tracing its
        whole model, ppnas/oneshot/pricing.py); a data-parallel group runs it on rank 0 only (ppnas/parallel)."""
        return price(self)

    def admits(self, measurement: Measurement) -> bool:
        return self.admits_value(measurement.value(self.ctype))

    def admits_value(self, value: float) -> bool:
        """Whether a value in the window's unit (FLOPs, params, the table's unit) lies inside it."""
        low = -math.inf if self.min_constraint is None else self.min_constraint
        high = math.inf if self.max_constraint is None else self.max_constraint
        return low <= value <= high

    def check_reachable(self, cheapest: float, dearest: float, what: str, key: str) -> None:
        """Stop before any work when no `what` of the space can meet the window: its values span
        [cheapest, dearest] (`key` names the config key that set the window)."""
        low = -math.inf if self.min_constraint is None else self.min_constraint
        high = math.inf if self.max_constraint is None else self.max_constraint
        if cheapest <= high and dearest >= low:
            return
        unit = self.unit
        raise ConstraintError(
            f"no {what} meets {key} ({self.window_text()}): the {what}s of this space cost {cheapest:g} to "
            f"{dearest:g} {unit}".rstrip()
            + " (change the bound, or the space)"
        )

    @property
    def unit(self) -> str:
        return {"flops": "FLOPs", "params": "params"}.get(self.ctype) or (
            self.table.unit if self.table is not None else ""
        )

    def window_text(self) -> str:
        low = "-inf" if self.min_constraint is None else f"{self.min_constraint:g}"
        high = "+inf" if self.max_constraint is None else f"{self.max_constraint:g}"
        return f"{self.ctype} in [{low}, {high}] {self.unit}".rstrip()
