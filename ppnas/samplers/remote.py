"""RemoteController: the search loop's controller when the SAController runs in a server (ppnas/controller_server/).

Unlike PaddleSlim's ControllerClient, which ends the process with exit code 0 when the server is gone,
a lost server is retried for `retry_seconds`, then ControllerError ends the search with a message and a
non-zero exit; "search finished" raises SearchFinished, which the search loop takes as a normal end.
An answer that arrives cut short (or the server's "incomplete message") is retried once, then the
client gives up.

While a candidate trains, a thread sends heartbeats so the server knows the candidate is alive (a client
killed mid-candidate stops beating and the server records that candidate as failed). When the server
answers a heartbeat "unknown", it has given the candidate up (this client was silent too long, e.g. cut
off by the network): `lost` is set, and CandidateWatch (ppnas/samplers/connect.py), an observer of the
search loop, stops the training at its next iteration with CandidateLost, which the loop records as a
failed candidate. The outcome of each
candidate goes to the server in `recorded()`, right after the loop appended its own history line, with
the full CandidateRecord (FLOPs, params, latency, seconds) that the server writes to the shared history.
"""

import json
import logging
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from ppnas.controller_server.protocol import (
    INCOMPLETE,
    OK,
    UNKNOWN,
    WRONG_KEY,
    IncompleteFrame,
    beat_message,
    frame,
    info_message,
    next_message,
    parse_error_reply,
    record_message,
    reward_message,
    unframe,
)
from ppnas.errors import ControllerError, SearchFinished
from ppnas.history import CandidateRecord

_logger = logging.getLogger(__name__)

MAX_REPLY_BYTES = 1 << 20


class ServerRefused(ControllerError):
    """The server answered with an error: retrying the same request would not help."""


class CandidateLost(RuntimeError):
    """The server gave the candidate in training up: training it further would be wasted."""


class RemoteController:
    """Controller protocol over TCP to a ppnas controller server."""

    def __init__(
        self,
        address: Tuple[str, int],
        key: str,
        client_name: str,
        retry_seconds: float = 60.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.address = address
        self.key = key
        self.client_name = client_name
        self.retry_seconds = retry_seconds
        self.request_timeout = request_timeout
        self.lost = threading.Event()  # set when the server gave the candidate in training up
        self._beat = threading.Condition()
        self._beat_job: Optional[_BeatJob] = None  # the candidate out, while its heartbeats go
        self._beat_thread: Optional[threading.Thread] = None
        self._closed = False
        self.last_info: Dict[str, Any] = {}

    # --- Controller protocol ----------------------------------------------------------------------
    def next_tokens(self) -> List[int]:
        self._stop_beating()
        reply = json.loads(self._request(next_message(self.key, self.client_name)))
        while "wait" in reply:  # every unseen neighbour is out: a reward still to come may move the search
            time.sleep(float(reply["wait"]))
            reply = json.loads(self._request(next_message(self.key, self.client_name)))
        if reply.get("finished"):
            raise SearchFinished()
        tokens = [int(t) for t in reply["tokens"]]
        self._start_beating(tokens, float(reply["beat_seconds"]))
        return tokens

    def recorded(self, record: CandidateRecord) -> None:
        """Send the candidate's outcome: the reward with its record, or the rejected/failed record (the
        server writes the shared history). Heartbeats go on until the server has it, so a server that
        restarts meanwhile does not take the candidate for lost."""
        try:
            data = asdict(record)
            if record.status == "trained":
                assert record.reward is not None and record.step is not None
                message = reward_message(self.key, record.tokens, record.reward, record.step, self.client_name, data)
            else:
                message = record_message(self.key, self.client_name, data)
            self._expect_ok(self._request(message))
        finally:
            self._stop_beating()

    def info(self) -> Dict[str, Any]:
        """The server's view of the search (the last one seen while it cannot be reached)."""
        try:
            self.last_info = json.loads(self._request(info_message(self.key), retry=False))
        except ControllerError as err:
            _logger.debug("no controller info: %s", err)
        return self.last_info

    def close(self) -> None:
        with self._beat:
            self._beat_job = None
            self._closed = True
            self._beat.notify()

    # --- internals --------------------------------------------------------------------------------
    def _expect_ok(self, reply: str) -> None:
        if reply != OK:
            raise ControllerError(f"the controller server at {self._where()} answered {reply[:200]!r} instead of ok")

    def _request(self, message: str, retry: bool = True) -> str:
        """Send one request and return the answer; retry a lost server for `retry_seconds`, an incomplete
        answer once (requests are idempotent: a resent reward or draw is recognised by the server)."""
        first_failure: Optional[float] = None
        pause = 0.2
        incomplete = 0
        while True:
            try:
                reply = self._exchange(message)
                reason = parse_error_reply(reply)
                if reason is not None and reason.startswith(INCOMPLETE):
                    raise IncompleteFrame(f"the server read our request as {reason!r}")
            except IncompleteFrame as err:
                incomplete += 1
                if incomplete > 1:
                    raise ControllerError(
                        f"the controller server at {self._where()}: an incomplete exchange twice ({err}); "
                        f"check the network between this client and the server"
                    ) from None
                _logger.warning("controller server %s: %s; retrying once", self._where(), err)
                continue
            except OSError as err:
                now = time.monotonic()
                first_failure = first_failure or now
                if not retry or now - first_failure >= self.retry_seconds:
                    raise ControllerError(
                        f"lost the controller server at {self._where()} ({err}); gave up after "
                        f"{now - first_failure:.0f} s. Restart it (python tools/nas_server.py -c CONFIG -r SAVE_DIR "
                        f"resumes the search), then restart this client; client_retry_seconds sets the patience"
                    ) from None
                _logger.warning("controller server %s: %s; retrying", self._where(), err)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            if reason == WRONG_KEY:
                raise ServerRefused(
                    f"the controller server at {self._where()} refused our key: set server_key (SLIM.NAS_KEY) to "
                    f"the server's, or leave it unset on both sides"
                )
            if reason is not None:
                raise ServerRefused(f"the controller server at {self._where()} refused a request: {reason}")
            return reply

    def _exchange(self, message: str) -> str:
        with socket.create_connection(self.address, timeout=self.request_timeout) as sock:
            sock.sendall(frame(message))
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            size = 0
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise ConnectionError("reply too long")
        if not chunks:
            raise ConnectionError("the server closed the connection without an answer")
        return unframe(b"".join(chunks))

    def _where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def _start_beating(self, tokens: List[int], every: float) -> None:
        lost = self.lost = threading.Event()  # this candidate's own: a late beat cannot flag the next one
        with self._beat:
            self._beat_job = _BeatJob(beat_message(self.key, self.client_name, tokens), every, tokens, lost)
            self._beat.notify()
        if self._beat_thread is None:  # one thread for all candidates: starting one per candidate cost more
            self._beat_thread = threading.Thread(target=self._beat_loop, name="ppnas-heartbeat", daemon=True)
            self._beat_thread.start()

    def _stop_beating(self) -> None:
        with self._beat:
            self._beat_job = None
            self._beat.notify()

    def _beat_loop(self) -> None:
        """Beat every `job.every` seconds while a candidate is out; idle between candidates."""
        while True:
            with self._beat:
                job = self._beat_job
                if self._closed:
                    return
                if job is None:
                    self._beat.wait()
                    continue
                self._beat.wait(job.every)
                if self._beat_job is not job:  # stopped, or another candidate: its own timer starts
                    continue
            try:
                reply = self._exchange(job.message)
            except (OSError, IncompleteFrame) as err:  # the next real request retries and reports
                _logger.debug("heartbeat failed: %s", err)
                continue
            with self._beat:
                if reply == UNKNOWN and self._beat_job is job:
                    _logger.warning("the controller server gave candidate %s up: stopping its training", job.tokens)
                    job.lost.set()
                    self._beat_job = None


@dataclass
class _BeatJob:
    message: str
    every: float
    tokens: List[int]
    lost: threading.Event
