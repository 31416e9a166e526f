"""The detection half of bench/oneshot_ranking.py (issue 16; see its docstring): the ranking test on the hard demo set.

The reference is bench/scratch_reference.py's: 16 subnets stratified by FLOPs over the demo window, each trained
from scratch with REFERENCE_SEEDS at REFERENCE_SCHEDULE on REFERENCE_DATA (the hard variant, 300 val images),
cached and resumable (`python bench/scratch_reference.py run` trains what is missing, in pieces). Its AP is the
seed mean; its own ceiling is the Kendall tau of each seed alone against the mean of the others.

The supernet is the demo one-shot config on the same data and readers, trained for SUPERNET_SCHEDULES x one
candidate's iterations (resumable; its thread CPU time is counted over every resumed piece); each reference subnet
is then evaluated with inherited weights (BN calibrated), timed in thread CPU time in this run. Cost: per-subnet
speedup against the reference's CPU per run (thread CPU time too), and the number of subnets at which the supernet
pays for itself (`break_even_subnets`)."""

import ppnas  # noqa: F401  # isort: skip
import os
import pathlib
import statistics
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from common import RESULTS, machine
from matplotlib.figure import Figure
from scipy.stats import kendalltau
from scratch_learning_curve import load_runs, reference_points
from scratch_reference import (
    DATA_ROOT,
    REFERENCE_BINS,
    REFERENCE_DATA,
    REFERENCE_SCHEDULE,
    REFERENCE_SEEDS,
    cache_key,
    pair_taus,
    read_cache,
    reference_members,
    run_reference,
    split_taus,
)
from supernet_training import supernet_cpu_seconds, train_counted

from ppnas.oneshot.settings import load_oneshot_config
from ppnas.report.figures.style import FIGURE_INCHES, save_figure

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "demo" / "blazeface_bignas_demo.yml")
SUPERNET_SCHEDULES = 4  # the supernet trains this many times one candidate's iterations (issue 16)
# issue 16's calibration lever, scored on the same supernet: a fixed, eval-transformed calibration set, more batches
CALIB_VARIANTS = ({"calib_transforms": "eval", "calib_batches": 16},)
LONG_RUN = RESULTS / "scratch_learning_curve_160px_t1000_v300_f8_hard.jsonl"


def _variant(sandwich: str) -> str:
    """Uniform sampling (BigNAS parity, the default) keeps the issue's names, window adds its suffix; each rule has
    its own supernet, result and figure, so both can train side by side."""
    return "" if sandwich == "uniform" else f"_{sandwich}"


def run_name(sandwich: str) -> str:
    return f"oneshot_ranking{_variant(sandwich)}"


def supernet_dir(sandwich: str) -> pathlib.Path:
    return ROOT / "output" / f"det_ranking_supernet{_variant(sandwich)}"


def supernet_config(data_dir: pathlib.Path, sandwich: str) -> Dict[str, Any]:
    """The demo one-shot config on the reference's data, at its input size and batch size."""
    size = REFERENCE_SCHEDULE.input_size
    overrides = [
        f"TrainDataset.dataset_dir={data_dir}",
        f"EvalDataset.dataset_dir={data_dir}",
        f"max_iters={SUPERNET_SCHEDULES * REFERENCE_SCHEDULE.max_iters}",
        f"input_size={size}",
        f"TrainReader.batch_size={REFERENCE_SCHEDULE.batch_size}",
        f"sandwich_sampling={sandwich}",
        "checkpoint_every=100",
        f"save_dir={supernet_dir(sandwich)}",
    ]
    return load_oneshot_config(CONFIG, overrides)


def detection_ranking(
    stage: str, sandwich: str = "uniform", seeds: Sequence[int] = REFERENCE_SEEDS
) -> Optional[Dict[str, Any]]:
    """stage `scratch`: the from-scratch reference only; `supernet`: the supernet only; `all`: the reference from
    the cache (complete at `seeds`), the supernet, the inherited APs and the comparison."""
    from ppnas.oneshot.evaluate import SupernetEvaluator

    schedule, data = REFERENCE_SCHEDULE, REFERENCE_DATA
    if stage == "scratch":
        run_reference(schedule, data, REFERENCE_SEEDS, REFERENCE_BINS)
        return None
    cfg = supernet_config(data.ensure(DATA_ROOT), sandwich)
    state = train_counted(cfg)
    if stage == "supernet":
        return None
    members = [m for m in reference_members(schedule, data) if m["label"].startswith("bin")]
    records = read_cache()
    keys = [[cache_key(m["structure"], s, schedule, data) for s in seeds] for m in members]
    missing = sum(key not in records for row in keys for key in row)
    if missing:
        raise SystemExit(
            f"the reference lacks {missing} of {len(keys) * len(seeds)} from-scratch runs: run "
            "python bench/oneshot_ranking.py --stage scratch (resumable) first"
        )
    matrix = [[records[key]["ap"] for key in row] for row in keys]
    curves = progress_means(members, [[records[key] for key in row] for row in keys])
    late, last = sorted(curves[0])[-2:]  # is the order settled by the end of the schedule?
    settled = kendalltau([c[late] for c in curves], [c[last] for c in curves])
    scratch_cpu = statistics.mean(records[key]["cpu_seconds"] for row in keys for key in row)
    evaluator = SupernetEvaluator.from_checkpoint(cfg)
    evaluator.evaluate(members[0]["tokens"])  # warm-up: the calibration batches are fetched once
    inherited: List[Dict[str, float]] = []
    for member in members:
        start = time.thread_time()
        inherited.append({"ap": evaluator.evaluate(member["tokens"]), "cpu_seconds": time.thread_time() - start})
    reference = [statistics.mean(row) for row in matrix]
    scores = [r["ap"] for r in inherited]
    tau = kendalltau(scores, reference)
    splits = split_taus(matrix)
    known = [t["tau"] for t in splits if t["tau"] is not None]
    eval_cpu = statistics.mean(r["cpu_seconds"] for r in inherited)
    variants = [calibration_variant(evaluator, members, reference, calib) for calib in CALIB_VARIANTS]
    figure = ranking_figure(scores, matrix, curves, float(tau.statistic), RESULTS / f"{run_name(sandwich)}.png")
    supernet_cpu = supernet_cpu_seconds(cfg)
    return {
        "task": "detection",
        "kendall_tau": float(tau.statistic),
        "kendall_p_value": float(tau.pvalue),
        "reference_tau_ceiling": statistics.mean(known) if known else None,
        "reference_split_taus": splits,
        "reference_pair_taus": pair_taus({m["label"]: dict(zip(seeds, row)) for m, row in zip(members, matrix)}, seeds),
        "reference_tau_late_vs_end": {"iters": [late, last], "tau": float(settled.statistic)},
        "reference_seed_std_median": statistics.median(statistics.stdev(row) for row in matrix),
        "subnets": len(members),
        "seeds": list(seeds),
        "val_images": data.val,
        "eval_cpu_seconds_per_subnet": eval_cpu,
        "scratch_cpu_seconds_per_run": scratch_cpu,
        "speedup": scratch_cpu / eval_cpu,
        "break_even_subnets": supernet_cpu / (scratch_cpu - eval_cpu),
        "supernet_iters": state["iteration"],
        "supernet_train_cpu_seconds": supernet_cpu,
        "sandwich_sampling": sandwich,
        "schedule": schedule.key(),
        "data": data.fingerprint(),
        "calib_batches": int(cfg["calib_batches"]),
        "calib_transforms": cfg["calib_transforms"],
        "calibration_variants": variants,
        "figure": str(pathlib.Path(figure).relative_to(ROOT)),
        "members": [
            {
                "label": m["label"],
                "tokens": m["tokens"],
                "flops": m["flops"],
                "inherited_ap": score,
                "scratch_ap_by_seed": row,
                "scratch_ap_mean": mean,
            }
            for m, score, row, mean in zip(members, scores, matrix, reference)
        ],
        "machine": {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }


def calibration_variant(
    evaluator: Any, members: List[Mapping[str, Any]], reference: List[float], calib: Mapping[str, Any]
) -> Dict[str, Any]:
    """Kendall tau against the reference of the same supernet's inherited AP under another BN calibration (the
    loaded supernet is reused: each evaluation calibrates its BN afresh)."""
    recalibrated = type(evaluator)({**evaluator.cfg, **calib}, evaluator.supernet, evaluator.adapter)
    scores = [recalibrated.evaluate(m["tokens"]) for m in members]
    tau = kendalltau(scores, reference)
    return {**calib, "kendall_tau": float(tau.statistic), "kendall_p_value": float(tau.pvalue), "inherited_ap": scores}


def progress_means(members: List[Mapping[str, Any]], rows: List[List[Mapping[str, Any]]]) -> List[Dict[int, float]]:
    """Per subnet: iteration -> seed-mean AP@0.5 at the points its runs recorded (1/4, 1/2, 3/4 and the end)."""
    points = [reference_points(runs, m["tokens"], "0.50") for m, runs in zip(members, rows)]
    return [{i: statistics.mean(aps) for i, aps in sorted(by_iter.items())} for by_iter in points]


def long_run() -> Optional[Dict[str, Any]]:
    """The one run of the smallest subnet trained twice as long (bench/scratch_learning_curve.py --hard)."""
    runs = load_runs(LONG_RUN)
    return runs[0] if runs else None


def ranking_figure(
    inherited: List[float], matrix: List[List[float]], curves: List[Dict[int, float]], tau: float, path: pathlib.Path
) -> str:
    """Left: the reference's learning curves (seed means) and the long run; right: inherited AP against the
    from-scratch seed mean, one point per subnet, the bar spanning its seeds."""
    fig = Figure(figsize=(FIGURE_INCHES[0] * 2, FIGURE_INCHES[1]))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for curve in curves:
        left.plot(list(curve), list(curve.values()), color="tab:blue", alpha=0.5, marker="o", markersize=3)
    longer = long_run()
    if longer is not None:
        points = longer["points"]
        left.plot([p["iter"] for p in points], [p["ap"] for p in points], "k--", label=f"{longer['label']}, seed 0")
        left.legend(loc="lower right", fontsize="small")
    left.set_xlabel(f"training iterations (batch {REFERENCE_SCHEDULE.batch_size}, {REFERENCE_SCHEDULE.input_size} px)")
    left.set_ylabel(f"from-scratch AP@0.5, mean of {len(matrix[0])} seeds")
    left.set_title(f"the reference: {len(curves)} subnets, {REFERENCE_DATA.val} val images")
    means = [statistics.mean(row) for row in matrix]
    below = [m - min(row) for m, row in zip(means, matrix)]
    above = [max(row) - m for m, row in zip(means, matrix)]
    right.errorbar(inherited, means, yerr=[below, above], fmt="o", capsize=3)
    right.set_xlabel("inherited AP@0.5 (supernet weights, BN calibrated)")
    right.set_ylabel(f"from-scratch AP@0.5, mean and range of {len(matrix[0])} seeds")
    right.set_title(f"inherited against from scratch: Kendall tau {tau:.2f}")
    return save_figure(fig, str(path))
