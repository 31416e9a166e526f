"""The devices of a front search: one latency table each (a latency Constraint without a window, with the config's
missing-keys policy), its name and its latency budgets in ms; checked before any subnet is evaluated."""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence

from latency.table import LatencyTable
from ppnas.config import resolve_path
from ppnas.constraint import Constraint
from ppnas.errors import ConfigError, ConstraintError, PpnasError
from ppnas.storage import content_hash


@dataclass
class DeviceTable:
    name: str  # the table file's name without its extension: the key of its front, latencies and budgets
    constraint: Constraint
    budgets_ms: List[float] = field(default_factory=list)

    @property
    def path(self) -> str:
        return str(self.constraint.table_file)


def _table_paths(cfg: Mapping[str, Any], constraint: Constraint) -> List[str]:
    tables = cfg["tables"]
    if tables in (None, "", []):
        if constraint.ctype != "latency":
            raise ConfigError(
                "a front search prices subnets on latency tables: give them with -o "
                '"tables=[configs/latency_855.txt, my_board.txt]", or set a latency Constraint'
            )
        return [str(constraint.table_file)]
    items = [tables] if isinstance(tables, str) else list(tables)
    paths = []
    for item in items:
        path = resolve_path(cfg, item if isinstance(item, str) else str(item))  # keeps "typed on the command line"
        if not os.path.isfile(path):
            raise ConfigError(f"tables: latency table not found: {path}")
        paths.append(path)
    return paths


def _budget_list(value: Any, where: str) -> List[float]:
    values = value if isinstance(value, (list, tuple)) else [value]
    budgets = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0:
            raise ConfigError(f"{where} must be positive latencies in ms, got {item!r}")
        budgets.append(float(item))
    return sorted(budgets)


def _budgets(value: Any, names: Sequence[str]) -> Dict[str, List[float]]:
    """budgets_ms: a list for every table, or a mapping table name -> list (unknown names listed)."""
    if value is None:
        return {name: [] for name in names}
    if not isinstance(value, Mapping):
        shared = _budget_list(value, "budgets_ms")
        return {name: list(shared) for name in names}
    unknown = [str(key) for key in value if key not in names]
    if unknown:
        raise ConfigError(f"budgets_ms names no table {', '.join(unknown)}: the tables are {', '.join(names)}")
    return {name: _budget_list(value.get(name, []), f"budgets_ms.{name}") for name in names}


def device_tables(cfg: Mapping[str, Any], constraint: Constraint) -> List[DeviceTable]:
    """The config's `tables` (or the Constraint's table) with their budgets; a missing or malformed table, two
    tables of one name or a budget that is not a positive number is a ConfigError naming it."""
    paths = _table_paths(cfg, constraint)
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"tables: two tables are named {', '.join(twice)} (the file name names a front): rename one")
    budgets = _budgets(cfg["budgets_ms"], names)
    devices = []
    for name, path in zip(names, paths):
        LatencyTable.load(path)  # a malformed line names file and line before any work
        table = Constraint(ctype="latency", table_file=path, missing_keys=constraint.missing_keys)
        devices.append(DeviceTable(name, table, budgets[name]))
    return devices


def tables_definition(devices: Sequence[DeviceTable]) -> Dict[str, Any]:
    """What resuming a front search must not change: each table's content and its budgets."""
    return {d.name: {"sha256": content_hash(d.path), "budgets_ms": d.budgets_ms} for d in devices}


def check_devices(
    devices: Sequence[DeviceTable], price_ms: Any, fastest: Sequence[int], dearest: Sequence[int]
) -> None:
    """Before any evaluation: every table prices the space's fastest and dearest subnets (its keys cover the space,
    or its missing-keys policy substitutes), and the fastest subnet meets every budget.

    `price_ms(device, tokens)` is the subnet's latency in ms on the device's table."""
    for device in devices:
        try:
            low = price_ms(device, fastest)
            price_ms(device, dearest)
        except PpnasError as err:
            raise ConstraintError(f"table {device.name} ({device.path}): {err}") from None
        missed = [b for b in device.budgets_ms if b < low]
        if missed:
            raise ConstraintError(
                f"budgets_ms {', '.join(f'{b:g}' for b in missed)} on table {device.name}: no subnet meets it; the "
                f"fastest subnet found costs {low:.3f} ms there (tokens {list(fastest)})"
            )
