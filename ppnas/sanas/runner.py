"""Entry-point glue shared by both searches: options -> controller, history, observers -> run_search -> outputs."""

import hashlib
import importlib
import inspect
import json
import logging
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from paddleslim.nas.search_space.search_space_base import SearchSpaceBase

from ppnas import parallel
from ppnas.constraint import Constraint
from ppnas.distributed.connect import open_controller, search_observers, settle_client
from ppnas.errors import ConfigError, PpnasError
from ppnas.history import History, steps_done
from ppnas.sanas.controller import Controller
from ppnas.sanas.data_parallel import rank_views
from ppnas.sanas.search import SearchResult, SearchSettings, Task, run_search

_logger = logging.getLogger(__name__)

META_FILE = "search_meta.json"
MAY_CHANGE = (
    "search_steps and training settings (max_iters, datasets, readers, optimizer, learning rate, seed, "
    "max_rejects, max_failures, device)"
)


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
    if options.resume_dir:
        return
    done = history.read()
    if done:
        raise ConfigError(
            f"save_dir {options.save_dir} already holds a search ({len(done)} candidates): "
            f"resume it with -r {options.save_dir}, or set another save_dir"
        )


def search_definition(
    options: SearchOptions, constraint: Constraint, space: Any, input_shape: Sequence[int]
) -> Dict[str, Any]:
    """What makes a search this search: resuming it with any of these changed would mix two searches.

    `space` is the search space instance (the task's, or one a controller server builds); `input_shape` the
    image the constraint measures.
    """
    base = inspect.signature(SearchSpaceBase.__init__).parameters
    own = [name for name in inspect.signature(type(space).__init__).parameters if name not in base]
    table = None
    if constraint.table_file:
        with open(constraint.table_file, "rb") as f:
            table = "sha256 " + hashlib.sha256(f.read()).hexdigest()[:16]
    definition = {
        "kind": options.kind,
        "search_space": options.space_name,
        **{name: getattr(space, name) for name in own if hasattr(space, name)},  # kernel_choices, output_stride
        "range_table": space.range_table(),
        "init_tokens": options.init_tokens or space.init_tokens(),
        "init_temperature": options.init_temperature,
        "reduce_rate": options.reduce_rate,
        "Constraint.ctype": constraint.ctype,
        "Constraint.min_constraint": constraint.min_constraint,
        "Constraint.max_constraint": constraint.max_constraint,
        "Constraint.table_file (content)": table,
        "input_shape": list(input_shape),
    }
    return json.loads(json.dumps(definition, default=str))  # as search_meta.json gives it back


def _recorded_definition(meta: Dict[str, Any]) -> Dict[str, Any]:
    """The definition a save_dir recorded; from the fields of a search_meta.json written before there was one."""
    if "search" in meta:
        return meta["search"]
    options = meta.get("options", {})
    older = {
        "kind": meta.get("kind"),
        "search_space": meta.get("space"),
        "init_tokens": options.get("init_tokens"),  # None: the space's own, which that file does not say
        "init_temperature": options.get("init_temperature"),
        "reduce_rate": options.get("reduce_rate"),
        "Constraint.ctype": meta.get("ctype"),
        "Constraint.min_constraint": meta.get("min_constraint"),
        "Constraint.max_constraint": meta.get("max_constraint"),
        "input_shape": meta.get("input_shape"),
    }
    return {key: value for key, value in older.items() if value is not None}


def check_same_search(save_dir: str, definition: Dict[str, Any]) -> None:
    """-r continues the search recorded in save_dir, or stops with one line naming every difference."""
    path = os.path.join(save_dir, META_FILE)
    if not os.path.isfile(path):
        _logger.warning("%s has no %s: cannot check that the config defines the same search", save_dir, META_FILE)
        return
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    recorded = _recorded_definition(meta)
    keys = {**recorded, **definition} if "search" in meta else recorded  # an older file: what it recorded
    differences = [
        f"{key} is {json.dumps(definition.get(key))} in the config, {json.dumps(recorded.get(key))} in the search"
        for key in keys
        if recorded.get(key) != definition.get(key)
    ]
    if differences:
        raise ConfigError(
            f"-r {save_dir} holds another search (see {path}): {'; '.join(differences)}. Only {MAY_CHANGE} may "
            f"change on resume: set the keys above back, or start a new search with another save_dir"
        )


def write_meta(
    options: SearchOptions,
    constraint: Constraint,
    task_module: str,
    input_shape: Sequence[int],
    definition: Dict[str, Any],
    weights: bool = True,
) -> None:
    """`<save_dir>/search_meta.json`, what the report needs to know of the search (see ppnas/report.py).

    Written by the searching process, and by a controller server that trains nothing itself (it names the
    task's module, whose fragment writer and training hint the report uses, without building the task, and
    `weights` False: it saves no model, so the report gives no export command).
    """
    module = importlib.import_module(task_module)
    export_hint = getattr(module, "EXPORT_HINT", "") if weights else ""
    meta: Dict[str, Any] = {
        "kind": options.kind,
        "space": options.space_name,
        "config": os.path.abspath(options.config_path),
        "ctype": constraint.ctype,
        "min_constraint": constraint.min_constraint,
        "max_constraint": constraint.max_constraint,
        "unit": constraint.window_text().split("]")[-1].strip(),
        "input_shape": list(input_shape),
        "fragment_writer": f"{module.__name__}:write_fragment",
        "full_train_hint": getattr(module, "FULL_TRAIN_HINT", "").replace("{config}", options.config_path),
        "export_hint": export_hint.replace("{config}", options.config_path).replace("{save_dir}", options.save_dir),
        "options": asdict(options),
        "search": definition,
    }
    with open(os.path.join(options.save_dir, META_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)


def _open_history(task: Task, options: SearchOptions, constraint: Constraint) -> History:
    """The save_dir checked and prepared (rank 0 only): its history, and the search's meta file."""
    if options.resume_dir and not os.path.isdir(options.resume_dir):
        raise ConfigError(f"resume directory not found: {options.resume_dir}")
    os.makedirs(options.save_dir, exist_ok=True)
    history = History.in_dir(options.save_dir)
    _check_save_dir(options, history)
    definition = search_definition(options, constraint, task.space, task.input_shape)
    if options.resume_dir:
        check_same_search(options.save_dir, definition)
        done = steps_done(history.read(), options.client_name)
        print(f"resuming the search in {options.save_dir}: {done}/{options.search_steps} steps done")
    write_meta(options, constraint, type(task).__module__, task.input_shape, definition)
    return history


def run_task(
    task: Task, options: SearchOptions, constraint: Constraint, controller: Optional[Controller] = None
) -> SearchResult:
    """Run (or resume, with options.resume_dir) one search of `task` and write its outputs.

    `controller` replaces the SANAS controller of `options` (the one-shot search's random and traverse modes).
    Under paddle.distributed.launch every rank calls this; rank 0 alone opens the controller and writes
    files, the other ranks train what it draws (ppnas/sanas/data_parallel.py).
    """
    from ppnas.observers import make_observers
    from ppnas.report import write_report

    if options.resume_dir:
        options.save_dir = options.resume_dir
    parallel.on_main(lambda: settle_client(options), "choosing the client's folder")
    # the folder and name rank 0 records and counts under
    options.save_dir, options.client_name = parallel.broadcast((options.save_dir, options.client_name))
    history = parallel.on_main(lambda: _open_history(task, options, constraint), "preparing the save_dir")
    settings = SearchSettings(
        search_steps=options.search_steps,
        save_dir=options.save_dir,
        client=options.client_name,
        seed=options.seed,
        max_rejects=options.max_rejects,
        max_failures=options.max_failures,
    )
    if not parallel.is_main():
        return run_search(*rank_views(task, None, constraint, None), settings, observers=())
    observers = make_observers(
        options.quiet, options.use_vdl, options.vdl_log_dir, options.save_dir, run_name=options.client_name
    )
    init_tokens = options.init_tokens or task.space.init_tokens()
    if controller is not None:
        opened = nullcontext(controller)
    else:
        opened = open_controller(options, task.space.range_table(), init_tokens, history, task.decode)
    try:
        with opened as active:
            watched = observers + search_observers(active)
            result = run_search(*rank_views(task, active, constraint, history), settings, watched)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM (ppnas.interrupts): every finished candidate is saved
        raise type(stop)(f"resume with -r {options.save_dir}") from None
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
