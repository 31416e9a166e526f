"""`--phase sample_accuracy` (United-Perception's sample_multiple_subnet_accuracy): `subnet_count` random subnets
inside `flops_range` (or the Constraint's window), each BN-calibrated and evaluated with inherited weights, then
the Pareto front (accuracy against FLOPs) and the top-k at the baseline's FLOPs.

The subnets are drawn and recorded by the one-shot search's loop with the random sampler, into
`<save_dir>/sample_accuracy/` (its history.jsonl, report.md and pareto.png; `-r SAVE_DIR` resumes it). The
baseline is `baseline_flops` when given, else the baseline subnet (the supernet's: BlazeFaceNasSpace's init tokens,
stock MobileNetV2), measured and evaluated the same way. `sample_accuracy.json` holds every subnet, the front,
the top-k (at most 1% more FLOPs than the baseline, as United-Perception ranks them) and the subnets that beat
the baseline subnet at no more FLOPs.
"""

import os
from typing import Any, Dict, List, Mapping, Optional

from ppnas.constraint import Constraint
from ppnas.history import History
from ppnas.oneshot.evaluate import SupernetTask
from ppnas.oneshot.search import run_subnet_sampling, supernet_task
from ppnas.oneshot.subnet import measured_subnet
from ppnas.report.selection import pareto_front, top_candidates
from ppnas.storage import atomic_write_json

SAMPLE_ACCURACY_DIR = "sample_accuracy"
SAMPLE_ACCURACY_JSON = "sample_accuracy.json"
TOP_K = 10
BASELINE_MARGIN = 1.01  # United-Perception's top-10 keeps subnets with (flops - baseline) / baseline < 0.01


def accuracy_window(cfg: Mapping[str, Any], constraint: Constraint) -> Constraint:
    """flops_range as a FLOPs window; without it, the config's Constraint."""
    if cfg["flops_range"] is None:
        return constraint
    low, high = cfg["flops_range"]
    return Constraint(ctype="flops", min_constraint=low, max_constraint=high)


def _baseline(task: SupernetTask, cfg: Mapping[str, Any], constraint: Constraint) -> Dict[str, Any]:
    if cfg["baseline_flops"] is not None:
        return {"flops": float(cfg["baseline_flops"]), "reward": None, "tokens": None}
    tokens = task.space.init_tokens()
    model = task.build(tokens)
    measured = measured_subnet(task, constraint, tokens)
    return {**measured, "reward": task.train_and_evaluate(model)}


def _row(record: Mapping[str, Any]) -> Dict[str, Any]:
    keys = ("tokens", "flops", "params", "latency_ms", "reward")
    return {
        **{k: record.get(k) for k in keys},
        "subnet_settings": record["structure"].get("subnet_settings"),
        "image_size": record["structure"].get("image_size"),
    }


def sample_accuracy(
    cfg: Mapping[str, Any], constraint: Constraint, config_path: str, args: Any, resume: bool
) -> Dict[str, Any]:
    """Evaluate `subnet_count` random subnets inside the window; the summary sample_accuracy.json holds."""
    save_dir = os.path.join(cfg["save_dir"], SAMPLE_ACCURACY_DIR)
    task = supernet_task(cfg, "sample_accuracy")
    window = accuracy_window(cfg, constraint)
    run_subnet_sampling(task, cfg, config_path, window, args, "random", save_dir, save_dir if resume else None)
    records = History.in_dir(save_dir).trained()
    baseline = _baseline(task, cfg, window)
    budget = baseline["flops"] * BASELINE_MARGIN
    at_budget: List[Dict[str, Any]] = [r for r in records if r["flops"] < budget]
    better: Optional[List[Dict[str, Any]]] = None
    if baseline["reward"] is not None:
        better = [_row(r) for r in at_budget if r["reward"] > baseline["reward"] and r["flops"] <= baseline["flops"]]
    summary = {
        "subnets": len(records),
        "window": window.window_text(),
        "metric": task.adapter.metric,
        "baseline": {k: baseline.get(k) for k in ("tokens", "flops", "params", "latency_ms", "reward")},
        "pareto": [_row(r) for r in pareto_front(records, "flops")],
        "top": [_row(r) for r in top_candidates(at_budget, TOP_K, "flops")],
        "better_than_baseline": better,
        "all": [_row(r) for r in records],
    }
    atomic_write_json(os.path.join(save_dir, SAMPLE_ACCURACY_JSON), summary)
    return {k: v for k, v in summary.items() if k != "all"}
