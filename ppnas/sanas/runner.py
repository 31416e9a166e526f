"""Entry-point glue shared by both searches: options -> controller, history, observers -> run_search -> outputs."""

import importlib
import json
import logging
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

from ppnas.constraint import Constraint
from ppnas.distributed.connect import open_controller
from ppnas.errors import ConfigError, PpnasError
from ppnas.history import History, steps_done
from ppnas.sanas.controller import Controller
from ppnas.sanas.search import SearchResult, SearchSettings, Task, run_search

_logger = logging.getLogger(__name__)

META_FILE = "search_meta.json"


@dataclass
class SearchOptions:
    space_name: str
    search_steps: int
    save_dir: str
    config_path: str
    kind: str  # "detection" | "segmentation"
    init_temperature: Optional[float] = None
    reduce_rate: float = 0.85
    init_tokens: Optional[List[int]] = None
    is_server: bool = True
    server_ip: str = ""
    server_port: int = 8999
    server_key: Optional[str] = None
    client_retry_seconds: float = 60.0
    seed: Optional[int] = None
    resume_dir: Optional[str] = None
    client_name: str = "local"
    quiet: bool = False
    use_vdl: bool = False
    vdl_log_dir: Optional[str] = None
    max_rejects: int = 500
    max_failures: int = 5


def search_options(cfg: Dict[str, Any], config_path: str, kind: str, args: Any, **changes: Any) -> SearchOptions:
    """The options of a detection-style search config and the flags every search entry point takes
    (--quiet, --use_vdl, --vdl_log_dir); `changes` sets or replaces any field."""
    fields: Dict[str, Any] = dict(
        space_name=cfg["search_space"],
        search_steps=int(cfg["search_steps"]),
        save_dir=cfg["save_dir"],
        config_path=config_path,
        kind=kind,
        init_temperature=cfg["init_temperature"],
        reduce_rate=float(cfg["reduce_rate"]),
        init_tokens=cfg["init_tokens"],
        seed=cfg["seed"],
        quiet=args.quiet,
        use_vdl=args.use_vdl,
        vdl_log_dir=args.vdl_log_dir,
        max_rejects=int(cfg["max_rejects"]),
        max_failures=int(cfg["max_failures"]),
    )
    return SearchOptions(**{**fields, **changes})


def _check_save_dir(options: SearchOptions, history: History) -> None:
    """A new search never appends to an old one's record: resume it or pick another save_dir."""
    if options.resume_dir or not options.is_server:
        return
    done = history.read()
    if done:
        raise ConfigError(
            f"save_dir {options.save_dir} already holds a search ({len(done)} candidates): "
            f"resume it with -r {options.save_dir}, or set another save_dir"
        )


def _write_meta(task: Task, options: SearchOptions, constraint: Constraint) -> None:
    module = importlib.import_module(type(task).__module__)
    meta: Dict[str, Any] = {
        "kind": options.kind,
        "space": options.space_name,
        "config": os.path.abspath(options.config_path),
        "ctype": constraint.ctype,
        "min_constraint": constraint.min_constraint,
        "max_constraint": constraint.max_constraint,
        "unit": constraint.window_text().split("]")[-1].strip(),
        "input_shape": list(task.input_shape),
        "fragment_writer": f"{module.__name__}:write_fragment",
        "full_train_hint": getattr(module, "FULL_TRAIN_HINT", "").replace("{config}", options.config_path),
        "options": asdict(options),
    }
    with open(os.path.join(options.save_dir, META_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)


def run_task(
    task: Task, options: SearchOptions, constraint: Constraint, controller: Optional[Controller] = None
) -> SearchResult:
    """Run (or resume, with options.resume_dir) one search of `task` and write its outputs.

    `controller` replaces the SANAS controller of `options` (the one-shot search's random and traverse modes)."""
    from ppnas.observers import make_observers
    from ppnas.report import write_report

    if options.resume_dir:
        if not os.path.isdir(options.resume_dir):
            raise ConfigError(f"resume directory not found: {options.resume_dir}")
        options.save_dir = options.resume_dir
    os.makedirs(options.save_dir, exist_ok=True)
    history = History.in_dir(options.save_dir)
    _check_save_dir(options, history)
    if options.resume_dir:
        done = steps_done(history.read(), options.client_name)
        print(f"resuming the search in {options.save_dir}: {done}/{options.search_steps} steps done")
    _write_meta(task, options, constraint)
    settings = SearchSettings(
        search_steps=options.search_steps,
        save_dir=options.save_dir,
        client=options.client_name,
        seed=options.seed,
        max_rejects=options.max_rejects,
        max_failures=options.max_failures,
    )
    observers = make_observers(
        options.quiet, options.use_vdl, options.vdl_log_dir, options.save_dir, run_name=options.client_name
    )
    init_tokens = options.init_tokens or task.space.init_tokens()
    if controller is not None:
        opened = nullcontext(controller)
    else:
        opened = open_controller(options, task.space.range_table(), init_tokens, history, task.decode)
    with opened as active:
        result = run_search(task, active, constraint, history, settings, observers)
    if result.best is None:
        print(f"no candidate was rewarded; see {history.path}")
        return result
    print(task.summary(result.best["tokens"]))
    print(f"best reward {result.best['reward']:.4f} with tokens {result.best['tokens']}")
    for path in result.exported:
        print(f"wrote {path}")
    try:
        write_report(options.save_dir)
    except PpnasError as err:
        _logger.warning("no report: %s", err)
    return result
