"""The options of a token search, with the defaults every strategy and task shares.

A detection-style config carries the keys of SEARCH_DEFAULTS at its top level (the task adds its own: the
space, the training schedule, the Constraint block); PaddleSeg configs spell them `SLIM.NAS_*`
(ppnas/tasks/segmentation_config.py maps them). `search_options` turns a checked config into SearchOptions.
"""

import os
import socket
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

SAMPLERS = ("sanas", "random", "traverse")  # ppnas/samplers/connect.py opens the one named
SEARCH_DEFAULTS: Dict[str, Any] = {
    "search_steps": 300,  # rewarded candidates (rejected draws do not count)
    "init_temperature": 10.24,  # PaddleSlim's SANAS default and the original example's
    "reduce_rate": 0.85,  # T = T0 * reduce_rate ** iteration
    "init_tokens": None,  # None: the space's own
    "is_server": True,  # false: join the controller server at server_ip:server_port
    "server_ip": "",  # with is_server: empty serves nobody (one process), set: serve remote clients too
    "server_port": 8999,
    "server_key": None,  # None: PaddleSlim's key, derived from the space (a stock SANAS client joins)
    "client_retry_seconds": 60.0,  # how long a client keeps retrying an unreachable server
    "seed": None,  # same seed and config: same candidates, same rewards on CPU
    "max_rejects": 500,  # rejected draws in a row before the window is declared impossible
    "max_failures": 5,  # failed candidates in a row before the search stops
}


@dataclass
class SearchOptions:
    space_name: str
    search_steps: int
    save_dir: str
    config_path: str
    kind: str  # "detection" | "segmentation"
    init_temperature: Optional[float] = None  # None: PaddleSlim's own
    reduce_rate: float = SEARCH_DEFAULTS["reduce_rate"]
    init_tokens: Optional[List[int]] = None
    is_server: bool = True
    server_ip: str = ""
    server_port: int = SEARCH_DEFAULTS["server_port"]
    server_key: Optional[str] = None
    client_retry_seconds: float = SEARCH_DEFAULTS["client_retry_seconds"]
    seed: Optional[int] = None
    resume_dir: Optional[str] = None
    client_name: str = "local"
    quiet: bool = False
    use_vdl: bool = False
    vdl_log_dir: Optional[str] = None
    max_rejects: int = SEARCH_DEFAULTS["max_rejects"]
    max_failures: int = SEARCH_DEFAULTS["max_failures"]
    sampler: str = "sanas"  # one of SAMPLERS
    traverse_stride: int = 1  # the traverse sampler's grid step


def client_name(is_server: bool) -> str:
    """ "local" for the process holding the controller; a client is named after its host and process."""
    return "local" if is_server else f"{socket.gethostname()}-{os.getpid()}"


def search_options(cfg: Mapping[str, Any], config_path: str, kind: str, args: Any, **changes: Any) -> SearchOptions:
    """The options of a checked detection-style config (its keys include SEARCH_DEFAULTS') and the flags every
    search entry point takes (--quiet, --use_vdl, --vdl_log_dir); `changes` sets or replaces any field."""
    fields: Dict[str, Any] = dict(
        space_name=cfg["search_space"],
        search_steps=int(cfg["search_steps"]),
        save_dir=cfg["save_dir"],
        config_path=config_path,
        kind=kind,
        init_temperature=cfg["init_temperature"],
        reduce_rate=float(cfg["reduce_rate"]),
        init_tokens=cfg["init_tokens"],
        is_server=bool(cfg["is_server"]),
        server_ip=cfg["server_ip"] or "",
        server_port=int(cfg["server_port"]),
        server_key=cfg["server_key"],
        client_retry_seconds=float(cfg["client_retry_seconds"]),
        seed=cfg["seed"],
        client_name=client_name(bool(cfg["is_server"])),
        quiet=args.quiet,
        use_vdl=args.use_vdl,
        vdl_log_dir=args.vdl_log_dir,
        max_rejects=int(cfg["max_rejects"]),
        max_failures=int(cfg["max_failures"]),
    )
    return SearchOptions(**{**fields, **changes})
