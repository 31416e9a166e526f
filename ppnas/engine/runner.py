"""Entry-point glue shared by every token search: options -> save_dir, controller, history, observers ->
run_search -> summary, exports and report.

Under paddle.distributed.launch every rank calls `run_task`; rank 0 alone opens the controller and writes
files, the other ranks train what it draws (ppnas/parallel/ranks.py).
"""

import logging
import os
from typing import Any, Dict, Optional, Sequence

from ppnas import parallel
from ppnas.constraint import Constraint
from ppnas.engine.loop import SearchSettings, run_search
from ppnas.engine.meta import check_same_search, search_definition, write_meta
from ppnas.engine.options import SearchOptions
from ppnas.engine.protocols import SearchResult, Task
from ppnas.errors import ConfigError, PpnasError
from ppnas.history import History, steps_done
from ppnas.interrupts import resume_hint
from ppnas.parallel.ranks import rank_views
from ppnas.samplers.connect import open_controller, search_observers, settle_client
from ppnas.storage import refuse_existing

_logger = logging.getLogger(__name__)


def open_history(
    options: SearchOptions,
    constraint: Constraint,
    space: Any,
    task_module: str,
    input_shape: Sequence[int],
    weights: bool = True,
    extra_definition: Optional[Dict[str, Any]] = None,
) -> History:
    """The save_dir checked and prepared, for every searching process and the controller server: a new search
    refuses a folder that holds one, `-r` must continue the same search (search_meta.json's `search` block, with
    `extra_definition`: what else defines it, e.g. a front search's tables), and search_meta.json is (re)written.
    `weights` False: the process saves no model (a controller server)."""
    if options.resume_dir and not os.path.isdir(options.resume_dir):
        raise ConfigError(f"resume directory not found: {options.resume_dir}")
    os.makedirs(options.save_dir, exist_ok=True)
    history = History.in_dir(options.save_dir)
    done = history.read()
    definition = {**search_definition(options, constraint, space, input_shape), **(extra_definition or {})}
    if options.resume_dir:
        check_same_search(options.save_dir, definition)
    else:
        refuse_existing(options.save_dir, f"a search ({len(done)} candidates)", bool(done))
    write_meta(options, constraint, task_module, input_shape, definition, weights)
    return history


def report_module(task: Task) -> str:
    """The module whose write_fragment and hints the report uses: the task's own, or the one it names (a one-shot
    task names its supernet's: the detection or segmentation task's, or the generic subnet file)."""
    return getattr(task, "report_module", None) or type(task).__module__


def run_task(task: Task, options: SearchOptions, constraint: Constraint) -> SearchResult:
    """Run (or resume, with options.resume_dir) one search of `task` with the sampler `options.sampler`, and
    write its outputs: the best candidate's exports, the summary on stdout and the report."""
    from ppnas.observers import make_observers
    from ppnas.report.build import write_report

    if options.resume_dir:
        options.save_dir = options.resume_dir
    parallel.on_main(lambda: settle_client(options), "choosing the client's folder")
    # the folder and name rank 0 records and counts under
    options.save_dir, options.client_name = parallel.broadcast((options.save_dir, options.client_name))
    history = parallel.on_main(
        lambda: open_history(options, constraint, task.space, report_module(task), task.input_shape),
        "preparing the save_dir",
    )
    if options.resume_dir and parallel.is_main():
        steps = steps_done(history.read(), options.client_name)
        print(f"resuming the search in {options.save_dir}: {steps}/{options.search_steps} steps done")
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
    with resume_hint(options.save_dir):
        with open_controller(options, task.space, history, task.decode) as controller:
            watched = observers + search_observers(controller)
            result = run_search(*rank_views(task, controller, constraint, history), settings, watched)
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
