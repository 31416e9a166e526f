"""A search's options -> the service and the server settings that serve it (tools/nas_server.py, and a search
started with is_server true and server_ip set)."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ppnas.controller_server.service import Decoder, SearchService, ServiceSettings, replay_journal
from ppnas.controller_server.tcp import ServerSettings, check_key, default_key
from ppnas.engine.options import SearchOptions
from ppnas.history import History
from ppnas.samplers.annealing import annealing_controller, catch_up

LOOPBACK = "127.0.0.1"
# tools/nas_server.py's --options, in seconds: the settings class whose field (and default) each sets, and its meaning
SERVER_OPTIONS: Dict[str, Tuple[type, str]] = {
    "beat_timeout": (ServiceSettings, "a ppnas client silent this long has lost its candidate (recorded failed)"),
    "lease_seconds": (ServiceSettings, "a PaddleSlim client's time per candidate; null: 3x the longest seen"),
    "linger_seconds": (ServerSettings, "after the search, answer 'search finished' this long, then stop"),
    "request_timeout": (ServerSettings, "a connection must deliver its whole request within this"),
}


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


def build_service(
    options: SearchOptions,
    range_table: List[int],
    init_tokens: List[int],
    history: History,
    settings: Optional[ServiceSettings] = None,
    decode: Optional[Decoder] = None,
) -> SearchService:
    """The annealing controller (resumed when options.resume_dir is set) behind the lock a server needs."""
    controller = annealing_controller(options, range_table, init_tokens)
    saved = replay_journal(controller, options.resume_dir) if options.resume_dir else None
    catch_up(controller, history)  # the history lines a kill left out of the journal
    return SearchService(controller, history, settings or ServiceSettings(options.search_steps), decode, saved)


def server_settings(options: SearchOptions, **tuning: Any) -> ServerSettings:
    """Where and with which key to serve: server_ip (127.0.0.1 when empty), server_port (0: a free one)."""
    key, stock_key = controller_key(options.kind, options.space_name, options.server_key)
    host = options.server_ip or LOOPBACK
    return ServerSettings(host=host, port=int(options.server_port), key=key, stock_key=stock_key, **tuning)
