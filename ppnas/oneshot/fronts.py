"""THE device-front search over a trained supernet (`--phase search` with `search_mode: nsga2 | tpe`, or with
`tables`): train once, then one Pareto front per device table and the subnet to ship at each latency budget.

One candidate, from tokens to reward (`FrontObjective.__call__`):
  tokens = suggest_tokens(trial, range_table)      Optuna's sampler on the shared study (ppnas/samplers/optuna_study.py)
  known already?                                   a line of this save_dir's history, or another worker's trial:
                                                   its values again, nothing is evaluated twice
  latencies = task.price(device.constraint, ...)   every table's latency from cached parts (pricing.py), and the
  measured = task.price(constraint, ...)           config's Constraint: outside its window, or over the largest
                                                   budget of every table -> a "rejected" line, the trial pruned
  reward = task.train_and_evaluate(build(tokens))  inherited AP / mIoU after BN calibration
  history.append(record)                           one line with every table's latency (`latencies_ms`)
  return (reward, latency on table 1, ...)         Optuna records the objectives: reward up, each latency down
After `subnet_count` distinct subnets are evaluated (over all workers of the study): per table its front (reward
against that table's latency), per budget the best subnet within it, exported to fronts/<table>/<budget>ms/ with
its export command; fronts.json, fronts.png and the usual report.

Workers: every process running the same command on the same save_dir (or the same `storage` URL and save_dir name
on other machines) joins one Optuna study; a trial left RUNNING by a killed worker is failed by the heartbeat and
retried once, and its tokens are found in the history when the kill came after their line was written.
"""

import contextlib
import fcntl
import importlib
import itertools
import math
import os
import socket
import time
from dataclasses import asdict
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import optuna

from ppnas.constraint import Constraint
from ppnas.engine.loop import Notifier
from ppnas.engine.meta import META_FILE
from ppnas.engine.protocols import SearchResult
from ppnas.engine.runner import open_history, report_module
from ppnas.errors import ConstraintError, ControllerError, ParallelError
from ppnas.history import CandidateRecord, History, steps_done
from ppnas.interrupts import held_back, resume_hint
from ppnas.oneshot.devices import DeviceTable, check_devices, device_tables, tables_definition
from ppnas.oneshot.evaluate import SupernetTask
from ppnas.oneshot.predictor import AccuracyPredictor
from ppnas.oneshot.search import subnet_search_options, supernet_task
from ppnas.report.selection import pareto_front
from ppnas.samplers.optuna_study import open_storage, open_study, optuna_sampler, suggest_tokens, tokens_of
from ppnas.storage import atomic_write_json

FRONT_MODES = ("nsga2", "tpe")  # search_mode values that always run the front search (random does with `tables`)
FRONTS_DIR = "fronts"
FRONTS_JSON = "fronts.json"
FRONTS_PNG = "fronts.png"
STORAGE_FILE = "optuna.db"
WORKERS_DIR = "workers"
SCREENED = "screened by the accuracy predictor"  # a rejected record's reason when the predictor skipped it
SCREEN_LIMIT = 50  # skips in a row after which the next subnet is evaluated whatever its prediction


def is_front_search(cfg: Mapping[str, Any]) -> bool:
    return cfg["search_mode"] in FRONT_MODES or cfg["tables"] not in (None, "", [])


def default_storage(save_dir: str) -> str:
    """An SQLite file in save_dir: no server, shared by the worker processes of one machine."""
    return f"sqlite:///{os.path.abspath(os.path.join(save_dir, STORAGE_FILE))}"


@contextlib.contextmanager
def claimed_worker(save_dir: str) -> Iterator[int]:
    """The lowest free worker number of this save_dir (a file created exclusively), released at the end: it seeds
    the worker's sampler, so two workers draw differently and a resumed lone worker draws as it did."""
    folder = os.path.join(save_dir, WORKERS_DIR)
    os.makedirs(folder, exist_ok=True)
    for index in itertools.count():
        path = os.path.join(folder, str(index))
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        os.close(fd)
        break
    try:
        yield index
    finally:
        os.remove(path)


def _distinct_trials(study: optuna.Study) -> Dict[Tuple[int, ...], optuna.trial.FrozenTrial]:
    """The study's evaluated subnets: its complete trials, first of each token list."""
    out: Dict[Tuple[int, ...], optuna.trial.FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        out.setdefault(tuple(tokens_of(trial.params)), trial)
    return out


class FrontObjective:
    """Optuna's objective: one subnet priced on every table and, when admitted, evaluated once."""

    def __init__(
        self,
        task: SupernetTask,
        constraint: Constraint,
        devices: Sequence[DeviceTable],
        history: History,
        client: str,
        settings: Mapping[str, Any],
        notify: Any,
    ) -> None:
        self.task = task
        self.constraint = constraint
        self.devices = list(devices)
        self.history = history
        self.client = client
        self.max_rejects = int(settings["max_rejects"])
        self.max_failures = int(settings["max_failures"])
        self.notify = notify
        self.rejected = 0
        self.failures = 0
        self.trained = steps_done(history.read(), client)
        self.predictor_after = int(settings["predictor_after"])
        self.predictor = AccuracyPredictor(task.space.range_table()) if self.predictor_after else None
        self.screened_in_a_row = 0
        self.fitted_on = 0  # how many evaluated subnets the predictor was last fitted on

    def __call__(self, trial: optuna.Trial) -> Tuple[float, ...]:
        tokens = suggest_tokens(trial, self.task.space.range_table())
        known = self._known(trial.study, tokens)
        if known is not None:
            trial.set_user_attr("repeat", True)
            if known.get("status") != "trained":
                raise optuna.TrialPruned(known.get("reason"))
            return self._values(known)
        record = self._evaluate(tokens, trial.study)
        with held_back():  # a Ctrl-C waits for the line; Optuna's record of the trial follows it
            self.history.append(record)
        self.notify.on_candidate(record, {})
        if record.status == "rejected" and record.reason.startswith(SCREENED):
            self.screened_in_a_row += 1
            raise optuna.TrialPruned(record.reason)
        self.screened_in_a_row = 0
        if record.status == "rejected":
            self.rejected += 1
            if self.rejected >= self.max_rejects:
                raise ConstraintError(
                    f"no subnet met the constraint {self.constraint.window_text()} and a budget in {self.rejected} "
                    "draws in a row: widen the window or raise budgets_ms"
                )
            raise optuna.TrialPruned(record.reason)
        if record.status == "failed":
            self.failures += 1
            if self.failures >= self.max_failures:
                raise ControllerError(f"{self.failures} subnets in a row failed; the last reason: {record.reason}")
            raise optuna.TrialPruned(record.reason)
        self.rejected = self.failures = 0
        trial.set_user_attr("flops", record.flops)
        trial.set_user_attr("params", record.params)
        return self._values(asdict(record))

    def _known(self, study: optuna.Study, tokens: List[int]) -> Optional[Dict[str, Any]]:
        """This subnet's record in the history (also one written just before a kill), else another worker's."""
        mine = [r for r in self.history.read() if r.get("tokens") == tokens and "status" in r]
        if mine:
            return mine[-1]
        trial = _distinct_trials(study).get(tuple(tokens))
        if trial is None:
            return None
        names = [d.name for d in self.devices]
        return {"status": "trained", "reward": trial.values[0], "latencies_ms": dict(zip(names, trial.values[1:]))}

    def _values(self, record: Mapping[str, Any]) -> Tuple[float, ...]:
        return (float(record["reward"]), *(float(record["latencies_ms"][d.name]) for d in self.devices))

    def _over_every_budget(self, latencies: Mapping[str, float]) -> bool:
        budgeted = [d for d in self.devices if d.budgets_ms]
        return bool(budgeted) and all(latencies[d.name] > d.budgets_ms[-1] for d in budgeted)

    def _screened(self, tokens: List[int], latencies: Mapping[str, float], study: optuna.Study) -> Optional[str]:
        """Why the predictor skips this subnet: an evaluated subnet beats its predicted metric at no more latency, on
        every table. None: evaluate it (also while too few are evaluated, and after SCREEN_LIMIT skips in a row)."""
        evaluated = _distinct_trials(study)
        if self.predictor is None or len(evaluated) < self.predictor_after or self.screened_in_a_row >= SCREEN_LIMIT:
            return None
        if len(evaluated) != self.fitted_on:  # refit only when more subnets are evaluated, not on every draw
            self.predictor.fit([list(t) for t in evaluated], [trial.values[0] for trial in evaluated.values()])
            self.fitted_on = len(evaluated)
        predicted = self.predictor.predict(tokens)
        values = [trial.values for trial in evaluated.values()]
        for index, device in enumerate(self.devices, start=1):
            if not any(v[0] >= predicted and v[index] <= latencies[device.name] for v in values):
                return None
        return f"{SCREENED}: predicted metric {predicted:.4f} is beaten at no more latency on every table"

    def _evaluate(self, tokens: List[int], study: optuna.Study) -> CandidateRecord:
        start = time.time()
        latencies = {d.name: float(self.task.price(d.constraint, tokens).latency_ms) for d in self.devices}
        measured = self.task.price(self.constraint, tokens)
        common = dict(
            tokens=tokens,
            structure=self.task.decode(tokens),
            flops=measured.flops,
            params=measured.params,
            latency_ms=measured.latency_ms,
            latencies_ms=latencies,
            client=self.client,
        )
        reason = None
        if not self.constraint.admits(measured):
            value = measured.value(self.constraint.ctype)
            reason = f"{self.constraint.ctype} {value:g} outside {self.constraint.window_text()}"
        elif self._over_every_budget(latencies):
            reason = "over the largest budget on every table: " + ", ".join(
                f"{k} {v:.3f} ms" for k, v in latencies.items()
            )
        if reason is None:
            reason = self._screened(tokens, latencies, study)
        if reason is not None:
            return CandidateRecord(status="rejected", reason=reason, seconds=time.time() - start, **common)
        model = self.task.build(tokens)
        train_start = time.time()
        try:
            reward = float(self.task.train_and_evaluate(model))
            if not math.isfinite(reward):
                raise FloatingPointError(f"reward is {reward}")
        except ParallelError:
            raise
        except Exception as err:  # a broken subnet must not end the search
            timing = dict(seconds=time.time() - start, train_seconds=time.time() - train_start)
            return CandidateRecord(status="failed", reason=f"{type(err).__name__}: {err}", **timing, **common)
        self.trained += 1
        timing = dict(seconds=time.time() - start, train_seconds=time.time() - train_start)
        return CandidateRecord(status="trained", step=self.trained, reward=reward, **timing, **common)


def _stop_at(count: int) -> Any:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(_distinct_trials(study)) >= count:
            study.stop()

    return callback


def evaluated_rows(study: optuna.Study, devices: Sequence[DeviceTable]) -> List[Dict[str, Any]]:
    """Every distinct evaluated subnet of the study (all workers): tokens, reward, each table's latency."""
    rows = []
    for tokens, trial in _distinct_trials(study).items():
        rows.append(
            {
                "tokens": list(tokens),
                "reward": trial.values[0],
                "latencies_ms": {d.name: v for d, v in zip(devices, trial.values[1:])},
                "flops": trial.user_attrs.get("flops"),
                "params": trial.user_attrs.get("params"),
                "trial": trial.number,
            }
        )
    return rows


def table_front(rows: Sequence[Mapping[str, Any]], device: DeviceTable) -> List[Dict[str, Any]]:
    """The rows no other beats on reward (higher) and this table's latency (lower), fastest first."""
    on_table = [
        {**row, "status": "trained", "latency_ms": row["latencies_ms"][device.name], "time": row["trial"]}
        for row in rows
    ]
    return [
        {k: r[k] for k in ("tokens", "reward", "latency_ms", "flops", "params")}
        for r in pareto_front(on_table, "latency_ms")
    ]


def budget_choice(front: Sequence[Mapping[str, Any]], budget: float) -> Optional[Dict[str, Any]]:
    """The best subnet of the front within `budget` ms (the front is fastest first, rewards rising)."""
    within = [row for row in front if row["latency_ms"] <= budget]
    return dict(within[-1]) if within else None


class _Exporter:
    """Budget winners exported with inherited, calibrated weights (one calibration per subnet)."""

    def __init__(self, task: SupernetTask, config_path: str) -> None:
        self.task = task
        self.hint = getattr(importlib.import_module(report_module(task)), "EXPORT_HINT", "")
        self.config_path = config_path
        self.models: Dict[Tuple[int, ...], Any] = {}

    def export(self, tokens: Sequence[int], folder: str) -> Dict[str, Any]:
        key = tuple(tokens)
        if key not in self.models:
            self.models[key] = self.task.evaluator.inherit(self.task.build(tokens), self.task.space.decode(tokens))
        os.makedirs(folder, exist_ok=True)
        files = self.task.export(list(tokens), self.models[key], folder)
        command = self.hint.replace("{config}", self.config_path).replace("{save_dir}", folder)
        return {"folder": folder, "files": files, "export_command": command or None}


def _predictor_summary(
    rows: Sequence[Mapping[str, Any]], task: SupernetTask, after: int, save_dir: str
) -> Optional[Dict[str, Any]]:
    """The predictor's held-out Kendall tau on the evaluated subnets, and how many draws it skipped here."""
    if not after:
        return None
    predictor = AccuracyPredictor(task.space.range_table())
    held_out = predictor.held_out_tau([r["tokens"] for r in rows], [r["reward"] for r in rows])
    records = History.in_dir(save_dir).read()
    screened = sum(1 for r in records if str(r.get("reason") or "").startswith(SCREENED))
    return {"after": after, "screened": screened, "held_out": held_out}


def write_fronts(
    save_dir: str,
    study: optuna.Study,
    devices: Sequence[DeviceTable],
    task: SupernetTask,
    config_path: str,
    predictor_after: int = 0,
) -> Dict[str, Any]:
    """fronts.json (per table: front, budget winners and their exports), the exports and fronts.png."""
    from ppnas.report.figures.fronts import fronts_figure
    from ppnas.report.figures.style import REWARD_NAMES, save_figure

    rows = evaluated_rows(study, devices)
    exporter = _Exporter(task, config_path)
    tables: Dict[str, Any] = {}
    for device in devices:
        front = table_front(rows, device)
        budgets = []
        for budget in device.budgets_ms:
            chosen = budget_choice(front, budget)
            entry: Dict[str, Any] = {"budget_ms": budget, "subnet": chosen}
            if chosen is None:
                fastest = min(rows, key=lambda r: r["latencies_ms"][device.name])
                entry["fastest_found"] = {
                    "tokens": fastest["tokens"],
                    "latency_ms": fastest["latencies_ms"][device.name],
                }
            else:
                folder = os.path.join(save_dir, FRONTS_DIR, device.name, f"{budget:g}ms")
                entry["export"] = exporter.export(chosen["tokens"], folder)
            budgets.append(entry)
        tables[device.name] = {"table_file": device.path, "front": front, "budgets": budgets}
    label = REWARD_NAMES.get(task.kind, task.adapter.metric)
    summary = {
        "predictor": _predictor_summary(rows, task, predictor_after, save_dir),
        "evaluated": len(rows),
        "metric": label,
        "tables": tables,
        "figure": os.path.join(save_dir, FRONTS_PNG),
    }
    save_figure(fronts_figure(rows, devices, tables, label), summary["figure"])
    atomic_write_json(os.path.join(save_dir, FRONTS_JSON), summary)
    return summary


@contextlib.contextmanager
def _locked(save_dir: str) -> Iterator[None]:
    """One worker of this save_dir at a time in the body (creating the storage; writing the exports and fronts.json)."""
    with open(os.path.join(save_dir, ".fronts.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_front_search(
    cfg: Mapping[str, Any], constraint: Constraint, config_path: str, args: Any, resume_dir: Optional[str] = None
) -> Dict[str, Any]:
    """Search (or join, or resume) the study until `subnet_count` distinct subnets are evaluated; then the fronts."""
    from ppnas.observers import make_observers
    from ppnas.report.build import write_report

    task = supernet_task(cfg, "search")
    devices = device_tables(cfg, constraint)
    space = task.space
    check_devices(devices, lambda d, t: task.price(d.constraint, t).latency_ms, space.min_tokens(), space.max_tokens())
    save_dir = resume_dir or cfg["save_dir"]
    joins = resume_dir or os.path.isfile(os.path.join(save_dir, META_FILE))  # a worker joins the search there
    mode = str(cfg["search_mode"])
    options = subnet_search_options(task, cfg, config_path, args, mode, save_dir, save_dir if joins else None)
    extra = {"tables": tables_definition(devices), "storage": cfg["storage"]}
    history = open_history(options, constraint, space, report_module(task), task.input_shape, extra_definition=extra)
    directions = ["maximize"] + ["minimize"] * len(devices)
    count = int(cfg["subnet_count"])
    with claimed_worker(save_dir) as worker:
        sampler = optuna_sampler(mode, int(cfg["seed"]) + worker, int(cfg["population_size"]))
        with _locked(save_dir):  # workers starting together would both create the storage's tables
            storage = open_storage(cfg["storage"] or default_storage(save_dir))
            study = open_study(storage, os.path.basename(os.path.abspath(save_dir)), sampler, directions)
        observers = make_observers(
            options.quiet, options.use_vdl, options.vdl_log_dir, save_dir, run_name=f"worker{worker}"
        )
        notify = Notifier(observers)
        objective = FrontObjective(task, constraint, devices, history, f"worker{worker}", cfg, notify)
        done = len(_distinct_trials(study))
        notify.on_start(count, min(done, count))
        with resume_hint(save_dir):
            if done < count:
                study.optimize(objective, callbacks=[_stop_at(count)], gc_after_trial=False)
        notify.on_end(SearchResult(steps_done=len(_distinct_trials(study)), best=None, exported=[]))
        with _locked(save_dir):
            summary = write_fronts(save_dir, study, devices, task, config_path, int(cfg["predictor_after"]))
    write_report(save_dir)
    _print_summary(summary)
    return summary


def _print_summary(summary: Mapping[str, Any]) -> None:
    print(f"{summary['evaluated']} subnets evaluated; fronts in {summary['figure']}")
    for name, table in summary["tables"].items():
        print(f"{name}: front of {len(table['front'])} subnets")
        for entry in table["budgets"]:
            if entry["subnet"] is None:
                fastest = entry["fastest_found"]
                print(
                    f"  budget {entry['budget_ms']:g} ms: no evaluated subnet meets it (the fastest found: "
                    f"{fastest['latency_ms']:.3f} ms, tokens {fastest['tokens']})"
                )
                continue
            subnet = entry["subnet"]
            print(
                f"  budget {entry['budget_ms']:g} ms: {subnet['latency_ms']:.3f} ms, {summary['metric']} "
                f"{subnet['reward']:.4f}, tokens {subnet['tokens']} -> {entry['export']['folder']}"
            )
            if entry["export"]["export_command"]:
                print(f"    {entry['export']['export_command']}")
