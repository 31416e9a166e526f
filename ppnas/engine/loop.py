"""THE candidate loop, shared by every strategy that draws token lists (SANAS, the one-shot search).

The whole path of one candidate, in `_evaluate_candidate` and `run_search` below:
  tokens = controller.next_tokens()              sampler (ppnas/samplers/: annealing, random, traverse, remote)
  structure = task.decode(tokens)                the space's decoding rule
  model = task.build(tokens)                     a real PaddleDetection / PaddleSeg model
  measurement = constraint.measure(...)          FLOPs, params, table latency at its input size: BEFORE training
                                                 (a task with `price(constraint, tokens)` prices first, builds
                                                 only admitted candidates: the one-shot search's cached parts)
  outside the window -> record "rejected", draw again (does not use up a search step)
  reward = task.train_and_evaluate(model, ...)   SANAS: trained from scratch; one-shot: inherited weights
  history.append(record)                         storage
  controller.recorded(record)                    annealing update, then checkpoint (resume replays the gap)

A candidate whose training raises is recorded as "failed" with the reason; the controller gets no
reward for it (a made-up reward would mislead the annealing) and the search goes on.
"""

import logging
import math
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import paddle

from ppnas.constraint import Constraint, Measurement
from ppnas.engine.protocols import Controller, SearchObserver, SearchResult, Task, measure_shape
from ppnas.engine.seeding import seed_everything
from ppnas.errors import ConstraintError, ControllerError, ParallelError, SearchFinished
from ppnas.history import CandidateRecord, History, best_record, steps_done
from ppnas.interrupts import held_back

_logger = logging.getLogger(__name__)


@dataclass
class SearchSettings:
    search_steps: int
    save_dir: str
    client: str = "local"
    seed: Optional[int] = None
    max_rejects: int = 500  # rejected draws in a row (across resumes) before the window is declared impossible
    max_failures: int = 5  # consecutive failed candidates before the search stops


class Notifier:
    """Fan an event out to every observer."""

    def __init__(self, observers: Sequence[SearchObserver]) -> None:
        self.observers = list(observers)

    def __getattr__(self, name: str) -> Callable[..., None]:
        def call(*args: Any) -> None:
            for observer in self.observers:
                getattr(observer, name)(*args)

        return call


def _range_text(values: List[float]) -> str:
    return f"[{min(values):g}, {max(values):g}]" if values else "none"


def _rejected_in_a_row(records: List[Dict[str, Any]], client: str, constraint: Constraint) -> List[float]:
    """The constrained values of `client`'s last records, as far back as they are all rejections."""
    values: List[float] = []
    for record in reversed(records):
        if record.get("client") != client:
            continue
        if record.get("status") != "rejected":
            break
        if constraint.ctype == "latency":  # records keep milliseconds, the window is in the table's unit
            values.append(record["latency_ms"] / constraint.table.ms_per_unit)
        else:
            values.append(float(record[constraint.ctype]))
    return values[::-1]


def run_search(
    task: Task,
    controller: Controller,
    constraint: Constraint,
    history: History,
    settings: SearchSettings,
    observers: Sequence[SearchObserver] = (),
) -> SearchResult:
    """Run (or resume) a search until `settings.search_steps` candidates have been rewarded."""
    notify = Notifier(observers)
    records = history.read()
    done = steps_done(records, settings.client)
    best = best_record(records)
    exported: List[str] = []
    notify.on_start(settings.search_steps, done)
    rejected_values = _rejected_in_a_row(records, settings.client, constraint)
    failures = 0
    while done < settings.search_steps:
        if len(rejected_values) >= settings.max_rejects:
            raise ConstraintError(
                f"no candidate met the constraint {constraint.window_text()} in {len(rejected_values)} draws "
                f"in a row; the values seen were in {_range_text(rejected_values)}: widen the window"
            )
        try:
            tokens = controller.next_tokens()
        except SearchFinished:
            _logger.info("the server says the search is finished")
            break
        if settings.seed is not None:
            seed_everything(settings.seed + len(records))
        record, model, measured = _evaluate_candidate(task, constraint, tokens, done + 1, settings, notify)
        if record.status == "trained":
            done += 1
            rejected_values, failures = [], 0
        elif record.status == "rejected":
            rejected_values.append(measured)
        else:
            failures += 1
            rejected_values = []
        with held_back():  # a Ctrl-C or SIGTERM waits until the line and its checkpoint are both written
            history.append(record)
            records.append(asdict(record))
            controller.recorded(record)  # after the line: a kill between the two is replayed on resume
        if record.status == "trained" and (best is None or record.reward > best["reward"]):
            best = asdict(record)
            exported = task.export(tokens, model, settings.save_dir)
        notify.on_candidate(record, controller.info())
        if failures >= settings.max_failures:
            raise ControllerError(f"{failures} candidates in a row failed to train; the last reason: {record.reason}")
    result = SearchResult(steps_done=done, best=best, exported=exported)
    notify.on_end(result)
    return result


def _evaluate_candidate(
    task: Task,
    constraint: Constraint,
    tokens: List[int],
    step: int,
    settings: SearchSettings,
    notify: Notifier,
) -> Tuple[CandidateRecord, Optional[paddle.nn.Layer], float]:
    """Tokens -> structure -> model -> constraint -> train -> reward; also the model (None when rejected before
    it was built) and constrained value."""
    start = time.time()
    structure = task.decode(tokens)
    price = getattr(task, "price", None)
    model: Optional[paddle.nn.Layer] = None
    if price is None:
        model = task.build(tokens)
        measurement: Measurement = constraint.measure(task.measurable(model), measure_shape(task, tokens))
    else:  # the task prices a candidate without its model (one-shot: cached parts): only admitted ones are built
        measurement = constraint.measure_by(lambda own: price(own, tokens))
    common = dict(
        tokens=tokens,
        structure=structure,
        flops=measurement.flops,
        params=measurement.params,
        latency_ms=measurement.latency_ms,
        client=settings.client,
    )
    measured = measurement.value(constraint.ctype)
    if not constraint.admits(measurement):
        reason = f"{constraint.ctype} {measured:g} outside {constraint.window_text()}"
        return CandidateRecord(status="rejected", reason=reason, seconds=time.time() - start, **common), model, measured
    if model is None:
        model = task.build(tokens)
    train_start = time.time()
    try:
        reward = float(task.train_and_evaluate(model, notify.on_iter))
        if not math.isfinite(reward):
            raise FloatingPointError(f"reward is {reward}")
    except ParallelError:
        raise  # a lost rank ends the run, not the candidate: -r trains it again
    except Exception as err:  # a broken candidate must not end the search
        _logger.warning("candidate %s failed: %s\n%s", tokens, err, traceback.format_exc(limit=3))
        reason = f"{type(err).__name__}: {err}"
        timing = dict(seconds=time.time() - start, train_seconds=time.time() - train_start)
        return CandidateRecord(status="failed", reason=reason, **timing, **common), model, measured
    timing = dict(seconds=time.time() - start, train_seconds=time.time() - train_start)
    return CandidateRecord(status="trained", step=step, reward=reward, **timing, **common), model, measured
