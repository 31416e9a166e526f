"""The state a controller server guards: PaddleSlim's SAController, candidate leases, the shared history.

Every change happens under one lock, and a request is answered only once a checkpoint holds it: a reward or
record is a history line (fsynced), then a line of the server's journal (ppnas/controller_server/journal.py:
what the change did to the annealing, and the open leases). Handing tokens out is a change too, so a server
killed and restarted with -r never hands the same tokens out twice. Files are written outside the lock, in
order (the save lock), and one write covers every change made before it (group commit); so does one fsync.

Where a request's time went before (bench/distributed_throughput.py, 32 clients, docs/distributed.md): every
draw and every reward rewrote the whole SANAS checkpoint, which grows with every candidate, and two more files,
each renamed over the old one (2 to 4 ms per rename on this ext4 disk) and fsynced, under the lock, so that
`info` and `next` queued behind disk writes.

A lease is the server's promise that a candidate is being evaluated, and by whom: a reward or record is
taken only from the client that holds the lease. It ends with the candidate's reward or record. A ppnas
client renews it with heartbeats; a stock PaddleSlim client cannot, so its lease lasts `lease_seconds`, or
three times the longest candidate seen so far (48 hours, PaddleSlim's own patience, before any). An
expired lease is recorded as `failed`: a client killed mid-candidate loses that candidate only. If that
client's reward still comes (it was slow, not dead), it takes the place of the `failed` line: one record
per token list.
"""

import json
import logging
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set

from ppnas.controller_server.journal import Journal, read_journal
from ppnas.errors import ControllerError
from ppnas.history import CandidateRecord, History
from ppnas.samplers.annealing import LocalController, write_state

_logger = logging.getLogger(__name__)

STOCK_PATIENCE_SECONDS = 172800.0  # PaddleSlim's ControllerServer._compare_time before any step was timed
STOCK_LEASE_FACTOR = 3.0
BEAT = "beat"  # a ppnas client that sends heartbeats
STOCK = "stock"  # a PaddleSlim client: no heartbeats, no name until its reward
LOCAL = "local"  # the search loop of the server's own process: never expires
STOCK_CLIENT = "paddleslim"  # the client named in a stock client's lease-expired record
EXPIRED = "lease expired"  # how the reason of a lease-expired record begins

Decoder = Callable[[Sequence[int]], Dict[str, Any]]


class NoTokensYet(Exception):
    """Every unseen neighbour of the current candidate is taken, but a candidate still out may move the search."""


class NotLeased(ControllerError):
    """A reward or record for tokens that the sender does not hold (never handed to it, or someone else's)."""


@dataclass
class ServiceSettings:
    search_steps: int
    beat_timeout: float = 30.0  # a ppnas client silent this long has lost its candidate
    lease_seconds: Optional[float] = None  # a stock client's candidate; None: adaptive (see module doc)


@dataclass
class Lease:
    tokens: List[int]
    client: Optional[str]
    kind: str
    issued: float
    last_seen: float
    peer: Optional[str] = None  # a stock client's address: its only identity until the reward names it


class SearchService:
    """Thread-safe search state shared by the TCP server and the in-process search loop."""

    def __init__(
        self,
        controller: LocalController,
        history: History,
        settings: ServiceSettings,
        decode: Optional[Decoder] = None,
        saved: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """`saved`: the last journal line of the server being resumed (replay_journal), for its open leases."""
        self.controller = controller
        self.history = history
        self.settings = settings
        self.decode = decode
        self.lock = threading.RLock()
        records = history.read()
        trained = [r for r in records if r.get("status") == "trained"]
        self.trained = len(trained)
        self.rewarded = {_key(r["tokens"]): r.get("client") for r in trained}  # tokens -> who had them rewarded
        self.reported = {_key(r["tokens"]) for r in records if r.get("status") != "trained"}
        self.expired = {  # tokens -> whose lease expired: that client's late reward is still taken
            _key(r["tokens"]): r.get("client")
            for r in records
            if r.get("status") == "failed" and str(r.get("reason") or "").startswith(EXPIRED)
        }
        self.leases: Dict[str, Lease] = {}
        self.longest_candidate = 0.0
        self.failure: Optional[str] = None  # why no more tokens can be handed out (space exhausted)
        self._exhausted_at: Optional[tuple] = None  # the annealing state that had no unseen neighbour left
        self._version = 0  # state changes so far
        self._saved_version = 0  # of which the last checkpoint holds
        self._dirty: Set[str] = set()  # tokens whose entry of the seen list changed since the last journal line
        self._lines_written = 0  # history lines this service appended
        self._lines_synced = 0  # of which the last fsync holds
        self._save_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._changed = threading.Condition(self.lock)
        directory = controller.checkpoint_dir
        self.journal = Journal(directory) if directory else None
        if saved:
            self._restore(saved)
        self._snapshot()  # a snapshot of the state as it starts (resumed), and a new journal

    @property
    def version(self) -> int:
        return self._version

    def wait_for_change(self, seen_version: int, timeout: float) -> None:
        """Block until the state has changed since `seen_version` (a reward, a record, a draw), or `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != seen_version, timeout)

    # --- state ------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.trained >= self.settings.search_steps or self.failure is not None

    def drained(self) -> bool:
        """Finished, and no candidate is still being evaluated."""
        self.expire()
        with self.lock:
            return self.finished and not self.leases

    def info(self) -> Dict[str, Any]:
        with self.lock:
            info = self.controller.info()
            now = time.time()
            leases = [
                {"tokens": lease.tokens, "client": lease.client, "seconds": now - lease.issued}
                for lease in self.leases.values()
            ]
            info.update(trained=self.trained, search_steps=self.settings.search_steps, leases=leases)
            return info

    # --- requests ---------------------------------------------------------------------------------
    def next_tokens(self, client: Optional[str], kind: str, peer: Optional[str] = None) -> Optional[List[int]]:
        """Tokens to evaluate, leased to `client`; None once the search is finished.

        A named client that still holds a lease gets the same tokens again: its answer was lost and it asks
        again, or it was killed and resumed (it keeps its name), so the candidate it lost is evaluated again.
        """
        with self._changing():
            self._expire_locked()
            if self.failure is not None:
                raise ControllerError(self.failure)
            if self.finished:
                return None
            held = [lease for lease in self.leases.values() if client is not None and lease.client == client]
            if held:
                held[0].last_seen = time.time()
                return held[0].tokens
            state = (str(self.controller.sa._tokens), len(self.controller.sa._searched))
            if state == self._exhausted_at and self.leases:  # nothing moved since the last vain draw: do not redo it
                raise NoTokensYet()
            try:
                tokens = self.controller.next_tokens()
                self._dirty.add(_key(tokens))
            except ControllerError as err:
                if not self.leases:
                    self.failure = str(err)
                    raise
                self._exhausted_at = state
                raise NoTokensYet() from None
            now = time.time()
            self.leases[_key(tokens)] = Lease(tokens, client, kind, issued=now, last_seen=now, peer=peer)
            self._version += 1
            return tokens

    def reward(
        self,
        client: str,
        tokens: List[int],
        reward: float,
        step: int,
        record: Optional[CandidateRecord],
        write: bool,
        peer: Optional[str] = None,
    ) -> bool:
        """Apply the reward of tokens leased to `client`; False when it was already applied (a resent message).

        `record` None: a stock client's 5-field message, matched to a stock lease by its address `peer`.
        `write` False: the server process's own loop, which appended the history line itself.
        """
        with self._changing():
            key = _key(tokens)
            if key in self.rewarded:
                if self.rewarded[key] != client:
                    raise NotLeased(f"tokens {tokens} were rewarded by {self.rewarded[key]}, not by {client}")
                return False
            lease = self.leases.get(key)
            stock = record is None
            if lease is not None and self._holds(lease, client, stock, peer):
                del self.leases[key]
                seconds = time.time() - lease.issued
                self.longest_candidate = max(self.longest_candidate, seconds)
                late = False
            elif self.expired.get(key) == (STOCK_CLIENT if stock else client):
                seconds, late = 0.0, True
                _logger.warning("a late reward for %s from %s: it replaces the lease-expired record", tokens, client)
            else:
                raise NotLeased(f"tokens {tokens} are not leased to {client}: a reward is taken from its holder only")
            # the temperature follows the search's total count of rewards (PaddleSlim: client_num * iter)
            self.controller.reward(tokens, reward, self.trained + 1)
            self._dirty.add(key)
            self.trained += 1
            self.rewarded[key] = client
            if stock:  # record what the server knows
                record = CandidateRecord(tokens, "trained", step=step, reward=reward, seconds=seconds)
            assert record is not None
            record.client = client
            record.structure = record.structure or self._structure(tokens)
            record.seconds = record.seconds or seconds
            if late:
                self.history.replace(tokens, record)
                self.expired.pop(key)
                self.reported.discard(key)
            elif write:
                self._append(record)
            self._version += 1
            return True

    def add_record(self, client: str, record: CandidateRecord, write: bool = True) -> bool:
        """`client`'s rejected or failed candidate; False when these tokens already have their record."""
        with self._changing():
            key = _key(record.tokens)
            lease = self.leases.get(key)
            if key in self.reported or key in self.rewarded:  # e.g. a failure after its lease expired
                if lease is not None and lease.client == client:
                    del self.leases[key]
                return False
            if lease is None or lease.client != client:
                raise NotLeased(f"tokens {record.tokens} are not leased to {client}: a record is taken from its holder")
            del self.leases[key]
            self._append_unrewarded(record, write)
            return True

    def beat(self, client: str, tokens: List[int]) -> bool:
        with self.lock:
            lease = self.leases.get(_key(tokens))
            if lease is None or lease.client != client:
                return False
            lease.last_seen = time.time()
            return True

    def expire(self) -> None:
        """Record as failed every candidate whose client stopped answering."""
        with self._changing():
            self._expire_locked()

    # --- internals --------------------------------------------------------------------------------
    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Change the state under the lock, then return only once it is saved: the history line this change
        wrote (fsynced), then the journal line."""
        line = 0
        try:
            with self.lock:
                before = self._lines_written
                try:
                    yield
                finally:
                    line = self._lines_written if self._lines_written != before else 0
                    self._changed.notify_all()
        finally:
            if line:
                self._sync_history(line)
            self._persist()

    def _sync_history(self, line: int) -> None:
        """fsync the history up to our `line`, unless an fsync that began after it was written holds it."""
        with self._sync_lock:
            if self._lines_synced >= line:
                return
            written = self._lines_written
            self.history.sync()
            self._lines_synced = written

    @staticmethod
    def _holds(lease: Lease, client: str, stock: bool, peer: Optional[str]) -> bool:
        if stock:  # a stock client is anonymous until its reward: the lease is the one handed to its address
            return lease.kind == STOCK and lease.peer == peer
        return lease.client == client

    def _persist(self) -> None:
        """Save every change made so far as one journal line (a snapshot when one is due), unless a line written
        meanwhile holds them. The line is made under the lock and written outside it, lines in order."""
        if self.journal is None:
            return
        with self._save_lock:
            with self.lock:
                version = self._version
                if version == self._saved_version:
                    return
                entry = self._entry()
                files = self.controller.state_files() if self.journal.due else None
            if files is None:
                self.journal.append(entry)
            else:
                self._write_snapshot(files, entry)
            self._saved_version = version

    def _entry(self) -> str:
        """One journal line: what changed in the annealing since the last line, and the open leases."""
        changes = self.controller.changes(self._dirty)
        self._dirty = set()
        leases = [vars(lease) for lease in self.leases.values()]
        return json.dumps({"changes": changes, "leases": leases, "longest_candidate": self.longest_candidate})

    def _snapshot(self) -> None:
        """The SANAS checkpoint and the controller's RNG rewritten whole, and a new journal."""
        if self.journal is None:
            return
        with self._save_lock:
            with self.lock:
                version = self._version
                entry = self._entry()
                files = self.controller.state_files()
            self._write_snapshot(files, entry)
            self._saved_version = version

    def _write_snapshot(self, files: Dict[str, str], entry: str) -> None:
        assert self.journal is not None and self.controller.checkpoint_dir
        write_state(self.controller.checkpoint_dir, files, durable=False)  # the history is the durable record
        self.journal.restart(entry)

    def close(self) -> None:
        """The server ends: a snapshot, so the SANAS checkpoint is complete (a stock SANAS can load it)."""
        self._snapshot()

    def _expire_locked(self) -> None:
        now = time.time()
        for key, lease in list(self.leases.items()):
            limit = self._limit(lease)
            if now - (lease.last_seen if lease.kind == BEAT else lease.issued) <= limit:
                continue
            del self.leases[key]
            who = lease.client or "a PaddleSlim client"
            _logger.warning("candidate %s of %s: no news for %.0f s, recorded as failed", lease.tokens, who, limit)
            reason = f"{EXPIRED}: {who} sent no reward or heartbeat for {limit:.0f} s (client lost)"
            record = CandidateRecord(
                lease.tokens,
                "failed",
                self._structure(lease.tokens),
                seconds=now - lease.issued,
                client=lease.client or STOCK_CLIENT,
                reason=reason,
            )
            self._append_unrewarded(record, write=True)
            self.expired[key] = record.client

    def _limit(self, lease: Lease) -> float:
        if lease.kind == LOCAL:
            return math.inf
        if lease.kind == BEAT:
            return self.settings.beat_timeout
        if self.settings.lease_seconds is not None:
            return self.settings.lease_seconds
        if self.longest_candidate > 0:
            return STOCK_LEASE_FACTOR * self.longest_candidate
        return STOCK_PATIENCE_SECONDS

    def _append_unrewarded(self, record: CandidateRecord, write: bool) -> None:
        self.controller.replay(asdict(record))  # remembered as searched: never handed out again
        self.reported.add(_key(record.tokens))
        self._dirty.add(_key(record.tokens))
        if write:
            self._append(record)
        self._version += 1

    def _append(self, record: CandidateRecord) -> None:
        """A history line, fsynced before the change is saved (by `_changing`, with other requests' lines)."""
        self.history.append(record, durable=False)
        self._lines_written += 1

    def _structure(self, tokens: Sequence[int]) -> Dict[str, Any]:
        if self.decode is None:
            return {}
        try:
            return dict(self.decode(tokens))
        except Exception as err:  # a structure is a convenience: a space that cannot decode must not stop us
            _logger.warning("cannot decode %s: %s", list(tokens), err)
            return {}

    def _restore(self, saved: Mapping[str, Any]) -> None:
        """The leases open when a killed server last saved; their clients get a fresh timer to report. The
        server's own loop died with it: its candidate is given up (its tokens stay seen)."""
        now = time.time()
        self.longest_candidate = float(saved.get("longest_candidate", 0.0))
        for item in saved.get("leases", []):
            tokens = [int(t) for t in item["tokens"]]
            if _key(tokens) in self.rewarded or _key(tokens) in self.reported or item["kind"] == LOCAL:
                continue
            lease = Lease(tokens, item["client"], item["kind"], issued=now, last_seen=now, peer=item.get("peer"))
            self.leases[_key(tokens)] = lease


def replay_journal(controller: LocalController, folder: str) -> Optional[Dict[str, Any]]:
    """Apply the journal of a server being resumed (after its snapshot: `controller.load`); its last line,
    for SearchService's `saved`, or None without a journal."""
    entries = read_journal(folder)
    for entry in entries:
        controller.apply_changes(entry["changes"])
    return entries[-1] if entries else None


def _key(tokens: Sequence[int]) -> str:
    return str([int(t) for t in tokens])
