"""Which controller a search talks to: in-process, in-process and serving remote clients, or a remote server.

The rule (`is_server` / `SLIM.NAS_IS_SERVER`, `server_ip` / `SLIM.NAS_ADDRESS`):
- is_server true, server_ip empty (the default): one process, the SAController in-process, no socket.
- is_server true, server_ip set: the same, and the controller is also served over TCP on
  server_ip:server_port so that clients on other machines (or other processes) join the search; the
  server process writes the shared history and checkpoint. Use the machine's address, or 0.0.0.0 for all
  of its interfaces; 127.0.0.1 lets only processes of this machine in.
- is_server false: a RemoteController talks to the server at server_ip:server_port (tools/nas_server.py,
  or a search started with is_server true and server_ip set).
The key is PaddleSlim's, derived from the space (a stock SANAS client joins), unless server_key is set.
"""

import logging
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ppnas.distributed.client import CandidateLost, RemoteController
from ppnas.distributed.leases import (
    LEASES_FILE,
    LOCAL,
    Decoder,
    NoTokensYet,
    SearchService,
    ServiceSettings,
    catch_up,
)
from ppnas.distributed.server import WAIT_SECONDS, ControllerServer, ServerSettings, check_key, default_key
from ppnas.errors import ConfigError, SearchFinished
from ppnas.history import CandidateRecord, History
from ppnas.sanas.controller import SANAS_CHECKPOINT, Controller, LocalController
from ppnas.sanas.search import SearchObserver

if TYPE_CHECKING:
    from ppnas.sanas.runner import SearchOptions

LOOPBACK = "127.0.0.1"
CLIENTS_DIR = "clients"  # a client's own folder is <save_dir>/clients/<client name>

_logger = logging.getLogger(__name__)


def local_controller(options: "SearchOptions", range_table: List[int], init_tokens: List[int]) -> LocalController:
    """A LocalController checkpointing into save_dir; restored from resume_dir when resuming."""
    controller = LocalController(
        range_table,
        init_tokens,
        init_temperature=options.init_temperature,
        reduce_rate=options.reduce_rate,
        seed=options.seed,
        checkpoint_dir=options.save_dir,
    )
    if options.resume_dir:
        controller.load(options.resume_dir)
    return controller


def settle_client(options: "SearchOptions") -> None:
    """A client's folder and name, so that it never writes a server's history and a resumed one goes on.

    A new client writes `<save_dir>/clients/<its name>`; a resumed one (-r DIR) writes DIR and takes back
    the name it had there, so its step count continues. A folder holding a controller's state (the save_dir
    of a server or of a one-process search) is refused. A server (is_server true) is left alone.
    """
    if options.is_server:
        return
    if not options.resume_dir:
        options.save_dir = os.path.join(options.save_dir, CLIENTS_DIR, options.client_name)
        print(f"client {options.client_name} writes {options.save_dir} (resume it with -r {options.save_dir})")
        return
    folder = options.resume_dir
    state = [name for name in (SANAS_CHECKPOINT, LEASES_FILE) if os.path.exists(os.path.join(folder, name))]
    if state:
        raise ConfigError(
            f"{folder} holds a controller's state ({', '.join(state)}): it is the save_dir of a server or of a "
            f"one-process search, whose history a client must not write. A client keeps its records in its own "
            f"folder, <save_dir>/{CLIENTS_DIR}/<name>: resume a client with -r that folder"
        )
    from ppnas.report import read_meta

    name = ((read_meta(folder) or {}).get("options") or {}).get("client_name")
    if not name:
        raise ConfigError(
            f"{folder} is not a client's folder (its search_meta.json names no client): resume a client with "
            f"-r <save_dir>/{CLIENTS_DIR}/<name>"
        )
    options.client_name = str(name)


class CandidateWatch(SearchObserver):
    """Stops the training of a candidate that the server of `remote` has given up, at its next iteration."""

    def __init__(self, remote: RemoteController) -> None:
        self.remote = remote

    def on_iter(self, iteration: int, total: int, loss: float) -> None:
        if self.remote.lost.is_set():
            raise CandidateLost(
                "the controller server gave this candidate up (no heartbeat reached it in time): training stopped"
            )


def search_observers(controller: Controller) -> List[SearchObserver]:
    """The observers a controller needs in the search loop: a remote one stops a candidate its server gave up."""
    return [CandidateWatch(controller)] if isinstance(controller, RemoteController) else []


def controller_key(kind: str, space_name: str, server_key: Optional[str]) -> Tuple[str, bool]:
    """(key, is PaddleSlim's own key)."""
    if server_key:
        return check_key(str(server_key)), False
    return default_key(kind, space_name), True


def space_decoder(space: Any) -> Decoder:
    """Tokens -> structure dict, for the records of stock clients (which send no structure)."""

    def decode(tokens: Sequence[int]) -> Dict[str, Any]:
        arch = space.token2arch(list(tokens))[0]
        return arch.to_dict() if hasattr(arch, "to_dict") else dict(arch)

    return decode


class InProcessController:
    """The server process's own search loop, drawing from the same SearchService as remote clients.

    Its history is the service's: the loop appends each line, then `recorded` applies it under the
    service's lock and checkpoints, in that order, as for a remote client's record.
    """

    def __init__(self, service: SearchService, client: str) -> None:
        self.service = service
        self.client = client

    def next_tokens(self) -> List[int]:
        told = False
        while True:
            seen = self.service.version
            try:
                tokens = self.service.next_tokens(self.client, LOCAL)
                break
            except NoTokensYet:  # every unseen neighbour is out with remote clients: one of them may move the search
                if not told:
                    _logger.info("every unseen candidate near the current one is out with remote clients: waiting")
                    told = True
                self.service.wait_for_change(seen, WAIT_SECONDS)
        if tokens is None:
            raise SearchFinished()
        return tokens

    def recorded(self, record: CandidateRecord) -> None:
        if record.status == "trained":
            assert record.reward is not None and record.step is not None
            self.service.reward(self.client, record.tokens, record.reward, record.step, record, write=False)
        else:
            self.service.add_record(self.client, record, write=False)

    def info(self) -> Dict[str, Any]:
        return self.service.info()

    def close(self) -> None:
        """The server is stopped by open_controller."""


def build_service(
    options: "SearchOptions",
    range_table: List[int],
    init_tokens: List[int],
    history: History,
    settings: Optional[ServiceSettings] = None,
    decode: Optional[Decoder] = None,
) -> SearchService:
    """The controller (resumed when options.resume_dir is set) behind the lock a server needs."""
    controller = local_controller(options, range_table, init_tokens)
    catch_up(controller, history)
    service = SearchService(controller, history, settings or ServiceSettings(options.search_steps), decode)
    if options.resume_dir:
        service.restore_leases()
    return service


def server_settings(options: "SearchOptions", **tuning: Any) -> ServerSettings:
    """Where and with which key to serve: server_ip (127.0.0.1 when empty), server_port (0: a free one)."""
    key, stock_key = controller_key(options.kind, options.space_name, options.server_key)
    host = options.server_ip or LOOPBACK
    return ServerSettings(host=host, port=int(options.server_port), key=key, stock_key=stock_key, **tuning)


@contextmanager
def open_controller(
    options: "SearchOptions",
    range_table: List[int],
    init_tokens: List[int],
    history: History,
    decode: Optional[Decoder] = None,
) -> Iterator[Controller]:
    if not options.is_server:
        if not options.server_ip:
            raise ConfigError(
                "is_server is false but server_ip is empty: set server_ip (SLIM.NAS_ADDRESS) to the address of "
                "the controller server (python tools/nas_server.py -c CONFIG)"
            )
        key, _ = controller_key(options.kind, options.space_name, options.server_key)
        address = (options.server_ip, int(options.server_port))
        remote = RemoteController(address, key, options.client_name, options.client_retry_seconds)
        done = history.read() if options.resume_dir else []
        if done:  # a kill may have fallen between its line and its message: the server takes a resend once
            remote.recorded(CandidateRecord(**done[-1]))
        try:
            yield remote
        finally:
            remote.close()
        return
    if not options.server_ip:
        controller = local_controller(options, range_table, init_tokens)
        catch_up(controller, history)
        try:
            yield controller
        finally:
            controller.close()
        return
    service = build_service(options, range_table, init_tokens, history, decode=decode)
    server = ControllerServer(service, range_table, server_settings(options))
    server.start()
    finished = False
    try:
        yield InProcessController(service, options.client_name)
        finished = True
    finally:
        if finished:
            server.serve_until_done()  # remote candidates still out get their time; late clients hear "finished"
        else:
            server.stop()
        service.controller.close()
