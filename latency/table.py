"""Read and write per-op latency tables in the latency_855.txt format family.

Line 1 is the header: `engine<TAB>device<TAB>unit`, optionally followed by a fourth field of engine
settings written by our builder (`threads=1;mkldnn=0;...`, plus the calibration once fitted). Every other
line is `<key><TAB><latency>`; a key is comma-separated fields whose first field names the op type:

  conv        conv,flag_bias,flag_relu,n,c_in,h_in,w_in,c_out,groups,kernel,padding,stride,dilation[,extras]
              (also depthwise conv and fc-as-conv; extras: kernel_w, padding, stride_w, dilation_w when
              not square, see latency/opkeys.py)
  activation  <type>,n,c,h,w
  batch_norm  batch_norm,act,n,c,h,w
  eltwise     eltwise,kind(1 mul|2 add|3 other),n,c,h,w
  pooling     pooling,global,n,c,h,w,kernel,padding,stride,ceil_mode,pool_type[,extras]
  softmax     softmax,axis,n,c,h,w
  interp      interp,mode,align_corners,n,c,h_in,w_in,h_out,w_out        (project extension)
  concat      concat,axis,n,c_out,h,w,num_inputs                        (project extension)

PaddleSlim's `TableLatencyEvaluator` reads the same files but asserts on the first unknown key; this
reader checks every line and names the file and line of each problem.
"""

import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from ppnas.errors import TableError
from ppnas.storage import atomic_write_lines

ACTIVATIONS = frozenset(
    ["relu", "relu6", "prelu", "sigmoid", "elu", "brelu", "leaky_relu", "hard_swish", "swish", "tanh", "hard_sigmoid"]
)
# op type -> (fields after the type name, extra fields allowed at the end for non-square shapes)
KEY_FIELDS: Dict[str, Tuple[int, int]] = {
    "conv": (12, 6),
    "batch_norm": (5, 0),
    "eltwise": (5, 0),
    "pooling": (10, 5),
    "softmax": (5, 0),
    "interp": (8, 0),
    "concat": (6, 0),
    **{name: (4, 0) for name in ACTIVATIONS},
}
# fields that are words, not integers: batch_norm's act, interp's mode
TEXT_FIELDS = {"batch_norm": {1}, "interp": {1}}
# milliseconds per table unit
UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
SETTINGS_SEP, SETTING_EQ = ";", "="


def op_kind(key: str) -> str:
    """The op type a key prices: 'conv', 'batch_norm', ..., or 'activation' for any activation name."""
    name = key.split(",", 1)[0]
    return "activation" if name in ACTIVATIONS else name


def check_key(key: str) -> Optional[str]:
    """None when `key` is well formed, else why it is not."""
    fields = key.split(",")
    name = fields[0]
    if name not in KEY_FIELDS:
        return f"unknown op type '{name}' (known: {', '.join(sorted(KEY_FIELDS))})"
    base, extra = KEY_FIELDS[name]
    count = len(fields) - 1
    if not base <= count <= base + extra:
        allowed = str(base) if not extra else f"{base} to {base + extra}"
        return f"bad field count: '{name}' keys have {allowed} fields after the op type, got {count}"
    text = TEXT_FIELDS.get(name, set())
    for i, value in enumerate(fields[1:], start=1):
        if i in text:
            continue
        try:
            int(value)
        except ValueError:
            return f"field {i} of '{name}' key must be an integer, got '{value}'"
    return None


def parse_settings(text: str) -> Dict[str, str]:
    settings = {}
    for item in filter(None, (part.strip() for part in text.split(SETTINGS_SEP))):
        name, _, value = item.partition(SETTING_EQ)
        settings[name.strip()] = value.strip()
    return settings


def format_settings(settings: Dict[str, object]) -> str:
    for name, value in settings.items():
        if any(ch in f"{name}{value}" for ch in (SETTINGS_SEP, SETTING_EQ, "\t", "\n")):
            raise TableError(f"table setting {name}={value!r} may not contain ';', '=', tabs or newlines")
    return SETTINGS_SEP.join(f"{name}{SETTING_EQ}{value}" for name, value in settings.items())


@dataclass
class LatencyTable:
    """A loaded table: `entries` maps key -> latency in `unit`; `settings` are the builder's engine settings."""

    engine: str
    device: str
    unit: str
    entries: Dict[str, float] = field(default_factory=dict)
    path: Optional[str] = None
    settings: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> "LatencyTable":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise TableError(f"latency table not found: {path}")
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        if not lines:
            raise TableError(f"{path}:1: empty latency table: the first line must be 'engine<TAB>device<TAB>unit'")
        engine, device, unit, settings = _parse_header(path, lines[0])
        table = cls(engine=engine, device=device, unit=unit, path=path, settings=settings)
        first_line: Dict[str, int] = {}
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            key, latency = _parse_entry(path, number, line)
            if key in first_line:
                raise TableError(f"{path}:{number}: duplicate key '{key}' (first at line {first_line[key]})")
            first_line[key] = number
            table.entries[key] = latency
        return table

    def lookup(self, key: str) -> Optional[float]:
        """Latency of `key` in table units, None when the table has no such key."""
        return self.entries.get(key)

    @property
    def kinds(self) -> List[str]:
        """Op kinds the table prices (see `op_kind`); an op of another kind is not priced at all."""
        return sorted({op_kind(key) for key in self.entries})

    @property
    def ms_per_unit(self) -> float:
        return UNIT_MS[self.unit]

    @property
    def calibration(self) -> Optional[Tuple[float, float]]:
        """(a, b) of `latency = a * table_sum + b` (b in table units), when the table stores one."""
        if "calib_a" not in self.settings:
            return None
        return float(self.settings["calib_a"]), float(self.settings["calib_b"])

    def header_line(self) -> str:
        fields = [self.engine, self.device, self.unit]
        if self.settings:
            fields.append(format_settings(self.settings))
        return "\t".join(fields)

    def save(self, path: Optional[str] = None) -> str:
        """Write the whole table (header first); returns the path written."""
        path = os.fspath(path or self.path)
        lines = [self.header_line() + "\n"] + [entry_line(key, value) for key, value in self.entries.items()]
        atomic_write_lines(path, lines)
        self.path = path
        return path


def entry_line(key: str, latency: float) -> str:
    problem = check_key(key)
    if problem:
        raise TableError(f"cannot write key '{key}': {problem}")
    return f"{key}\t{latency:.6g}\n"


def append_entries(path: str, entries: Iterable[Tuple[str, float]]) -> None:
    """Append measured keys to an existing table file (the builder's resumable output)."""
    with open(path, "a", encoding="utf-8") as f:
        for key, latency in entries:
            f.write(entry_line(key, latency))
            f.flush()


def _parse_header(path: str, line: str) -> Tuple[str, str, str, Dict[str, str]]:
    fields = line.rstrip("\r").split("\t")
    if len(fields) not in (3, 4):
        raise TableError(
            f"{path}:1: bad field count in the header: expected 'engine<TAB>device<TAB>unit[<TAB>settings]', "
            f"got {len(fields)} TAB-separated fields"
        )
    engine, device, unit = (value.strip() for value in fields[:3])
    if unit not in UNIT_MS:
        raise TableError(f"{path}:1: unknown unit '{unit}' in the header; use one of {', '.join(UNIT_MS)}")
    settings = parse_settings(fields[3]) if len(fields) == 4 else {}
    if ("calib_a" in settings) != ("calib_b" in settings):
        raise TableError(f"{path}:1: the header has only one of calib_a/calib_b; write both or neither")
    return engine, device, unit, settings


def _parse_entry(path: str, number: int, line: str) -> Tuple[str, float]:
    line = line.rstrip("\r")
    if "\t" not in line:
        raise TableError(f"{path}:{number}: no TAB: each line must be '<key><TAB><latency>', got '{line}'")
    fields = line.split("\t")
    if len(fields) != 2:
        raise TableError(f"{path}:{number}: bad field count: expected '<key><TAB><latency>', got {len(fields)} fields")
    key, value = fields[0].strip(), fields[1].strip()
    problem = check_key(key)
    if problem:
        raise TableError(f"{path}:{number}: {problem}: '{key}'")
    try:
        latency = float(value)
    except ValueError:
        raise TableError(f"{path}:{number}: latency of '{key}' is not a number: '{value}'") from None
    if latency != latency or latency < 0:
        raise TableError(f"{path}:{number}: latency of '{key}' must be a non-negative number, got '{value}'")
    return key, latency
