"""Import a timings file (written by time_ops.py, on a device or here) into a latency table.

The import refuses, in one message naming the file (and line): a file that is not a timings file, a line
that is truncated or not a result, a negative or non-finite time, timings of another export (manifest id),
engine, device or settings than the table it would extend, and a key without a timing in every sweep (it
lists them). Each key's value is its minimum over the sweeps (`unstable` ones only when no sweep timed it
above its reference; they are then listed in the header, see time_ops.py).
"""

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

from latency.engines.time_ops import FORMAT_VERSION, TIMINGS_FORMAT
from latency.table import LatencyTable, check_key
from ppnas.errors import TableError

UNSTABLE_KEY = "unstable"  # header setting: keys that timed below their reference in every sweep
UNSTABLE_SEP = "|"
ENGINE_SEP = "-"  # a table's engine field: <engine>-<version>


@dataclass
class Timings:
    """A read timings file: its header, and per key the minimum stable time and the minimum upper bound."""

    path: str
    header: Dict[str, Any]
    stable: Dict[str, float] = field(default_factory=dict)
    upper: Dict[str, float] = field(default_factory=dict)
    sweeps: Dict[str, set] = field(default_factory=dict)  # key -> sweeps that timed it

    @property
    def engine(self) -> str:
        return self.header["engine"]

    @property
    def keys(self) -> List[str]:
        return list(self.sweeps)

    def values(self) -> Dict[str, float]:
        return {key: self.stable.get(key, self.upper.get(key)) for key in self.sweeps}

    def unstable(self) -> List[str]:
        return [key for key in self.sweeps if key not in self.stable]

    def incomplete(self) -> List[str]:
        """Keys not timed in every sweep the header asks for (the timer stopped before the end)."""
        wanted = set(range(1, int((self.header.get("timing") or {}).get("sweeps", 1)) + 1))
        return [key for key, seen in self.sweeps.items() if not wanted <= seen]


def _header(path: str, line: str) -> Dict[str, Any]:
    try:
        header = json.loads(line)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != TIMINGS_FORMAT:
        raise TableError(f"{path}:1: not a timings file written by time_ops.py (its first line is its header)")
    if header.get("version") != FORMAT_VERSION:
        raise TableError(f"{path}:1: timings format version {header.get('version')}, expected {FORMAT_VERSION}")
    return header


def _result(path: str, number: int, line: str, last: bool) -> Dict[str, Any]:
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or (last and not line.endswith("\n")):
        raise TableError(
            f"{where}: truncated or malformed line (the timer was stopped while writing it?): "
            "run time_ops.py again on the same folder, it drops the line and goes on"
        )
    missing = [name for name in ("sweep", "key", "us", "unstable") if name not in record]
    if missing:
        raise TableError(f"{where}: the result has no {', '.join(missing)}")
    problem = check_key(str(record["key"]))
    if problem:
        raise TableError(f"{where}: {problem}: '{record['key']}'")
    value = record["us"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise TableError(f"{where}: time of '{record['key']}' must be a finite number >= 0, got {value!r}")
    return record


def read_timings(path: str) -> Timings:
    if not os.path.isfile(path):
        raise TableError(f"timings file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    if not lines:
        raise TableError(f"{path}:1: empty timings file")
    timings = Timings(path=path, header=_header(path, lines[0]))
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        record = _result(path, number, line, number == len(lines))
        key, value = record["key"], float(record["us"])
        found = timings.upper if record["unstable"] else timings.stable
        found[key] = min(found.get(key, value), value)
        timings.sweeps.setdefault(key, set()).add(int(record["sweep"]))
    return timings


def check_complete(timings: Timings, expected: Iterable[str]) -> None:
    """Every expected key timed in every sweep, and no other key (else the timings are of another export)."""
    expected = list(expected)
    extra = [key for key in timings.keys if key not in set(expected)]
    if extra:
        raise TableError(
            f"{timings.path} has {len(extra)} key(s) this export does not have (e.g. {extra[0]}): "
            "timings of another export"
        )
    missing = [key for key in expected if key not in timings.sweeps] + timings.incomplete()
    if missing:
        raise TableError(
            f"{timings.path} lacks the timing of {len(missing)} key(s) in some sweep: {'; '.join(missing)} "
            "(time_ops.py stopped before the end? run it again on the same folder: it goes on where it stopped)"
        )


def unstable_keys(table: LatencyTable) -> List[str]:
    """Keys the header flags as unstable (priced at an upper bound, see time_ops.py)."""
    return [key for key in table.settings.get(UNSTABLE_KEY, "").split(UNSTABLE_SEP) if key]


def engine_name(table: LatencyTable) -> str:
    return table.engine.split(ENGINE_SEP, 1)[0]


def check_extends(table: LatencyTable, engine: str, device: str, settings: Dict[str, str]) -> None:
    """A table is only extended with timings of the same engine, device and settings."""
    recorded = {k: table.settings.get(k) for k in settings}
    problems = [f"{k}={recorded[k]} (now {settings[k]})" for k in settings if recorded[k] != settings[k]]
    if engine_name(table) != engine:
        problems.insert(0, f"engine {engine_name(table)} (now {engine})")
    if table.device != device:
        problems.insert(0, f"device {table.device} (now {device})")
    if problems:
        raise TableError(
            f"{table.path} was built with another engine, device or settings: {', '.join(problems)}; "
            "use the same ones or another --out"
        )


def merge_into_table(timings: Timings, path: str) -> LatencyTable:
    """Add the timings' keys to the table at `path` (created when missing); keys already there are kept."""
    header = timings.header
    settings = {k: str(v) for k, v in header["settings"].items()}
    if os.path.exists(path):
        table = LatencyTable.load(path)
        check_extends(table, timings.engine, header["device"], settings)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = f"{timings.engine}{ENGINE_SEP}{header['engine_version']}"
        table = LatencyTable(engine=engine, device=header["device"], unit="us", settings=settings, path=path)
    added = {k: v for k, v in timings.values().items() if k not in table.entries}
    table.entries.update(added)
    flagged = unstable_keys(table) + [k for k in timings.unstable() if k in added]
    table.settings.pop(UNSTABLE_KEY, None)
    if flagged:
        table.settings[UNSTABLE_KEY] = UNSTABLE_SEP.join(dict.fromkeys(flagged))
    table.save(path)
    return LatencyTable.load(path)


def import_timings(path: str, expected: Iterable[str], out: str, manifest_id: Optional[str] = None) -> LatencyTable:
    """Read `path`, check it against the export (`manifest_id`) and its keys, and merge it into `out`."""
    timings = read_timings(path)
    if manifest_id is not None and timings.header.get("manifest_id") != manifest_id:
        raise TableError(
            f"{path} holds timings of another export (manifest {timings.header.get('manifest_id')}; this config "
            f"and these options give {manifest_id}): import with the config, --samples, --seed and --input-size "
            "of the export, or export and time again"
        )
    check_complete(timings, expected)
    return merge_into_table(timings, out)
