"""Which records a report shows: pure functions over history records (window, Pareto front, top candidates)."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ppnas.engine.meta import META_FILE
from ppnas.errors import ConfigError
from ppnas.units import count_prefix, latency_to_ms

CTYPE_KEYS = {"latency": "latency_ms", "flops": "flops", "params": "params"}
_REL_TOL = 1e-9  # a bound converted us -> ms must still admit the candidate the search admitted

Record = Dict[str, Any]


def bounds_text(low: Optional[float], high: Optional[float], unit: str) -> str:
    """ "in [8, 14] MFLOPs", "<= 14 MFLOPs", ">= 8 MFLOPs", or "not bounded" (never an infinite bound)."""
    if low is None and high is None:
        return "not bounded"
    if low is None:
        text = f"<= {high:g}"
    elif high is None:
        text = f">= {low:g}"
    else:
        text = f"in [{low:g}, {high:g}]"
    return f"{text} {unit}".rstrip()


@dataclass(frozen=True)
class Window:
    """The constraint window on one record field; bounds in the record's unit (latency: ms)."""

    key: str
    low: Optional[float]
    high: Optional[float]
    text: str  # as the user wrote it, e.g. "latency in [18000, 57489] us"

    @classmethod
    def from_meta(cls, meta: Optional[Dict[str, Any]]) -> Optional["Window"]:
        if not meta or meta.get("ctype") is None:
            return None
        ctype, low, high = meta["ctype"], meta.get("min_constraint"), meta.get("max_constraint")
        unit = {"flops": "FLOPs", "params": "params"}.get(ctype) or str(meta.get("unit") or "")
        text = f"{ctype} {bounds_text(low, high, unit)}"
        if ctype == "latency":
            if not meta.get("unit"):
                raise ConfigError(f"{meta.get('_path', META_FILE)}: ctype is latency but 'unit' is missing")
            where = f"{meta.get('_path', META_FILE)}: unit"
            low = None if low is None else latency_to_ms(low, meta["unit"], where)
            high = None if high is None else latency_to_ms(high, meta["unit"], where)
        return cls(key=CTYPE_KEYS[ctype], low=low, high=high, text=text)

    def describe(self) -> str:
        """The window as written, and in milliseconds too for latency (the plots' unit)."""
        if self.key != "latency_ms" or not self.bounded:
            return self.text
        return f"{self.text} = {bounds_text(self.low, self.high, 'ms').removeprefix('in ')}"

    def in_axis_unit(self, axis: "Axis") -> str:
        """The window in the unit of the plot's x axis (e.g. MFLOPs), for its legend."""
        if axis.key != self.key or not self.bounded:
            return self.describe()
        scaled = [None if bound is None else bound / axis.divisor for bound in (self.low, self.high)]
        return f"{self.text.split(' ')[0]} {bounds_text(*scaled, axis.unit)}"

    @property
    def bounded(self) -> bool:
        return self.low is not None or self.high is not None

    def admits(self, record: Record) -> bool:
        """Inside [low, high] (inclusive, as Constraint.admits); a record without the value is outside."""
        value = record.get(self.key)
        if value is None:
            return False
        if self.low is not None and value < self.low - abs(self.low) * _REL_TOL:
            return False
        return self.high is None or value <= self.high + abs(self.high) * _REL_TOL


def rewarded(records: Sequence[Record], key: Optional[str] = None) -> List[Record]:
    """Trained records with a reward (and a value for `key`), in the order they were rewarded."""
    kept = [r for r in records if r.get("status") == "trained" and r.get("reward") is not None]
    if key is not None:
        kept = [r for r in kept if r.get(key) is not None]
    order = {id(r): i for i, r in enumerate(kept)}
    return sorted(kept, key=lambda r: (r.get("time") or 0.0, order[id(r)]))  # clients interleave by time


def pareto_front(records: Sequence[Record], key: str, window: Optional[Window] = None) -> List[Record]:
    """The trained records no other one beats on both reward (higher) and `key` (lower), cheapest first.

    A record is dominated when another has cost <= and reward >= with one of them strict. Ties: of two
    records with the same cost the lower reward is dominated; of two with the same reward the costlier
    one is; records equal on both (different structures measuring the same) are all kept, in history
    order. Records outside `window` are not candidates at all.
    """
    candidates = [r for r in rewarded(records, key) if window is None or window.admits(r)]
    ordered = sorted(enumerate(candidates), key=lambda item: (item[1][key], -item[1]["reward"], item[0]))
    front: List[Record] = []
    for _, record in ordered:
        if not front or record["reward"] > front[-1]["reward"]:
            front.append(record)
        elif record["reward"] == front[-1]["reward"] and record[key] == front[-1][key]:
            front.append(record)
    return front


def top_candidates(records: Sequence[Record], n: int, key: str, window: Optional[Window] = None) -> List[Record]:
    """The `n` best trained records inside `window`: highest reward, then lowest `key`, then earliest."""
    candidates = [r for r in rewarded(records) if window is None or window.admits(r)]
    position = {id(r): i for i, r in enumerate(candidates)}
    cost = lambda r: r.get(key) if r.get(key) is not None else float("inf")  # noqa: E731
    return sorted(candidates, key=lambda r: (-r["reward"], cost(r), position[id(r)]))[:n]


def best_so_far(rewards: Sequence[float]) -> List[float]:
    best: List[float] = []
    for reward in rewards:
        best.append(reward if not best else max(best[-1], reward))
    return best


@dataclass(frozen=True)
class Axis:
    """Which record field is plotted as cost, and how: plotted value = record value / divisor."""

    key: str
    divisor: float
    label: str
    unit: str = ""  # of plotted values: "ms", "MFLOPs", "k params"

    def value(self, record: Record) -> float:
        return record[self.key] / self.divisor


def choose_axis(records: Sequence[Record], window: Optional[Window]) -> Axis:
    """The constrained quantity when there is a window (so it can be shaded); else latency, else FLOPs."""
    if window is not None:
        key = window.key
    elif any(r.get("latency_ms") is not None for r in records):
        key = "latency_ms"
    else:
        key = "flops"
    if key == "latency_ms":
        return Axis(key, 1.0, "latency (ms, latency-table estimate)", "ms")
    largest = max((abs(r[key]) for r in records if r.get(key) is not None), default=1.0)
    divisor, prefix = count_prefix(largest)
    if key == "flops":
        return Axis(key, divisor, f"FLOPs ({prefix or 'count'}, paddle.flops: one multiply-add = 1)", f"{prefix}FLOPs")
    return Axis(key, divisor, f"parameters ({prefix or 'count'})", f"{prefix} params".strip())


def many_clients(records: Sequence[Record]) -> bool:
    return len({r.get("client", "local") for r in records}) > 1


def candidate_name(record: Record, many: bool) -> str:
    """'step 7', or 'step 7 of host-2' when several clients count steps each on their own."""
    return f"step {record.get('step')}" + (f" of {record.get('client')}" if many else "")


ONE_SHOT_PACKAGE = "ppnas.oneshot."  # the task module of a search over a trained supernet


def is_one_shot(meta: Optional[Dict[str, Any]]) -> bool:
    """A one-shot search: its rewards are inherited-weight AP (search_meta.json names its task's module)."""
    return str((meta or {}).get("fragment_writer", "")).startswith(ONE_SHOT_PACKAGE)


def search_name(meta: Optional[Dict[str, Any]]) -> str:
    """'detection search', 'one-shot (BigNAS) detection search', or '' without metadata."""
    kind = str((meta or {}).get("kind") or "")
    if is_one_shot(meta):
        return " ".join(part for part in ("one-shot (BigNAS)", kind, "search") if part)
    return f"{kind} search" if kind else ""
