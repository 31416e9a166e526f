"""The search record: one JSON object per candidate in `<save_dir>/history.jsonl`.

Both searches, local or distributed, write the same fields (see CandidateRecord). Lines are appended
and flushed one at a time, so a killed process leaves at most one half-written last line, which the
reader skips with a warning.
"""

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

HISTORY_FILE = "history.jsonl"
STATUSES = ("trained", "rejected", "failed")

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


class History:
    """Append-only JSON-lines file of CandidateRecords."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def in_dir(cls, save_dir: str) -> "History":
        return cls(os.path.join(save_dir, HISTORY_FILE))

    def append(self, record: CandidateRecord) -> None:
        self.append_dict(asdict(record))

    def append_dict(self, record: Dict[str, Any]) -> None:
        """One JSON line of any record (the FBNet search writes per-epoch records)."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        line = json.dumps(record, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

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
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

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
