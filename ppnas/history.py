"""The record every strategy writes: one JSON object per line in `<save_dir>/history.jsonl`.

Record kinds (the `kind` field; a record without one is a candidate):
- candidate: one token list of a token search (SANAS, the one-shot search), local or distributed, trained,
  rejected or failed (CandidateRecord);
- epoch: one FBNet search epoch: losses, test NME, expected latency, choice probabilities, the subnet it
  would derive now (EpochRecord);
- derived: the subnet an FBNet search derived at its end, with its LUT price (DerivedRecord);
- retrain: one epoch of retraining that subnet (RetrainRecord);
- export: an exported inference model and its measured latency (ExportRecord).
Lines are appended and fsynced one at a time, so a killed process leaves at most one half-written last line,
which the reader skips with a warning. Epoch-like records are written with `append_once`, so a run killed
between its checkpoint and its line writes the line on resume, and never twice.
"""

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from ppnas.storage import atomic_write_lines

HISTORY_FILE = "history.jsonl"
STATUSES = ("trained", "rejected", "failed")
KINDS = ("candidate", "epoch", "derived", "retrain", "export")

_logger = logging.getLogger(__name__)


@dataclass
class CandidateRecord:
    """What happened to one candidate. `step` counts rewarded candidates (1-based); None if unrewarded."""

    tokens: List[int]
    status: str
    structure: Dict[str, Any] = field(default_factory=dict)
    step: Optional[int] = None
    flops: Optional[float] = None
    params: Optional[int] = None
    latency_ms: Optional[float] = None
    latencies_ms: Optional[Dict[str, float]] = None  # a front search: each device table's latency (ms), by name
    reward: Optional[float] = None
    seconds: float = 0.0
    train_seconds: Optional[float] = None  # training + evaluation; the rest of `seconds` is search overhead
    client: str = "local"
    reason: Optional[str] = None
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        self.tokens = [int(t) for t in self.tokens]


@dataclass
class EpochRecord:
    """One FBNet search epoch."""

    epoch: int  # 1-based
    phase: str  # warmup | search
    temperature: float  # after this epoch's annealing
    lr: float  # the weights' learning rate in this epoch
    weight_loss: float
    arch_loss: Optional[float]
    nme: float  # test list
    nme_norm: str  # the point pair the NME is normalised by (ppnas.tasks.landmarks.NME_NORMS)
    expected_latency: float  # of the whole model: softmax(alpha / T) mix, calibrated, in `latency_unit`
    expected_searched: float  # of the searched part alone (what mul / add penalise), in `latency_unit`
    latency_unit: str  # ms (a table) or MFLOPs
    probabilities: List[List[float]]  # softmax(alpha) per layer, in the order of the candidates
    choices: List[str]  # the derived subnet now
    predicted: float  # its LUT price, in `lut_unit`
    lut_unit: str
    predicted_ms: Optional[float]
    seconds: float
    kind: str = "epoch"
    time: float = field(default_factory=time.time)


@dataclass
class DerivedRecord:
    """The subnet an FBNet search derived, after `epoch` epochs."""

    epoch: int
    choices: List[str]
    predicted: float  # LUT price, in `lut_unit`
    lut_unit: str
    predicted_ms: Optional[float]
    structure: str  # the structure file, relative to save_dir
    kind: str = "derived"
    time: float = field(default_factory=time.time)


@dataclass
class RetrainRecord:
    """One epoch of retraining a derived subnet."""

    epoch: int
    loss: float
    nme: float
    nme_norm: str  # the point pair the NME is normalised by (ppnas.tasks.landmarks.NME_NORMS)
    seconds: float
    lr: float  # the weights' learning rate in this epoch
    kind: str = "retrain"
    choices: List[str] = field(default_factory=list)
    time: float = field(default_factory=time.time)


@dataclass
class ExportRecord:
    """An exported inference model, checked against dygraph, and its end-to-end latency measured here."""

    inference_model: str
    max_abs_diff: float
    latency_ms_measured: float
    threads: int
    kind: str = "export"
    time: float = field(default_factory=time.time)


def record_kind(record: Dict[str, Any]) -> str:
    return str(record.get("kind", "candidate"))


class History:
    """Append-only JSON-lines file of CandidateRecords."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def in_dir(cls, save_dir: str) -> "History":
        return cls(os.path.join(save_dir, HISTORY_FILE))

    def append(self, record: CandidateRecord, durable: bool = True) -> None:
        self.append_dict(asdict(record), durable)

    def append_dict(self, record: Dict[str, Any], durable: bool = True) -> None:
        """One JSON line of any record kind. `durable` False leaves the fsync to a later `sync` (a server
        fsyncs once for the lines of several requests); the line is in the OS's hands either way, so a killed
        process loses nothing."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        line = json.dumps(record, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            if durable:
                os.fsync(f.fileno())

    def sync(self) -> None:
        """fsync the lines appended with `durable` False (a power cut cannot lose them after this)."""
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                os.fsync(f.fileno())

    def append_once(self, record: Any) -> bool:
        """Append `record` (a dataclass of KINDS or its dict) unless the history has one of the same kind and
        epoch; returns whether it was appended."""
        data = asdict(record) if not isinstance(record, dict) else record
        key = (record_kind(data), data.get("epoch"))
        if any((record_kind(old), old.get("epoch")) == key for old in self.read()):
            return False
        self.append_dict(data)
        return True

    def replace(self, tokens: List[int], record: CandidateRecord) -> None:
        """Put `record` in place of the line of `tokens`: one record per token list, also when a first verdict
        (a lease given up) is overturned. The file is rewritten and renamed over, so a kill leaves either one."""
        lines = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    same = json.loads(line).get("tokens") == list(tokens)
                except json.JSONDecodeError:
                    same = False
                lines.append(json.dumps(asdict(record), sort_keys=True) + "\n" if same else line)
        atomic_write_lines(self.path, lines)

    def read(self) -> List[Dict[str, Any]]:
        """All complete records; blank or half-written lines are skipped with a warning."""
        if not os.path.exists(self.path):
            return []
        records = []
        with open(self.path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    _logger.warning("%s:%d is not a complete JSON record; skipped", self.path, number)
        return records

    def of_kind(self, kind: str) -> List[Dict[str, Any]]:
        return [r for r in self.read() if record_kind(r) == kind]

    def trained(self) -> List[Dict[str, Any]]:
        return [r for r in self.read() if r.get("status") == "trained"]


def steps_done(records: List[Dict[str, Any]], client: str) -> int:
    """How many candidates `client` has had rewarded: the search steps it has used up."""
    return sum(1 for r in records if r.get("status") == "trained" and r.get("client") == client)


def best_record(records: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The trained record with the highest reward (earliest wins ties)."""
    trained = [r for r in records if r.get("status") == "trained" and r.get("reward") is not None]
    if not trained:
        return None
    return max(trained, key=lambda r: (r["reward"], -trained.index(r)))
