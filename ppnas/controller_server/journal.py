"""The controller server's checkpoint between snapshots: an append-only journal, one JSON line per save.

Rewriting a file (a temporary file renamed over it) costs 2 to 4 ms on an ext4 disk (its auto_da_alloc
flushes the new data at the rename), and the SANAS checkpoint grows with every candidate; an appended line
costs tens of microseconds. So a server saves each change as one line: what the change did to the annealing
(LocalController.changes: absolute values, so a line applied twice is applied once) and the open leases. A
snapshot (the SANAS checkpoint and the controller's RNG, rewritten) is taken when the server starts, every
COMPACT_EVERY lines and when it ends; each snapshot starts a new journal. A resume loads the snapshot, then
applies the journal's lines in order. A killed server loses nothing the OS was given: lines are not fsynced
(the history lines are, before the journal line that follows them).
"""

import json
import logging
import os
from typing import Any, Dict, List

from ppnas.storage import atomic_write_text

JOURNAL_FILE = "ppnas_journal.jsonl"
COMPACT_EVERY = 500  # lines before the next snapshot

_logger = logging.getLogger(__name__)


class Journal:
    """Lines appended to `<folder>/ppnas_journal.jsonl`; `restart` replaces them by one."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, JOURNAL_FILE)
        self.lines = 0

    @property
    def due(self) -> bool:
        """Time for a snapshot."""
        return self.lines >= COMPACT_EVERY

    def append(self, entry: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(entry + "\n")
        self.lines += 1

    def restart(self, entry: str) -> None:
        """A snapshot holds every line so far: the journal starts again from `entry`, the state it holds."""
        atomic_write_text(self.path, entry + "\n", durable=False)
        self.lines = 1


def read_journal(folder: str) -> List[Dict[str, Any]]:
    """The journal's complete lines, in order; a half-written last line (a kill mid-write) is skipped."""
    path = os.path.join(folder, JOURNAL_FILE)
    if not os.path.isfile(path):
        return []
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                _logger.warning("%s:%d is not a complete journal line; skipped", path, number)
    return entries
