"""Share of a demo search's wall time spent outside training and evaluation.

Runs the demo detection search (configs/demo/blazeface_demo.yml on a freshly generated WIDER-layout set)
in this process and times `run_task` as a whole. Training + evaluation time is what each history record
holds in `train_seconds`; everything else (controller, model builds, constraint checks, history and
checkpoint writes, progress, the exports of a new best, the final report) is overhead.
Usage: python bench/search_overhead.py [--steps N] [--max-iters N] [--results DIR]
Everything it writes besides the result lives in a temporary folder that is removed at the end.
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional

from common import machine, save_result

from ppnas.config import load_config, merge, parse_overrides
from ppnas.constraint import Constraint
from ppnas.demo.wider import make_wider_demo
from ppnas.engine.options import SearchOptions
from ppnas.engine.runner import run_task
from ppnas.history import History
from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults

DEMO = "configs/demo/blazeface_demo.yml"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-iters", type=int, default=150)
    parser.add_argument("--results", default=None, help="folder for the result file (default bench/results)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ppnas_overhead_") as work:  # the data and the search, then gone
        result = measure(work, args.steps, args.max_iters)
    save_result("search_overhead", result, args.results)


def measure(work: str, steps: int, max_iters: int) -> Dict[str, Any]:
    make_wider_demo(f"{work}/wider")
    overrides = [
        f"TrainDataset.dataset_dir={work}/wider",
        f"EvalDataset.dataset_dir={work}/wider",
        f"save_dir={work}/out",
        f"search_steps={steps}",
        f"max_iters={max_iters}",
    ]
    cfg = with_search_defaults(merge(load_config(DEMO), parse_overrides(overrides)))
    options = SearchOptions(
        space_name=cfg["search_space"],
        search_steps=steps,
        save_dir=cfg["save_dir"],
        config_path=DEMO,
        kind="detection",
        seed=cfg["seed"],
        quiet=True,
    )
    start = time.perf_counter()
    task = BlazeFaceTask(cfg)
    run_task(task, options, Constraint.from_config(cfg["Constraint"], cfg))
    wall = time.perf_counter() - start
    records = History.in_dir(options.save_dir).read()
    train_eval = sum(r["train_seconds"] or 0.0 for r in records)
    per_candidate = [r["seconds"] - (r["train_seconds"] or 0.0) for r in records]
    return {
        "overhead_share": round((wall - train_eval) / wall, 4),
        "wall_s": round(wall, 2),
        "train_eval_s": round(train_eval, 2),
        "candidates": {s: sum(r["status"] == s for r in records) for s in ("trained", "rejected", "failed")},
        "median_overhead_per_candidate_ms": round(1000 * statistics.median(per_candidate), 1),
        "steps": steps,
        "max_iters": max_iters,
        "config": DEMO,
        "machine": machine(),
    }


if __name__ == "__main__":
    main()
