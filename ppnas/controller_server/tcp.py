"""A controller server that does not fall over: PaddleSlim's protocol over TCP, in front of a SearchService.

Why not PaddleSlim's ControllerServer (see ../shared/notes/DEPENDENCIES.md, trap 6): one malformed
message ends its accept loop, a timed-out client can crash it, it binds without SO_REUSEADDR and to all
interfaces, and it goes silent once the search is over. Here every connection is read on its own thread
with a deadline, anything malformed is refused (logged, answered "error", closed) before it reaches the
search state, and late clients are told "search finished" until the server leaves.
"""

import errno
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from ppnas.controller_server.protocol import (
    FINISHED_TEXT,
    FRAME,
    INCOMPLETE,
    OK,
    UNKNOWN,
    Beat,
    CurrentInfo,
    NextTokens,
    ProtocolError,
    Record,
    Reward,
    error_reply,
    frame,
    frame_length,
    may_be_framed,
    parse_request,
    stock_info_text,
    tokens_text,
)
from ppnas.controller_server.service import BEAT, STOCK, NoTokensYet, SearchService
from ppnas.errors import ConfigError, ControllerError

_logger = logging.getLogger(__name__)

ORIGINAL_SEG_SPACE_CONFIG = {"input_size": 769, "output_size": 1, "block_num": 7}  # PaddleSeg's train_nas.py
BEATS_PER_TIMEOUT = 4  # a ppnas client beats this many times within the server's beat_timeout
WAIT_SECONDS = 2.0  # asked to wait: every unseen neighbour is out being evaluated
NO_TOKENS_YET = "no unseen candidate until one that is out is rewarded: ask again later"


def default_key(kind: str, space_name: str) -> str:
    """The key PaddleSlim's SANAS derives, `str(configs)`, for the configs the original scripts passed.

    PaddleDetection's slim/nas/train_nas.py passed `[(cfg.search_space)]`, which is a list of one string;
    PaddleSeg's slim/nas/train_nas.py passed `[(SLIM.NAS_SPACE_NAME, {'input_size': 769, ...})]`.
    """
    if kind == "segmentation":
        return str([(space_name, dict(ORIGINAL_SEG_SPACE_CONFIG))])
    return str([space_name])


def check_key(key: str) -> str:
    if not key or any(c in key for c in "\t\r\n") or not key.isprintable():
        raise ConfigError("server_key must be a non-empty printable string without tabs or newlines")
    return key


@dataclass
class ServerSettings:
    host: str
    port: int
    key: str
    stock_key: bool  # the key is PaddleSlim's derived one: stock clients' keyless requests are served
    request_timeout: float = 10.0  # a connection must deliver its request within this
    linger_seconds: float = 10.0  # after the search is done, keep answering "search finished" this long
    max_connections: int = 256
    max_message_bytes: int = 256 * 1024
    quiet_seconds: float = 0.05  # a stock message has no terminator: it is complete when the sender pauses


def port_in_use_message(host: str, port: int) -> str:
    return (
        f"cannot listen on {host}:{port}: address already in use. Another controller server (or a search "
        f"with is_server true) listens there, or a server that just ended left the port in TIME_WAIT. Pick "
        f"another port with server_port / SLIM.NAS_PORT (0 picks a free one), stop the other server, or "
        f"wait about a minute for TIME_WAIT to pass"
    )


class ControllerServer:
    """Serve `service` on (host, port); each connection is one request handled on its own thread."""

    def __init__(self, service: SearchService, range_table: Sequence[int], settings: ServerSettings) -> None:
        self.service = service
        self.range_table = list(range_table)
        self.settings = settings
        self.address: Tuple[str, int] = (settings.host, settings.port)
        self.refused = 0
        self._slots = threading.BoundedSemaphore(settings.max_connections)
        # a thread per connection, kept for the next one: starting a thread cost more than answering a request
        self._workers = ThreadPoolExecutor(settings.max_connections, thread_name_prefix="ppnas-request")
        self._stop = threading.Event()
        self._socket: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Tuple[str, int]:
        """Bind, listen and serve from a thread; returns the bound (host, port) and prints it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host, port = self.settings.host, self.settings.port
        try:
            sock.bind((host, port))
        except OSError as err:
            sock.close()
            if err.errno == errno.EADDRINUSE:
                raise ConfigError(port_in_use_message(host, port)) from None
            if err.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(
                    f"cannot listen on {host}:{port}: {host} is not an address of this machine; set server_ip / "
                    f"SLIM.NAS_ADDRESS to one of its addresses, or 0.0.0.0 for all of them"
                ) from None
            raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror}") from None
        sock.listen(128)
        sock.settimeout(0.5)
        self._socket = sock
        self.address = sock.getsockname()[:2]
        key_note = "PaddleSlim's key for this space" if self.settings.stock_key else "secret key (server_key)"
        print(f"controller server listening on {self.address[0]}:{self.address[1]} ({key_note})", flush=True)
        self._thread = threading.Thread(target=self._accept_loop, name="ppnas-controller-server", daemon=True)
        self._thread.start()
        return self.address

    def serve_until_done(self) -> None:
        """Block until the search is finished, no candidate is out, and `linger_seconds` have passed."""
        drained_since: Optional[float] = None
        while not self._stop.is_set():
            if self.service.drained():
                drained_since = drained_since or time.monotonic()
                if time.monotonic() - drained_since >= self.settings.linger_seconds:
                    break
            else:
                drained_since = None
            time.sleep(0.1)
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
        deadline = time.monotonic() + self.settings.request_timeout
        for _ in range(self.settings.max_connections):  # let requests in progress finish
            if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break
        self._workers.shutdown(wait=False)
        self.service.close()

    # --- connections ------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._socket is not None
        last_expiry = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_expiry >= 0.5:
                self.service.expire()
                last_expiry = time.monotonic()
            try:
                conn, peer = self._socket.accept()
            except socket.timeout:
                continue
            except OSError as err:  # e.g. out of file descriptors: wait, do not die
                if self._stop.is_set():
                    break
                _logger.warning("accept failed: %s", err)
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                _logger.warning("too many connections (%d): closing one from %s", self.settings.max_connections, peer)
                conn.close()
                continue
            self._workers.submit(self._handle, conn, peer)

    def _handle(self, conn: socket.socket, peer: Tuple[str, int]) -> None:
        reply: Optional[str] = None
        buf = bytearray()
        try:
            raw = self._read(conn, buf)
            if raw is None:
                return  # connected and said nothing: a half-open connection, dropped
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("not UTF-8 text") from None
            reply = self._answer(text, may_be_framed(buf), peer[0])
        except ProtocolError as err:
            self._log_refusal(peer, str(err))
            reply = error_reply(str(err))
        except ControllerError as err:
            reply = error_reply(str(err))
        except OSError as err:  # the client vanished mid-request
            _logger.info("connection from %s dropped: %s", peer, err)
        except Exception:  # a bug in handling one request must not take the search down
            _logger.exception("request from %s failed", peer)
            reply = error_reply("internal error, see the server log")
        finally:
            try:
                if reply is not None:  # framed to a framed request, refused or not
                    conn.sendall(frame(reply) if buf and may_be_framed(buf) else reply.encode("utf-8"))
            except OSError:
                pass
            conn.close()
            self._slots.release()

    def _read(self, conn: socket.socket, buf: bytearray) -> Optional[bytes]:
        """One request (its payload, when framed), read into `buf`; None when the connection sent nothing.

        A framed (ppnas) message is read to its declared length, however slowly it comes, until the
        request timeout; a bare (stock PaddleSlim) one has no end marker, so it ends where the sender
        pauses for `quiet_seconds` or closes.
        """
        settings = self.settings
        deadline = time.monotonic() + settings.request_timeout
        header: Optional[Tuple[int, int]] = None
        while True:
            framed = bool(buf) and may_be_framed(buf)
            if framed and len(buf) >= len(FRAME):
                header = header or frame_length(bytes(buf))
                if header is not None:
                    length, start = header
                    if length > settings.max_message_bytes:
                        raise ProtocolError(f"message longer than {settings.max_message_bytes} bytes")
                    if len(buf) > start + length:
                        raise ProtocolError("one request per connection")
                    if len(buf) == start + length:
                        return bytes(buf[start:])
            if len(buf) > settings.max_message_bytes:
                raise ProtocolError(f"message longer than {settings.max_message_bytes} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if buf:
                    raise ProtocolError(f"{INCOMPLETE} (timed out)")
                return None
            quiet = buf and not framed
            conn.settimeout(min(remaining, settings.quiet_seconds) if quiet else remaining)
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                if quiet:
                    return bytes(buf)
                continue
            if not chunk:
                if framed:
                    raise ProtocolError(f"{INCOMPLETE} (the sender closed before its end)")
                return bytes(buf) if buf else None
            buf += chunk

    def _answer(self, text: str, framed: bool, peer: str) -> str:
        settings = self.settings
        request = parse_request(text, framed, settings.key, settings.stock_key, self.range_table)
        service = self.service
        if isinstance(request, NextTokens):
            if request.client is None:
                try:
                    tokens = service.next_tokens(None, STOCK, peer)
                except NoTokensYet:
                    return error_reply(NO_TOKENS_YET)
                return FINISHED_TEXT if tokens is None else tokens_text(tokens)
            try:
                tokens = service.next_tokens(request.client, BEAT)
            except NoTokensYet:
                return json.dumps({"wait": WAIT_SECONDS})
            if tokens is None:
                return json.dumps({"finished": True})
            beat = self.service.settings.beat_timeout / BEATS_PER_TIMEOUT
            return json.dumps({"tokens": tokens, "beat_seconds": beat})
        if isinstance(request, CurrentInfo):
            info = service.info()
            return json.dumps(info) if request.as_json else stock_info_text(info)
        if isinstance(request, Reward):
            service.reward(
                request.client, request.tokens, request.reward, request.iter, request.record, write=True, peer=peer
            )
            return OK
        if isinstance(request, Record):
            service.add_record(request.client, request.record)
            return OK
        if isinstance(request, Beat):
            return OK if service.beat(request.client, request.tokens) else UNKNOWN
        raise ProtocolError("not a controller request")

    def _log_refusal(self, peer: Tuple[str, int], reason: str) -> None:
        self.refused += 1
        if self.refused <= 20 or self.refused % 100 == 0:
            _logger.warning("refused a request from %s: %s (%d refused so far)", peer[0], reason, self.refused)
