"""What an inherited evaluation costs now, against the evaluator before issue 19 (same supernet, same subnets).

Before, BN calibration recomputed each batch's variance with `x.var` (about ten times a `x.mean`) and fetched
the calibration batches through the reader for every subnet; now the dynamic BatchNorm takes the batch-norm
kernel's own statistics and the calibration batches are fetched once. Both evaluate the same subnets of one
supernet (trained here on the demo set, or `--reuse` a demo save_dir) on the same data: the reference is the
code of commit REFERENCE_COMMIT (`git archive` into a temporary folder, run in a subprocess), timed the same way
(thread CPU time per subnet, calibration + evaluation, after one warm-up subnet).

Usage: python bench/oneshot_eval_cost.py [--subnets 8] [--iters 40] [--reuse output/blazeface_bignas_demo]
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Any, Dict, List

from common import machine, save_result

from ppnas.demo.wider import make_wider_demo

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE_COMMIT = "24d9a1b"  # main before issue 19
CONFIG = "configs/demo/blazeface_bignas_demo.yml"

# run in the reference tree: the evaluator of that commit, thread CPU time per subnet
REFERENCE_SCRIPT = """
import ppnas, json, sys, time
from ppnas.oneshot.settings import load_bignas_config
from ppnas.oneshot.evaluate import SupernetEvaluator
config, overrides, tokens = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
evaluator = SupernetEvaluator.from_checkpoint(load_bignas_config(config, overrides))
out = []
for t in tokens:
    start = time.thread_time()
    ap = evaluator.evaluate(t)
    out.append({"tokens": t, "ap": ap, "cpu_seconds": time.thread_time() - start})
print(json.dumps(out))
"""


def reference_tree(folder: str) -> str:
    """The project at REFERENCE_COMMIT, extracted from git."""
    archive = os.path.join(folder, "reference.tar")
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", archive, REFERENCE_COMMIT], check=True)
    tree = os.path.join(folder, "reference")
    with tarfile.open(archive) as tar:
        tar.extractall(tree)
    return tree


def evaluate_now(config: str, overrides: List[str], tokens: List[List[int]]) -> List[Dict[str, Any]]:
    from ppnas.oneshot.evaluate import SupernetEvaluator
    from ppnas.oneshot.settings import load_oneshot_config

    evaluator = SupernetEvaluator.from_checkpoint(load_oneshot_config(config, overrides))
    out = []
    for t in tokens:
        start = time.thread_time()
        ap = evaluator.evaluate(t)
        out.append({"tokens": t, "ap": ap, "cpu_seconds": time.thread_time() - start})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subnets", type=int, default=8)
    parser.add_argument("--iters", type=int, default=40, help="supernet iterations when not reusing one")
    parser.add_argument("--reuse", default=None, help="save_dir of a finished train_supnet run of the demo config")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ppnas_eval_cost_") as work:
        result = measure(args, work)
    result["machine"] = {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    save_result("oneshot_eval_cost", result)


def measure(args: argparse.Namespace, work: str) -> Dict[str, Any]:
    data = f"{work}/wider"
    make_wider_demo(data)  # the demo set: the same files every time (fixed seed)
    save_dir = args.reuse or f"{work}/bignas"
    overrides = [f"TrainDataset.dataset_dir={data}", f"EvalDataset.dataset_dir={data}", f"save_dir={save_dir}"]
    if not args.reuse:
        from ppnas.oneshot.settings import load_oneshot_config
        from ppnas.oneshot.train import train_supernet

        train_supernet(load_oneshot_config(str(ROOT / CONFIG), [*overrides, f"max_iters={args.iters}"]), quiet=True)
    ranges = [6, 8, 12, 12, 6, 6, 6, 6, 1]  # BlazeFaceNasSpace with the demo's kernel_choices [3]
    rng = random.Random(0)
    tokens = [[rng.randrange(n) for n in ranges] for _ in range(args.subnets + 1)]  # the first one warms up
    tree = reference_tree(work)
    env = {**os.environ, "PYTHONPATH": tree}
    proc = subprocess.run(
        [sys.executable, "-c", REFERENCE_SCRIPT, os.path.join(tree, CONFIG), json.dumps(overrides), json.dumps(tokens)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"the reference evaluator failed:\n{proc.stderr[-3000:]}")
    reference = json.loads(proc.stdout.strip().splitlines()[-1])[1:]
    now = evaluate_now(str(ROOT / CONFIG), overrides, tokens)[1:]
    per_ref = sum(r["cpu_seconds"] for r in reference) / len(reference)
    per_now = sum(r["cpu_seconds"] for r in now) / len(now)
    return {
        "subnets": len(now),
        "cpu_seconds_per_subnet_reference": per_ref,
        "cpu_seconds_per_subnet": per_now,
        "speedup": per_ref / per_now,
        "max_ap_difference": max(abs(a["ap"] - b["ap"]) for a, b in zip(reference, now)),
        "reference_commit": REFERENCE_COMMIT,
        "evaluations": [
            {
                "tokens": a["tokens"],
                "ap_reference": a["ap"],
                "ap": b["ap"],
                "cpu_reference": a["cpu_seconds"],
                "cpu": b["cpu_seconds"],
            }
            for a, b in zip(reference, now)
        ],
        "supernet": args.reuse or f"trained here for {args.iters} iterations",
    }


if __name__ == "__main__":
    main()
