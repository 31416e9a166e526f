"""The three one-shot search modes on ONE trained supernet (`-o supernet_dir=`): random, traverse, sanas.

Usage: python bench/oneshot_modes.py --supernet output/blazeface_bignas_demo [--subnets 40] [--work output/modes]
Each mode runs `tools/bignas.py --phase search` into its own save_dir, as a user would, with the demo config's
window; the result per mode: subnets evaluated, draws rejected by the constraint, the best inherited AP with its
tokens and MFLOPs, and the CPU seconds of the search (process CPU time of the child). A mode whose save_dir
already holds a finished search is read, not run again.
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import json
import os
import resource
import subprocess
import sys
from typing import Any, Dict, List, Optional

from common import RESULTS, machine, save_result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "demo", "blazeface_bignas_demo.yml")
MODES = ("random", "traverse", "sanas")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_mode(mode: str, supernet: str, subnets: int, work: str) -> Dict[str, Any]:
    save_dir = os.path.join(work, mode)
    history = os.path.join(save_dir, "history.jsonl")
    cpu = None
    if not os.path.isfile(history):
        before = children_cpu_seconds()
        overrides = [
            f"supernet_dir={supernet}",
            f"search_mode={mode}",
            f"save_dir={save_dir}",
            f"subnet_count={subnets}",
        ]
        command = [sys.executable, os.path.join(ROOT, "tools", "bignas.py"), "-c", CONFIG, "--phase", "search"]
        subprocess.run([*command, "--quiet", "-o", *overrides], check=True, cwd=ROOT)
        cpu = children_cpu_seconds() - before
    with open(history, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    trained = [r for r in records if r["status"] == "trained"]
    best = max(trained, key=lambda r: r["reward"])
    return {
        "evaluated": len(trained),
        "rejected": sum(r["status"] == "rejected" for r in records),
        "best_ap": best["reward"],
        "best_tokens": best["tokens"],
        "best_mflops": best["flops"] / 1e6,
        "mean_ap": sum(r["reward"] for r in trained) / len(trained),
        "cpu_seconds": cpu,
        "save_dir": save_dir,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", required=True, help="save_dir (or supernet/ folder) of a trained demo supernet")
    parser.add_argument("--subnets", type=int, default=40, help="subnets inside the window per mode")
    parser.add_argument("--work", default=os.path.join(ROOT, "output", "oneshot_modes"))
    args = parser.parse_args(argv)
    modes = {mode: run_mode(mode, os.path.abspath(args.supernet), args.subnets, args.work) for mode in MODES}
    save_result("oneshot_modes", {"machine": machine(), "config": CONFIG, "subnets": args.subnets, "modes": modes})
    return 0


if __name__ == "__main__":
    RESULTS.mkdir(exist_ok=True)
    sys.exit(main())
