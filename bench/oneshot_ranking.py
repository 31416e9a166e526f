"""Does the one-shot supernet rank subnets as training from scratch does, and how much cheaper is it?

`--task detection` (default) on the demo data (configs/demo/blazeface_bignas_demo.yml): pick subnets spread over
the FLOPs window, train each from scratch with the detection search's own training
(`BlazeFaceTask.train_and_evaluate`, the demo's `max_iters`), train the supernet once (`train_supnet`),
evaluate each subnet with inherited weights + BN calibration, and compare the two AP rankings (Kendall's tau).
From-scratch results are cached in bench/results/oneshot_ranking_scratch.json so a killed run resumes.
Usage: python bench/oneshot_ranking.py [--subnets 8] [--stage scratch|all] [--reuse output/blazeface_bignas_demo]
(--reuse: take the supernet of a finished `tools/bignas.py --phase train_supnet` demo run, and its training time,
instead of training another; the demo data are generated with the same seed, so they are the same files.)

`--task segmentation` does the same for the DeepLabV3+ supernet (configs/demo/cityscape_bignas_demo.yaml) with
issue 14's method (bench/seg_ranking.py): `--subnets` subnets spread over the FLOPs of random subnets
(seg_ranking.PICK_WINDOW), each trained from scratch with the segmentation search's training for SEG_EPOCHS
epochs with every seed of SEG_SEEDS (seed-major; each run cached in bench/scratch_reference.py's cache,
bench/results/scratch_reference.jsonl, so a killed run resumes), the reference = the mean mIoU over seeds, its
noise = `reference_tau_ceiling` (Kendall tau of each seed alone against the mean of the others, averaged), and
Kendall tau of the inherited mIoU against the reference. The demo's train images with SEG_VAL_IMAGES val images
(more than the demo's 10: a steadier mIoU) score both; the supernet is the demo config's, trained on them here.
    python bench/oneshot_ranking.py --task segmentation --subnets 12 --stage scratch   # from-scratch runs only
    python bench/oneshot_ranking.py --task segmentation --subnets 12
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import json
import os
import random
import tempfile
import time
from typing import Any, Dict, List, Optional

from common import RESULTS, machine, save_result
from scipy.stats import kendalltau

from ppnas.config import load_config, merge, parse_overrides
from ppnas.constraint import Constraint
from ppnas.demo.wider import make_wider_demo
from ppnas.engine.seeding import seed_everything
from ppnas.interrupts import handled
from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults

DETECTION_DEMO = "configs/demo/blazeface_demo.yml"
BIGNAS_DEMO = "configs/demo/blazeface_bignas_demo.yml"
SCRATCH_CACHE = RESULTS / "oneshot_ranking_scratch.json"


def spread_subnets(task: BlazeFaceTask, constraint: Constraint, count: int, seed: int) -> List[Dict[str, Any]]:
    """`count` subnets inside the window, one per equal-width FLOPs bin (random draws, fixed seed)."""
    rng = random.Random(seed)
    low, high = float(constraint.min_constraint), float(constraint.max_constraint)
    width = (high - low) / count
    picked: Dict[int, Dict[str, Any]] = {}
    for _ in range(5000):
        tokens = [rng.randrange(n) for n in task.space.range_table()]
        flops = constraint.measure(task.measurable(task.build(tokens)), task.input_shape).flops
        if low <= flops <= high:
            picked.setdefault(min(int((flops - low) / width), count - 1), {"tokens": tokens, "flops": flops})
        if len(picked) == count:
            break
    return [picked[b] for b in sorted(picked)]


def scratch_stage(data_dir: str, count: int) -> Dict[str, Any]:
    """Train each picked subnet from scratch, caching every result as soon as it is known."""
    cache = json.loads(SCRATCH_CACHE.read_text()) if SCRATCH_CACHE.exists() else {"subnets": []}
    overrides = [f"TrainDataset.dataset_dir={data_dir}", f"EvalDataset.dataset_dir={data_dir}"]
    cfg = with_search_defaults(merge(load_config(DETECTION_DEMO), parse_overrides(overrides)))
    task = BlazeFaceTask(cfg)
    if not cache["subnets"]:
        cache = {
            "max_iters": task.max_iters,
            "subnets": spread_subnets(
                task, Constraint.from_config(cfg["Constraint"], cfg), count, seed=int(cfg["seed"])
            ),
        }
    for subnet in cache["subnets"]:
        if "scratch_ap" in subnet:
            continue
        seed_everything(int(cfg["seed"]))
        start = time.perf_counter()
        subnet["scratch_ap"] = task.train_and_evaluate(task.build(subnet["tokens"]))
        subnet["train_seconds"] = time.perf_counter() - start
        RESULTS.mkdir(exist_ok=True)
        SCRATCH_CACHE.write_text(json.dumps(cache, indent=2) + "\n")
        print(f"scratch {subnet['tokens']}: AP {subnet['scratch_ap']:.4f} in {subnet['train_seconds']:.0f} s")
    return cache


def oneshot_stage(data_dir: str, work: str, cache: Dict[str, Any], reuse: Optional[str]) -> Dict[str, Any]:
    """Train the supernet once (or reuse a finished demo run's), then evaluate each cached subnet."""
    from ppnas.oneshot.checkpoint import Checkpoint
    from ppnas.oneshot.evaluate import SupernetEvaluator
    from ppnas.oneshot.settings import load_oneshot_config
    from ppnas.oneshot.train import train_supernet

    overrides = [
        f"TrainDataset.dataset_dir={data_dir}",
        f"EvalDataset.dataset_dir={data_dir}",
        f"save_dir={reuse or work + '/bignas'}",
    ]
    cfg = load_oneshot_config(BIGNAS_DEMO, overrides)
    state = Checkpoint.of(cfg).state()
    if state is None or state["iteration"] < int(cfg["max_iters"]):
        train_supernet(cfg, resume=state is not None, quiet=True)
        state = Checkpoint.of(cfg).state()
    supernet_seconds = float(state["train_seconds"])
    evaluator = SupernetEvaluator.from_checkpoint(cfg)
    eval_seconds = []
    for subnet in cache["subnets"]:
        start = time.perf_counter()
        subnet["inherited_ap"] = evaluator.evaluate(subnet["tokens"])
        eval_seconds.append(time.perf_counter() - start)
    tau = kendalltau([s["inherited_ap"] for s in cache["subnets"]], [s["scratch_ap"] for s in cache["subnets"]])
    eval_per_subnet = sum(eval_seconds) / len(eval_seconds)
    train_per_candidate = sum(s["train_seconds"] for s in cache["subnets"]) / len(cache["subnets"])
    return {
        "kendall_tau": float(tau.statistic),
        "kendall_p_value": float(tau.pvalue),
        "eval_seconds_per_subnet": eval_per_subnet,
        "train_seconds_per_candidate": train_per_candidate,
        "speedup": train_per_candidate / eval_per_subnet,
        "supernet_train_seconds": supernet_seconds,
        "supernet_iters": int(cfg["max_iters"]),
        "scratch_max_iters": cache["max_iters"],
        "calib_batches": int(cfg["calib_batches"]),
        "subnets": cache["subnets"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["detection", "segmentation"], default="detection")
    parser.add_argument("--subnets", type=int, default=8)
    parser.add_argument("--stage", choices=["scratch", "all"], default="all")
    parser.add_argument("--reuse", default=None, help="save_dir of a finished train_supnet run of the demo config")
    args = parser.parse_args()
    if args.task == "segmentation":
        from seg_ranking import segmentation_ranking

        with handled():  # SIGTERM stops it like Ctrl-C: the finished runs are cached
            result = segmentation_ranking(args.subnets, args.stage, args.reuse)
        if result is not None:
            save_result("oneshot_ranking_segmentation", result)
        return
    work = tempfile.mkdtemp(prefix="ppnas_oneshot_rank_")
    data_dir = f"{work}/wider"
    make_wider_demo(data_dir)  # the demo set: the same files every time (fixed seed)
    cache = scratch_stage(data_dir, args.subnets)
    if args.stage == "scratch":
        return
    result = oneshot_stage(data_dir, work, cache, args.reuse)
    result["machine"] = {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    save_result("oneshot_ranking", result)


if __name__ == "__main__":
    main()
