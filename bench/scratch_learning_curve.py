"""Learning curve of from-scratch training on the demo detection task: where does AP stop rising?

Subnets of different size from the FLOPs window (the smallest, a middle and the largest of the reference's
stratified picks), several seeds each, trained with the detection task's own training
(`BlazeFaceTask._train`, seeded as `scratch_reference.train_one` seeds it) and evaluated with
`BlazeFaceTask.evaluate` every `--every` iterations. The demo LR schedule is constant after its warm-up, and
evaluation draws no random numbers, so the AP at iteration n is the AP a run of `max_iters=n` gets.
Each finished run is appended to bench/results/scratch_learning_curve_<size>.jsonl (a rerun skips it);
the summary goes to bench/results/scratch_learning_curve_<size>.json and the plot to
docs/images/scratch_learning_curve_<size>.png.

    python bench/scratch_learning_curve.py [--input-size 160] [--iters 1500] [--every 100] [--seeds 0 1 2]
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import json
import os
import statistics
import time
from typing import Any, Dict, List, Sequence

from common import RESULTS, machine, save_result
from scipy.stats import kendalltau
from scratch_reference import (
    REFERENCE_DATA,
    REFERENCE_SCHEDULE,
    ROOT,
    DemoData,
    Schedule,
    append_record,
    decode,
    measure,
    read_cache,
    stratified_tokens,
    task_for,
)

from ppnas.engine.seeding import seed_everything
from ppnas.tasks.detection import BlazeFaceTask

CURVE_BINS = (0, 8, 15)  # of 16: bottom, middle and top of the window


def curve_run(task: BlazeFaceTask, structure: Dict[str, Any], seed: int, every: int) -> Dict[str, Any]:
    """One seeded training with an evaluation every `every` iterations; training CPU excludes evaluation."""
    points: List[Dict[str, float]] = []
    eval_cpu = [0.0]
    start = time.thread_time()

    def on_iter(iteration: int, total: int, loss: float) -> None:
        if iteration % every and iteration != total:
            return
        before = time.thread_time()
        train_cpu = before - start - eval_cpu[0]
        ap = task.evaluate(model)
        eval_cpu[0] += time.thread_time() - before
        points.append({"iter": iteration, "ap": ap, "loss": loss, "train_cpu": train_cpu})
        print(f"  iter {iteration}: AP {ap:.4f} loss {loss:.3f}", flush=True)

    seed_everything(seed)
    model = task.build_structure(structure)
    task._train(model, on_iter)
    return {"points": points, "eval_cpu_seconds": eval_cpu[0], "evaluations": len(points)}


def load_runs(path: Any) -> List[Dict[str, Any]]:
    if not os.path.exists(path):
        return []
    runs = []
    for line in open(path, encoding="utf-8").read().splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill: that run is trained again
    return runs


def summarise(runs: List[Dict[str, Any]], labels: Sequence[str]) -> Dict[str, Any]:
    """Per subnet and evaluation point: seed mean and std of AP; ranking agreement with the last point."""
    curves: Dict[str, Any] = {}
    for label in labels:
        mine = [r for r in runs if r["label"] == label]
        if not mine:
            continue
        iters = [p["iter"] for p in mine[0]["points"]]
        aps = [[r["points"][i]["ap"] for r in mine] for i in range(len(iters))]
        train_cpu = statistics.mean(r["points"][-1]["train_cpu"] / r["points"][-1]["iter"] for r in mine)
        curves[label] = {
            "tokens": mine[0]["tokens"],
            "flops": mine[0]["flops"],
            "seeds": [r["seed"] for r in mine],
            "iters": iters,
            "ap_mean": [statistics.mean(a) for a in aps],
            "ap_std": [statistics.stdev(a) if len(a) > 1 else 0.0 for a in aps],
            "ap_by_seed": aps,
            "cpu_seconds_per_iter": train_cpu,
            "eval_cpu_seconds": statistics.mean(r["eval_cpu_seconds"] / r["evaluations"] for r in mine),
        }
    return {"curves": curves, "ranking_vs_last": ranking_vs_last(runs)}


def ranking_vs_last(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Kendall tau, over every (subnet, seed) run, between the AP at each point and at the last point."""
    if len(runs) < 3:
        return []
    out = []
    for i, point in enumerate(runs[0]["points"]):
        tau = kendalltau([r["points"][i]["ap"] for r in runs], [r["points"][-1]["ap"] for r in runs])
        out.append({"iter": point["iter"], "tau": float(tau.statistic)})
    return out


def plot(summary: Dict[str, Any], path: Any, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for (label, curve), color in zip(summary["curves"].items(), ["tab:blue", "tab:orange", "tab:green"]):
        for column in zip(*curve["ap_by_seed"]):  # one thin line per seed
            ax.plot(curve["iters"], column, color=color, alpha=0.35, linewidth=0.8)
        name = f"{label} ({curve['flops'] / 1e6:.1f} MFLOPs, {len(curve['seeds'])} seeds)"
        ax.plot(curve["iters"], curve["ap_mean"], color=color, linewidth=2.2, label=name)
    ax.set_xlabel("training iterations (batch 16)")
    ax.set_ylabel("AP@0.5 on the val set")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reference_points(records: Sequence[Dict[str, Any]], tokens: Sequence[int], metric: str) -> Dict[int, List[float]]:
    """iteration -> APs over seeds, from the reference runs of one subnet (their 1/4, 1/2, 3/4 and end)."""
    points: Dict[int, List[float]] = {}
    for record in records:
        if (record.get("extra") or {}).get("tokens") != list(tokens):
            continue
        for point in record["progress"]:
            points.setdefault(point["iter"], []).append(point["ap_iou"][metric])
    return points


def plot_with_reference(curve: Dict[str, Any], records: Sequence[Dict[str, Any]], path: Any) -> None:
    """Left: the dense AP@0.5 curves (seed 0) and the reference runs' seed means (min-max bars); middle: the
    same, zoomed on the plateau; right: AP@0.75 of the reference runs, which does not saturate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    colors = ["tab:blue", "tab:orange", "tab:green"]
    for (label, line), color in zip(curve["curves"].items(), colors):
        name = f"{label} ({line['flops'] / 1e6:.1f} MFLOPs)"
        for ax in axes[:2]:
            ax.plot(line["iters"], line["ap_mean"], color=color, linewidth=1.6, label=f"{name}, seed 0, every 100")
        for ax, metric in ((axes[0], "0.50"), (axes[1], "0.50"), (axes[2], "0.75")):
            _seed_bars(ax, reference_points(records, line["tokens"], metric), color, f"{name}, reference runs")
    axes[1].set_ylim(0.95, 1.002)
    titles = ("AP@0.5", "AP@0.5, plateau", "AP@0.75 (reference runs only)")
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("training iterations (batch 16, 160 px)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AP on 500 val images")
    axes[0].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _seed_bars(ax: Any, points: Dict[int, List[float]], color: str, label: str) -> None:
    if not points:
        return
    iters = sorted(points)
    means = [statistics.mean(points[i]) for i in iters]
    low = [m - min(points[i]) for m, i in zip(means, iters)]
    high = [max(points[i]) - m for m, i in zip(means, iters)]
    seeds = min(len(points[i]) for i in iters)
    ax.errorbar(
        iters, means, yerr=[low, high], fmt="o", color=color, capsize=3, markersize=4, label=f"{label} ({seeds} seeds)"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--max-faces", type=int, default=3, help="make_wider_demo's max_faces")
    parser.add_argument("--hard", action="store_true", help="make_wider_demo's hard variant")
    parser.add_argument("--bins", type=int, nargs="+", default=list(CURVE_BINS), help="of the 16 stratified picks")
    parser.add_argument(
        "--with-reference",
        action="store_true",
        help="also draw the reference runs (scratch_reference cache) into docs/images/scratch_learning_curve.png",
    )
    return parser.parse_args()


def run_curves(args: argparse.Namespace, schedule: Schedule, data: DemoData, log: Any) -> Dict[str, Any]:
    """Train what the log lacks (seed-major), then summarise every run of the chosen subnets."""
    task = task_for(schedule, data)
    picks = stratified_tokens(task, 16, seed=0)
    members = [{"label": f"bin{b:02d}", "tokens": picks[b]["tokens"]} for b in args.bins]
    runs = load_runs(log)
    for seed in args.seeds:
        for member in members:
            if any(r["label"] == member["label"] and r["seed"] == seed for r in runs):
                continue
            print(f"{member['label']} {member['tokens']} seed {seed}", flush=True)
            structure = decode(member["tokens"])
            flops, params = measure(task, structure)
            run = curve_run(task, structure, seed, args.every)
            record = {**member, "seed": seed, "flops": flops, "params": params, **run}
            record.update(schedule=schedule.key(), data=data.fingerprint(), load_average_1m=os.getloadavg()[0])
            append_record(record, log)
            runs.append(record)
    return summarise(runs, [m["label"] for m in members])


def main() -> None:
    args = parse_args()
    schedule = Schedule(max_iters=args.iters, input_size=args.input_size)
    data = DemoData(train=args.train, val=args.val, max_faces=args.max_faces, hard=args.hard)
    tag = f"{args.input_size}px_t{args.train}_v{args.val}_f{args.max_faces}" + ("_hard" if args.hard else "")
    summary = run_curves(args, schedule, data, RESULTS / f"scratch_learning_curve_{tag}.jsonl")
    image = ROOT / "docs" / "images" / f"scratch_learning_curve_{tag}.png"
    variant = ", hard" if args.hard else ""
    sets = f"{args.train} train / {args.val} val, max_faces {args.max_faces}{variant}"
    title = f"From scratch: {sets}, {args.input_size} px"
    plot(summary, image, title)
    summary.update(
        schedule=schedule.key(), data=data.fingerprint(), every=args.every, image=str(image.relative_to(ROOT))
    )
    summary["machine"] = {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    save_result(f"scratch_learning_curve_{tag}", summary)
    if args.with_reference:
        save_with_reference(summary)


def save_with_reference(summary: Dict[str, Any]) -> None:
    """The headline figure and numbers: these curves with the reference runs' progress points."""
    records = [
        r
        for r in read_cache().values()
        if r["schedule"] == REFERENCE_SCHEDULE.key() and r["data"] == REFERENCE_DATA.fingerprint()
    ]
    image = ROOT / "docs" / "images" / "scratch_learning_curve.png"
    plot_with_reference(summary, records, image)
    progress = {
        label: {m: reference_points(records, line["tokens"], m) for m in ("0.50", "0.75")}
        for label, line in summary["curves"].items()
    }
    save_result(
        "scratch_learning_curve",
        {
            **summary,
            "image": str(image.relative_to(ROOT)),
            "reference_schedule": REFERENCE_SCHEDULE.key(),
            "reference_data": REFERENCE_DATA.fingerprint(),
            "reference_progress": progress,
        },
    )


if __name__ == "__main__":
    main()
