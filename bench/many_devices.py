"""Train once, one front per device: NSGA-II against random search over three latency tables, and one multi-table
search against one single-table search per device (issue 20).

    python bench/many_devices.py [--evaluations 100] [--seeds 0 1 2] [--work output/bench_many_devices]

The demo supernet (configs/demo/blazeface_bignas_demo.yml on data/demo_wider, `make_demo_data.py`) is trained once
into <work>/supernet (resumed when cut short). Tables: the Snapdragon 855 table (no keys at the demo's 160 px: its
nearest keys price them, `missing_keys: nearest`) and two tables built on this machine at 160 px with Paddle
Inference and ONNX Runtime (bench/results/latency_tables/, issue 17). Every search is `tools/bignas.py --phase
search` in a child process, as a user runs it, with no FLOPs window (the fronts span the space) and its own
save_dir; a finished one is read, not run again. Costs are the children's CPU seconds (user + system).

Result (bench/results/many_devices.json): `hypervolume` per table {nsga2, random} (seed means of the dominated area
of reward against that table's latency, normalised by the box of every subnet any run evaluated, reference point:
reward 0 at the slowest latency seen), `cost_ratio_vs_single_table_searches` (CPU of the multi-table NSGA-II search
/ CPU of the three single-table NSGA-II searches, seed 0, same evaluations each), `evaluations`, `seeds`, and
bench/results/many_devices_fronts.png (the multi-table search's fronts, seed 0).
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
from typing import Any, Dict, List, Sequence, Tuple

from common import RESULTS, machine, save_result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "demo", "blazeface_bignas_demo.yml")
DATA = os.path.join(ROOT, "data", "demo_wider")
TABLES = {
    "latency_855": os.path.join(ROOT, "configs", "latency_855.txt"),
    "paddle_inference_blazeface_3x3": os.path.join(RESULTS, "latency_tables", "paddle_inference_blazeface_3x3.txt"),
    "onnxruntime_blazeface_3x3": os.path.join(RESULTS, "latency_tables", "onnxruntime_blazeface_3x3.txt"),
}
SAMPLERS = ("nsga2", "random")
NO_WINDOW = ["Constraint.min_constraint=null", "Constraint.max_constraint=null", "Constraint.missing_keys=nearest"]


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bignas(phase: str, overrides: Sequence[str], resume: str = "") -> float:
    """One tools/bignas.py phase in a child process; its CPU seconds."""
    before = children_cpu_seconds()
    command = [sys.executable, os.path.join(ROOT, "tools", "bignas.py"), "-c", CONFIG, "--phase", phase, "--quiet"]
    if resume:
        command += ["-r", resume]
    subprocess.run([*command, "-o", *overrides], check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return children_cpu_seconds() - before


def ensure_supernet(work: str) -> Dict[str, Any]:
    """The demo supernet in <work>/supernet: trained (or its training resumed) unless finished."""
    save_dir = os.path.join(work, "supernet_run")
    state = os.path.join(save_dir, "supernet", "state.json")
    if not os.path.isdir(DATA):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_demo_data.py"), "--out", DATA], check=True)
    cpu = None
    finished = os.path.isfile(state) and json.load(open(state))["iteration"] >= json.load(open(state))["max_iters"]
    if not finished:
        cpu = bignas("train_supnet", [f"save_dir={save_dir}"], resume=save_dir if os.path.isfile(state) else "")
        with open(os.path.join(work, "supernet_cpu.json"), "w") as f:
            json.dump({"cpu_seconds": cpu}, f)
    with open(os.path.join(work, "supernet_cpu.json")) as f:
        return {"dir": os.path.join(save_dir, "supernet"), **json.load(f)}


def run_search(work: str, name: str, supernet: str, sampler: str, seed: int, tables: Sequence[str], n: int) -> Dict:
    """One front search (cached by its save_dir's fronts.json and cpu.json)."""
    save_dir = os.path.join(work, name)
    cost = os.path.join(save_dir, "cpu.json")
    if not os.path.isfile(cost):
        shutil.rmtree(save_dir, ignore_errors=True)  # a search cut short is run again whole: its CPU must count once
        listed = ", ".join(TABLES[t] for t in tables)
        overrides = [
            f"supernet_dir={supernet}",
            f"save_dir={save_dir}",
            f"search_mode={sampler}",
            f"seed={seed}",
            f"subnet_count={n}",
            f"tables=[{listed}]",
            *NO_WINDOW,
        ]
        cpu = bignas("search", overrides)
        with open(cost, "w") as f:
            json.dump({"cpu_seconds": cpu}, f)
    with open(cost) as f:
        cpu = json.load(f)["cpu_seconds"]
    with open(os.path.join(save_dir, "fronts.json")) as f:
        fronts = json.load(f)
    with open(os.path.join(save_dir, "history.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    trained = [r for r in records if r.get("status") == "trained"]
    return {"save_dir": save_dir, "cpu_seconds": cpu, "fronts": fronts, "trained": trained}


def hypervolume(points: Sequence[Tuple[float, float]], ref_latency: float) -> float:
    """Area dominated by (latency, reward) points (lower latency, higher reward) above reward 0, left of
    `ref_latency`."""
    area, best = 0.0, 0.0
    for latency, reward in sorted(points, key=lambda p: (p[0], -p[1])):
        if latency >= ref_latency or reward <= best:
            continue
        area += (ref_latency - latency) * (reward - best)
        best = reward
    return area


def normalised_hypervolumes(runs: Dict[str, List[Dict[str, Any]]], table: str) -> Dict[str, List[float]]:
    """Per sampler, each seed's hypervolume on `table`, divided by the box every evaluated subnet spans."""
    everything = [r for seeds in runs.values() for run in seeds for r in run["trained"]]
    latencies = [r["latencies_ms"][table] for r in everything]
    slowest, fastest = max(latencies), min(latencies)
    box = (slowest - fastest) * max(r["reward"] for r in everything)
    return {
        sampler: [
            hypervolume([(r["latencies_ms"][table], r["reward"]) for r in run["trained"]], slowest) / box
            for run in seeds
        ]
        for sampler, seeds in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default=os.path.join(ROOT, "output", "bench_many_devices"))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    supernet = ensure_supernet(args.work)
    n, tables = args.evaluations, list(TABLES)
    runs = {
        sampler: [
            run_search(args.work, f"{sampler}_s{seed}_n{n}", supernet["dir"], sampler, seed, tables, n)
            for seed in args.seeds
        ]
        for sampler in SAMPLERS
    }
    singles = {t: run_search(args.work, f"single_{t}_n{n}", supernet["dir"], "nsga2", 0, [t], n) for t in tables}
    multi_cpu = runs["nsga2"][0]["cpu_seconds"]
    single_cpu = sum(s["cpu_seconds"] for s in singles.values())
    hypervolumes = {t: normalised_hypervolumes(runs, t) for t in tables}
    shutil.copyfile(runs["nsga2"][0]["fronts"]["figure"], RESULTS / "many_devices_fronts.png")
    result = {
        "evaluations": n,
        "seeds": args.seeds,
        "tables": {t: os.path.relpath(p, ROOT) for t, p in TABLES.items()},
        "hypervolume": {
            t: {s: statistics.mean(v) for s, v in by_sampler.items()} for t, by_sampler in hypervolumes.items()
        },
        "hypervolume_by_seed": hypervolumes,
        "nsga2_at_least_random_on_every_table": all(
            statistics.mean(h["nsga2"]) >= statistics.mean(h["random"]) for h in hypervolumes.values()
        ),
        "cost_ratio_vs_single_table_searches": multi_cpu / single_cpu,
        "cpu_seconds": {
            "supernet_training": supernet.get("cpu_seconds"),
            "multi_table_search": multi_cpu,
            "single_table_searches": {t: s["cpu_seconds"] for t, s in singles.items()},
            "by_run": {
                f"{s}_seed{seed}": run["cpu_seconds"]
                for s, seeds in runs.items()
                for seed, run in zip(args.seeds, seeds)
            },
        },
        "front_sizes_seed0": {t: len(runs["nsga2"][0]["fronts"]["tables"][t]["front"]) for t in tables},
        "figure": "bench/results/many_devices_fronts.png",
        "command": "python bench/many_devices.py " + f"--evaluations {n} --seeds {' '.join(map(str, args.seeds))}",
        "machine": machine(),
    }
    save_result("many_devices", result)


if __name__ == "__main__":
    main()
