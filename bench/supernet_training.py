"""The ranking benchmarks' supernet (bench/det_ranking.py, bench/seg_ranking.py): trained to its config's
max_iters in `save_dir`, resumed when a run was cut short, its thread CPU time summed over every piece in
`save_dir`/bench_cpu_seconds.json so `break_even_subnets` counts the whole training."""

import json
import pathlib
import time
from typing import Any, Dict, Mapping

from ppnas.oneshot.checkpoint import Checkpoint

CPU_FILE = "bench_cpu_seconds.json"


def supernet_cpu_seconds(cfg: Mapping[str, Any], more: float = 0.0) -> float:
    """The supernet's training CPU seconds so far, plus `more` (written back when more were spent)."""
    path = pathlib.Path(cfg["save_dir"]) / CPU_FILE
    spent = json.loads(path.read_text())["cpu_seconds"] if path.exists() else 0.0
    if more:
        path.parent.mkdir(parents=True, exist_ok=True)  # a run killed before its first checkpoint still counts
        path.write_text(json.dumps({"cpu_seconds": spent + more}) + "\n")
    return spent + more


def train_counted(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The supernet's checkpoint state once trained to max_iters (resumed when cut short)."""
    from ppnas.oneshot.train import train_supernet

    state = Checkpoint.of(cfg).state()
    if state is None or state["iteration"] < int(cfg["max_iters"]):
        start = time.thread_time()
        try:
            train_supernet(cfg, resume=state is not None, quiet=True)
        finally:  # a killed piece was spent too: the next run resumes from its last checkpoint
            supernet_cpu_seconds(cfg, time.thread_time() - start)
    return Checkpoint.of(cfg).state()
