"""Does the search beat the hand-made network? Issue 16 §3 on the demo detection task (hard set).

One latency table (configs/latency_855.txt, Snapdragon 855, shapes of a 640 px input) and one window: latency
<= the 855 latency of the reference, the structure the original example starts from (init tokens
[2, 1, 3, 8, 2, 1, 2, 1, 1], kernel token at 3x3: HAND_MADE_TOKENS). Three strategies with the same CPU budget:

  sanas    the engine's annealing from the reference tokens, each candidate trained PROXY.max_iters
  random   the engine's random sampler, same budget and training
  oneshot  supernet (ppnas.oneshot.train) + search (inherited AP, random mode) + finetune of the winner

Then each strategy's best structure, the reference and the published BlazeFace-NAS / NAS_V2 are trained from
scratch with `scratch_reference.scratch_ap` at RETRAIN for SEEDS, timed end to end here (Paddle Inference, 1
thread, 640 px) and priced on the 855 table.

Candidates train at 160 px; the table has the shapes of 640 px. Every conv's feature map at 160 px is the 640 px
one divided by 4 (strides of 2 from an even side), so the 855 table with H and W of every key divided by 4
(`table_at`) prices a 160 px model exactly as the original prices it at 640: one constraint serves both the
trained-candidate search and the one-shot search (which measures a subnet at its own resolution). `prepare`
checks the two prices agree for the reference, NAS_V2 and random subnets.

    python bench/search_quality.py prepare            # data set, the derived table, the checks
    OMP_NUM_THREADS=1 nohup python bench/search_quality.py worker 0 > w0.log 2>&1 &   # sanas, oneshot, retrains
    OMP_NUM_THREADS=1 nohup python bench/search_quality.py worker 1 > w1.log 2>&1 &   # random, retrains
    python bench/search_quality.py report             # bench/results/search_quality.json + .png

Everything resumes: a search continues its history (its CPU ledger keeps what was spent up to the last
candidate), the supernet its checkpoint, the retrains their cache (bench/results/search_quality.jsonl).
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import json
import os
import pathlib
import random
import statistics
import sys
import time
import zlib
from types import SimpleNamespace
from typing import Any, Dict, List, Mapping, Optional, Sequence

import paddle
from common import RESULTS, machine, save_result
from matplotlib.figure import Figure
from scratch_reference import (
    HAND_MADE_TOKENS,
    NAS_V2,
    ROOT,
    DemoData,
    Schedule,
    cache_key,
    decode,
    measure,
    read_cache,
    scratch_ap,
    task_config,
    task_for,
)

from latency.builder import measure_models_us
from latency.engine import EngineSettings, export_model
from ppnas.cli import run_main
from ppnas.config import merge
from ppnas.constraint import Constraint
from ppnas.device import select_device
from ppnas.engine.options import search_options
from ppnas.engine.runner import run_task
from ppnas.history import History, best_record
from ppnas.oneshot.search import run_supernet_search
from ppnas.oneshot.settings import load_oneshot_config, oneshot_constraint
from ppnas.oneshot.subnet import evaluate_subnet
from ppnas.oneshot.train import train_supernet
from ppnas.report.figures.style import FIGURE_INCHES, save_figure
from ppnas.storage import atomic_write_json
from ppnas.tasks.detection import BlazeFaceTask

TABLE = ROOT / "configs" / "latency_855.txt"
TABLE_SIDE = 640  # the input side the 855 table's keys were written for
WORK = ROOT / "output" / "search_quality"
CACHE = RESULTS / "search_quality.jsonl"
BIGNAS_DEMO = ROOT / "configs" / "demo" / "blazeface_bignas_demo.yml"

DATA = DemoData(train=1000, val=200, max_faces=8, hard=True)  # the default set saturates at AP@0.5 ~1.0
PROXY = Schedule(max_iters=150, input_size=160)  # a search candidate's training
RETRAIN = Schedule(max_iters=400, input_size=160)  # the final from-scratch comparison (AP still rising there)
SEEDS = (0, 1, 2)
BUDGET_CPU_S = 660.0  # each strategy's process CPU seconds (sanas and random stop at it, oneshot is sized to it)
SEARCH_SEED = 0
ONESHOT = {  # sized so that supernet + search + finetune take about BUDGET_CPU_S (~1 s a sandwich iteration)
    "max_iters": 350,
    "sandwich_sampling": "window",
    "subnet_count": 30,
    "search_mode": "random",
    "calib_batches": 4,
    "finetune_iters": PROXY.max_iters,
}
STRATEGIES = ("sanas", "random", "oneshot")
NAS = {  # PaddleDetection model zoo, BlazeFace-NAS (configs/face_detection/blazeface_nas.yml, 3x3 only)
    "blaze_filters": [[12, 12], [12, 12, 2], [12, 12]],
    "double_blaze_filters": [[12, 16, 24, 2], [24, 12, 24], [24, 16, 72, 2], [72, 12, 72]],
    "use_5x5kernel": False,
}


class BudgetSpent(Exception):
    """The strategy's CPU budget is used up: the search stops before its next candidate."""


class Ledger:
    """Process CPU seconds a strategy has used, kept in a file so that a resumed search counts what the killed
    run spent (up to its last candidate)."""

    def __init__(self, path: pathlib.Path, budget: float) -> None:
        self.path = path
        self.budget = budget
        self.before = json.loads(path.read_text())["cpu_seconds"] if path.exists() else 0.0
        self.start = time.process_time()

    def spent(self) -> float:
        return self.before + time.process_time() - self.start

    def save(self) -> float:
        spent = self.spent()
        atomic_write_json(str(self.path), {"cpu_seconds": spent, "budget": self.budget})
        return spent


class BudgetedTask(BlazeFaceTask):
    """The detection task, refusing to build the next candidate once the ledger reaches the budget (the
    candidate in progress finishes: a search overshoots by at most one candidate)."""

    def __init__(self, cfg: Mapping[str, Any], ledger: Ledger) -> None:
        super().__init__(cfg)
        self.ledger = ledger

    def build(self, tokens: Sequence[int]) -> paddle.nn.Layer:
        if self.ledger.save() >= self.ledger.budget:
            raise BudgetSpent
        return super().build(tokens)


def log(line: str) -> None:
    print(f"[search_quality {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# --- one table for 640 px shapes, used at 160 px ----------------------------------------------------------


def table_at(side: int, source: pathlib.Path = TABLE) -> pathlib.Path:
    """The 855 table with every key's input H and W scaled from TABLE_SIDE to `side` (key fields 5 and 6 of
    latency.opkeys.conv_key), written once under WORK."""
    path = WORK / f"latency_855_at{side}.txt"
    if path.exists():
        return path
    lines = source.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        key, value = line.split("\t")
        fields = key.split(",")
        for i in (5, 6):
            scaled, rest = divmod(int(fields[i]) * side, TABLE_SIDE)
            assert rest == 0, f"{key}: {fields[i]} px does not scale to {side}"
            fields[i] = str(scaled)
        out.append(",".join(fields) + "\t" + value)
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path


def latency_ms(task: BlazeFaceTask, structure: Mapping[str, Any], table: pathlib.Path, side: int) -> float:
    model = task.measurable(task.build_structure(structure))
    return Constraint(ctype="latency", table_file=str(table)).measure(model, [1, 3, side, side]).latency_ms


def reference_latency_ms(task: BlazeFaceTask) -> float:
    return latency_ms(task, decode(HAND_MADE_TOKENS), TABLE, TABLE_SIDE)


def window(task: BlazeFaceTask) -> Constraint:
    """latency <= the reference's, priced on the table at the training size (the table's own unit, us)."""
    limit_us = round(reference_latency_ms(task) * 1000.0, 3)
    return Constraint(ctype="latency", table_file=str(table_at(PROXY.input_size)), max_constraint=limit_us)


def prepare() -> Dict[str, Any]:
    """The data set and the derived table, checked: the same price at 160 px as the original's at 640 px."""
    DATA.ensure()
    task = task_for(PROXY, DATA)
    small = table_at(PROXY.input_size)
    rng = random.Random(0)
    checks = [decode(HAND_MADE_TOKENS), decode(NAS_V2)]
    checks += [decode([rng.randrange(n) for n in task.space.range_table()]) for _ in range(8)]
    for structure in checks:
        big = latency_ms(task, structure, TABLE, TABLE_SIDE)
        at_small = latency_ms(task, structure, small, PROXY.input_size)
        assert abs(big - at_small) < 1e-6, f"{structure}: {big} ms at 640 px, {at_small} ms with {small}"
    result = {"reference_ms": reference_latency_ms(task), "checked_structures": len(checks), "table": str(small)}
    log(f"prepared: {result}")
    return result


# --- the three strategies ------------------------------------------------------------------------------------


def token_search(sampler: str) -> Dict[str, Any]:
    """SANAS or random search over trained candidates until the budget is spent (resumes its save_dir)."""
    save_dir = WORK / sampler
    done = WORK / f"{sampler}.json"
    if done.exists():
        return json.loads(done.read_text())
    save_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(WORK / f"{sampler}_ledger.json", BUDGET_CPU_S)
    cfg = merge(
        task_config(PROXY, DATA.ensure()),
        {"search_steps": 10_000, "seed": SEARCH_SEED, "save_dir": str(save_dir), "init_tokens": HAND_MADE_TOKENS},
    )
    task = BudgetedTask(cfg, ledger)
    constraint = window(task)
    resume = str(save_dir) if History.in_dir(str(save_dir)).read() else None
    flags = SimpleNamespace(quiet=True, use_vdl=False, vdl_log_dir=None)
    options = search_options(cfg, "bench/search_quality.py", task.kind, flags, resume_dir=resume, sampler=sampler)
    try:
        run_task(task, options, constraint)
    except BudgetSpent:
        pass
    records = History.in_dir(str(save_dir)).read()
    result = summary(records, ledger.save())
    atomic_write_json(str(done), result)
    return result


def summary(records: List[Dict[str, Any]], cpu_seconds: float) -> Dict[str, Any]:
    best = best_record(records)
    if best is None:
        raise RuntimeError("no candidate was trained within the budget")
    return {
        "cpu_seconds": cpu_seconds,
        "candidates_trained": sum(r.get("status") == "trained" for r in records),
        "candidates_rejected": sum(r.get("status") == "rejected" for r in records),
        "best_reward": best["reward"],
        "tokens": best["tokens"],
        "structure": decode(best["structure"]) if "blaze_filters" in best["structure"] else decode(best["tokens"]),
    }


def oneshot_overrides(save_dir: pathlib.Path) -> List[str]:
    """The one-shot demo config on this benchmark's data, readers (160 px), window and sizes."""
    folder = str(DATA.ensure())
    constraint = window(task_for(PROXY, DATA))
    return [
        f"save_dir={save_dir}",
        f"seed={SEARCH_SEED}",
        f"TrainDataset.dataset_dir={folder}",
        f"EvalDataset.dataset_dir={folder}",
        f"TrainReader.batch_size={PROXY.batch_size}",
        f"LearningRate.base_lr={PROXY.base_lr}",
        "Constraint.ctype=latency",
        f"Constraint.table_file={constraint.table_file}",
        f"Constraint.max_constraint={constraint.max_constraint}",
        "Constraint.min_constraint=null",
        *(f"{key}={value}" for key, value in ONESHOT.items()),
    ]


def oneshot() -> Dict[str, Any]:
    """train_supnet, search, finetune_subnet of the winner, in this process; CPU per phase (a phase killed
    half-way is counted from its resumed part only)."""
    save_dir = WORK / "oneshot"
    done = WORK / "oneshot.json"
    if done.exists():
        return json.loads(done.read_text())
    phases_path = WORK / "oneshot_phases.json"
    phases: Dict[str, Any] = json.loads(phases_path.read_text()) if phases_path.exists() else {}
    overrides = oneshot_overrides(save_dir)
    cfg = load_oneshot_config(str(BIGNAS_DEMO), overrides)
    select_device(False)
    constraint = oneshot_constraint(cfg)
    paddle.disable_static()
    flags = SimpleNamespace(quiet=True, use_vdl=False, vdl_log_dir=None)

    def phase(name: str, run: Any) -> Any:
        if name not in phases:
            start = time.process_time()
            value = run()
            phases[name] = {"cpu_seconds": time.process_time() - start, "result": value}
            atomic_write_json(str(phases_path), phases)
        return phases[name]["result"]

    checkpoint = save_dir / "supernet"
    phase("train_supnet", lambda: train_supernet(cfg, resume=checkpoint.exists(), quiet=True))
    history = History.in_dir(str(save_dir))
    searched = history.read() and (save_dir / "search_meta.json").exists()
    resume = str(save_dir) if searched else None
    phase("search", lambda: run_supernet_search(cfg, constraint, str(BIGNAS_DEMO), flags, resume_dir=resume).steps_done)
    best = best_record(history.read())
    assert best is not None, "the one-shot search admitted no subnet"
    tokens = ",".join(map(str, best["tokens"]))
    finetune_cfg = load_oneshot_config(str(BIGNAS_DEMO), [*overrides, f"subnet_tokens={tokens}"])
    tuned = phase("finetune_subnet", lambda: evaluate_subnet(finetune_cfg, constraint, finetune=True))
    result = summary(history.read(), sum(p["cpu_seconds"] for p in phases.values()))
    result.update(phases={k: v["cpu_seconds"] for k, v in phases.items()}, finetuned_ap=tuned.get("finetuned_ap"))
    atomic_write_json(str(done), result)
    return result


# --- retraining, claimed by whichever worker is free ---------------------------------------------------------


def rows() -> Dict[str, Dict[str, Any]]:
    """The compared structures known so far: the fixed three, and each strategy whose search has finished."""
    out: Dict[str, Dict[str, Any]] = {
        "reference": {"tokens": HAND_MADE_TOKENS, "structure": decode(HAND_MADE_TOKENS)},
        "published_nas": {"tokens": None, "structure": decode(NAS)},  # the reference's structure (see report)
        "published_nas_v2": {"tokens": None, "structure": decode(NAS_V2)},
    }
    for name in STRATEGIES:
        path = WORK / f"{name}.json"
        if path.exists():
            found = json.loads(path.read_text())
            out[name] = {"tokens": found["tokens"], "structure": found["structure"], "search": found}
    return out


def claim(key: str) -> bool:
    """One worker trains a run: a claim file holding its pid (a dead worker's claim is taken over)."""
    folder = WORK / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{zlib.crc32(key.encode())}.pid"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(path.read_text() or 0), 0)
            return False
        except (ProcessLookupError, ValueError):
            path.unlink(missing_ok=True)
            return claim(key)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def retrain_all() -> None:
    """Train every (structure, seed) the cache lacks, polling for the searches still running."""
    while True:
        known = rows()
        records = read_cache(CACHE)
        todo = [
            (name, row, seed)
            for seed in SEEDS
            for name, row in known.items()
            if cache_key(row["structure"], seed, RETRAIN, DATA) not in records
        ]
        if not todo and len(known) == 3 + len(STRATEGIES):
            return
        started = False
        for name, row, seed in todo:
            key = cache_key(row["structure"], seed, RETRAIN, DATA)
            if key in read_cache(CACHE) or not claim(key):
                continue
            log(f"retrain {name} seed {seed}")
            result = scratch_ap(row["structure"], seed, RETRAIN, DATA, cache=CACHE, extra={"label": name})
            log(f"retrain {name} seed {seed}: AP {result.ap:.4f}, {result.cpu_seconds:.0f} s CPU")
            started = True
            break
        if not started:
            time.sleep(15)


def worker(index: int) -> None:
    """Worker 0: sanas, then oneshot; worker 1: random; both then retrain whatever is unclaimed."""
    for strategy in ("sanas", "oneshot") if index == 0 else ("random",):
        log(f"{strategy} starts")
        result = oneshot() if strategy == "oneshot" else token_search(strategy)
        log(f"{strategy} done: {json.dumps({k: v for k, v in result.items() if k != 'structure'})}")
    retrain_all()
    log("worker done")


# --- the report ---------------------------------------------------------------------------------------------


def measured_ms(structures: Mapping[str, Mapping[str, Any]]) -> Dict[str, float]:
    """End-to-end latency here at 640 px (Paddle Inference, 1 thread, min over passes of medians)."""
    task = task_for(PROXY, DATA)
    shape = [1, 3, TABLE_SIDE, TABLE_SIDE]
    names = list(structures)
    dirs = [
        export_model(task.measurable(task.build_structure(structures[n])), shape, str(WORK / "export" / n))
        for n in names
    ]
    times = measure_models_us(dirs, shape, EngineSettings(threads=1, repeats=15, passes=3))
    return {n: t / 1000.0 for n, t in zip(names, times)}


def report() -> Dict[str, Any]:
    known = rows()
    records = read_cache(CACHE)
    task = task_for(PROXY, DATA)
    unique = {json.dumps(r["structure"], sort_keys=True): r["structure"] for r in known.values()}
    here = measured_ms({str(i): s for i, s in enumerate(unique.values())})
    here_by = {k: here[str(i)] for i, k in enumerate(unique)}
    table: Dict[str, Any] = {}
    for name, row in known.items():
        done = [records[k] for s in SEEDS if (k := cache_key(row["structure"], s, RETRAIN, DATA)) in records]
        aps = [r["ap"] for r in done]
        flops, params = measure(task, row["structure"])
        search = row.get("search", {})
        table[name] = {
            "tokens": row["tokens"],
            "structure": row["structure"],
            "latency_ms_855": latency_ms(task, row["structure"], TABLE, TABLE_SIDE),
            "latency_ms_here": here_by[json.dumps(row["structure"], sort_keys=True)],
            "flops_160": flops,
            "flops_640": flops * (TABLE_SIDE / PROXY.input_size) ** 2,
            "params": params,
            "ap_by_seed": {str(r["seed"]): r["ap"] for r in done},
            "ap_mean": statistics.mean(aps) if aps else None,
            "ap_std": statistics.stdev(aps) if len(aps) > 1 else None,
            "ap_progress_mean": progress_means(done),
            "retrain_cpu_seconds_mean": statistics.mean(r["cpu_seconds"] for r in done) if done else None,
            "cpu_seconds": search.get("cpu_seconds", 0.0),
            "search": {k: v for k, v in search.items() if k not in ("structure", "tokens")} or None,
        }
    ref = table["reference"]
    strategies = [table[s] for s in STRATEGIES if s in table and table[s]["ap_mean"] is not None]
    result = {
        "question": "Does the search beat the hand-made network? (issue 16 §3)",
        "data": DATA.fingerprint(),
        "proxy_schedule": PROXY.key(),
        "retrain_schedule": RETRAIN.key(),
        "retrain_seeds": list(SEEDS),
        "budget_cpu_seconds_per_strategy": BUDGET_CPU_S,
        "oneshot_settings": ONESHOT,
        "window": f"latency on configs/latency_855.txt at 640 px <= {ref['latency_ms_855']:.3f} ms (the reference)",
        "reference_is_published_nas": table["reference"]["structure"] == table["published_nas"]["structure"],
        **table,
        "target_met": {
            "a_strategy_ap_at_least_reference_within_latency": any(
                s["ap_mean"] >= ref["ap_mean"] and s["latency_ms_855"] <= ref["latency_ms_855"] for s in strategies
            )
            if ref["ap_mean"] is not None
            else None,
            "sanas_no_worse_than_random": table["sanas"]["ap_mean"] >= table["random"]["ap_mean"]
            if all(table.get(s, {}).get("ap_mean") is not None for s in ("sanas", "random"))
            else None,
        },
        "machine": {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }
    runs = [r for r in records.values() if r["schedule"] == RETRAIN.key() and r["data"] == DATA.fingerprint()]
    result["total_cpu_seconds"] = {  # retrains: training and the task's evaluation (the extra IoU passes apart)
        "searches": sum(table[s]["cpu_seconds"] for s in STRATEGIES if s in table),
        "retrains": sum(r["cpu_seconds"] for r in runs),
        "retrain_extra_evaluations": sum(r.get("extra_eval_cpu_seconds", 0.0) for r in runs),
        "retrain_runs": len(runs),
    }
    result["figure"] = figure(table, str(RESULTS / "search_quality.png"))
    return result


def progress_means(done: List[Dict[str, Any]]) -> Dict[str, float]:
    """Mean AP@0.5 over seeds at each recorded iteration: is the schedule still rising?"""
    by_iter: Dict[int, List[float]] = {}
    for record in done:
        for point in record.get("progress", []):
            by_iter.setdefault(point["iter"], []).append(point["ap_iou"]["0.50"])
    return {str(i): statistics.mean(v) for i, v in sorted(by_iter.items())}


def figure(table: Mapping[str, Mapping[str, Any]], path: str) -> Optional[str]:
    """AP@0.5 (mean, std over seeds) against 855 latency, one point per row."""
    fig = Figure(figsize=FIGURE_INCHES)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, row) in enumerate(table.items()):
        if row["ap_mean"] is None:
            continue
        shift = 0.05 * (i - 2.5)  # reference and published_nas coincide: spread the points a little
        ax.errorbar(
            row["latency_ms_855"] + shift, row["ap_mean"], yerr=row["ap_std"] or 0, fmt="o", capsize=4, label=name
        )
    ax.set_xlabel("latency on the 855 table at 640 px (ms)")
    ax.set_ylabel(f"AP@0.5, mean ± std of {len(SEEDS)} seeds")
    ax.set_title(f"hard demo set, {RETRAIN.max_iters} iterations at {RETRAIN.input_size} px")
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["prepare", "worker", "report"])
    parser.add_argument("index", nargs="?", type=int, default=0, help="worker 0 or 1")
    args = parser.parse_args(argv)
    if args.action == "prepare":
        prepare()
    elif args.action == "worker":
        worker(args.index)  # run_main handles SIGTERM like Ctrl-C, in one line
    else:
        save_result("search_quality", report())
    return 0


if __name__ == "__main__":
    run_main(main)
