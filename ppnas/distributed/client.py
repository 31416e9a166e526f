"""RemoteController: the search loop's controller when the SAController runs in a server (ppnas/distributed/server.py).

Unlike PaddleSlim's ControllerClient, which ends the process with exit code 0 when the server is gone,
a lost server is retried for `retry_seconds`, then ControllerError ends the search with a message and a
non-zero exit; "search finished" raises SearchFinished, which the search loop takes as a normal end.

While a candidate trains, a thread sends heartbeats so the server knows the candidate is alive (a client
killed mid-candidate stops beating and the server records that candidate as failed). The reward of a
trained candidate is sent by `save()`, right after the search loop appended its history line, so the
server's shared history gets the full CandidateRecord (FLOPs, params, latency, seconds) as a 6th field.
"""

import json
import logging
import socket
import threading
import time
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ppnas.distributed.protocol import (
    OK,
    WRONG_KEY,
    beat_message,
    info_message,
    next_message,
    parse_error_reply,
    record_message,
    reward_message,
)
from ppnas.errors import ControllerError, SearchFinished
from ppnas.history import CandidateRecord, History

_logger = logging.getLogger(__name__)

MAX_REPLY_BYTES = 1 << 20


class ServerRefused(ControllerError):
    """The server answered with an error: retrying the same request would not help."""


class RemoteController:
    """Controller protocol over TCP to a ppnas controller server."""

    def __init__(
        self,
        address: Tuple[str, int],
        key: str,
        client_name: str,
        history: Optional[History] = None,
        retry_seconds: float = 60.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.address = address
        self.key = key
        self.client_name = client_name
        self.history = history
        self.retry_seconds = retry_seconds
        self.request_timeout = request_timeout
        self._records_seen = len(history.read()) if history is not None else 0
        self._pending: Optional[Tuple[List[int], float, int]] = None  # a reward waiting for its record
        self._beating: Optional[threading.Event] = None
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

    def reward(self, tokens: Sequence[int], reward: float, step: int) -> None:
        self._pending = ([int(t) for t in tokens], float(reward), int(step))
        if self.history is None:
            self._send_pending(None)

    def save(self, records_written: int) -> None:
        """Send what the search loop recorded since the last call: the reward with its record, or the
        rejected/failed record (the server writes the shared history). Heartbeats go on until the
        server has it, so a server that restarts meanwhile does not take the candidate for lost."""
        try:
            if self.history is None:
                return
            records = self.history.read()
            new, self._records_seen = records[self._records_seen :], len(records)
            for record in new:
                if record.get("status") == "trained" and self._pending and record["tokens"] == self._pending[0]:
                    self._send_pending(record)
                elif record.get("status") != "trained":
                    self._expect_ok(self._request(record_message(self.key, self.client_name, record)))
            if self._pending is not None:  # its history line could not be read: send what we know
                self._send_pending(None)
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
        self._stop_beating()

    # --- internals --------------------------------------------------------------------------------
    def _send_pending(self, record: Optional[Dict[str, Any]]) -> None:
        assert self._pending is not None
        tokens, reward, step = self._pending
        if record is None:
            record = asdict(CandidateRecord(tokens, "trained", step=step, reward=reward, client=self.client_name))
        record = {**record, "reward": reward}
        self._expect_ok(self._request(reward_message(self.key, tokens, reward, step, self.client_name, record)))
        self._pending = None

    def _expect_ok(self, reply: str) -> None:
        if reply != OK:
            raise ControllerError(f"the controller server at {self._where()} answered {reply[:200]!r} instead of ok")

    def _request(self, message: str, retry: bool = True) -> str:
        """Send one request and return the answer; retry a lost server for `retry_seconds`."""
        first_failure: Optional[float] = None
        pause = 0.2
        while True:
            try:
                reply = self._exchange(message)
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
            reason = parse_error_reply(reply)
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
            sock.sendall(message.encode("utf-8"))
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
        return b"".join(chunks).decode("utf-8")

    def _where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def _start_beating(self, tokens: List[int], every: float) -> None:
        stop = threading.Event()
        self._beating = stop
        message = beat_message(self.key, self.client_name, tokens)

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self._exchange(message)
                except OSError as err:  # the next real request retries and reports
                    _logger.debug("heartbeat failed: %s", err)

        threading.Thread(target=beat, name="ppnas-heartbeat", daemon=True).start()

    def _stop_beating(self) -> None:
        if self._beating is not None:
            self._beating.set()
            self._beating = None
