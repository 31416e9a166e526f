"""Which sampler a search talks to: THE one place that picks.

`options.sampler` names it: `random` and `traverse` (ppnas/samplers/uniform.py, traverse.py) draw in this
process and learn nothing from rewards; `sanas` is PaddleSlim's annealing, where the rule is
(`is_server` / `SLIM.NAS_IS_SERVER`, `server_ip` / `SLIM.NAS_ADDRESS`):
- is_server true, server_ip empty (the default): one process, the SAController in-process, no socket.
- is_server true, server_ip set: the same, and the controller is also served over TCP on
  server_ip:server_port so that clients on other machines (or other processes) join the search; the
  server process writes the shared history and checkpoint. Use the machine's address, or 0.0.0.0 for all
  of its interfaces; 127.0.0.1 lets only processes of this machine in.
- is_server false: a RemoteController talks to the server at server_ip:server_port (tools/nas_server.py,
  or a search started with is_server true and server_ip set).
The key is PaddleSlim's, derived from the space (a stock SANAS client joins), unless server_key is set.
"""

import os
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional

from ppnas.controller_server.journal import JOURNAL_FILE
from ppnas.controller_server.serve import build_service, controller_key, server_settings
from ppnas.controller_server.service import Decoder
from ppnas.controller_server.tcp import ControllerServer
from ppnas.engine.meta import read_meta
from ppnas.engine.options import SAMPLERS, SearchOptions
from ppnas.engine.protocols import Controller, SearchObserver
from ppnas.errors import ConfigError
from ppnas.history import CandidateRecord, History
from ppnas.samplers.annealing import SANAS_CHECKPOINT, annealing_controller, catch_up
from ppnas.samplers.in_process import InProcessController
from ppnas.samplers.remote import CandidateLost, RemoteController
from ppnas.samplers.traverse import TraverseController
from ppnas.samplers.uniform import RandomController

CLIENTS_DIR = "clients"  # a client's own folder is <save_dir>/clients/<client name>


def settle_client(options: SearchOptions) -> None:
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
    state = [name for name in (SANAS_CHECKPOINT, JOURNAL_FILE) if os.path.exists(os.path.join(folder, name))]
    if state:
        raise ConfigError(
            f"{folder} holds a controller's state ({', '.join(state)}): it is the save_dir of a server or of a "
            f"one-process search, whose history a client must not write. A client keeps its records in its own "
            f"folder, <save_dir>/{CLIENTS_DIR}/<name>: resume a client with -r that folder"
        )
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


@contextmanager
def open_controller(
    options: SearchOptions, space: Any, history: History, decode: Optional[Decoder] = None
) -> Iterator[Controller]:
    """The sampler `options.sampler` over `space` (its range table; init tokens from the options or the space)."""
    if options.sampler not in SAMPLERS:
        raise ConfigError(f"the sampler must be one of {', '.join(SAMPLERS)}, got {options.sampler!r}")
    range_table = list(space.range_table())
    if options.sampler == "random":
        yield RandomController(range_table, int(options.seed or 0), history)
        return
    if options.sampler == "traverse":
        yield TraverseController(range_table, options.traverse_stride, history)
        return
    init_tokens = list(options.init_tokens or space.init_tokens())
    if not options.is_server:
        with _remote(options, history) as remote:
            yield remote
        return
    if not options.server_ip:
        controller = annealing_controller(options, range_table, init_tokens)
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


@contextmanager
def _remote(options: SearchOptions, history: History) -> Iterator[RemoteController]:
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
