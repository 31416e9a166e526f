"""THE search over a trained supernet (`--phase search`): subnets ranked by inherited AP under the Constraint.

The engine's candidate loop (ppnas/engine/loop.py) runs it, as it runs SANAS: the sampler of `search_mode`
(ppnas/samplers/: `random`, `traverse`, or `sanas`, the annealing) draws tokens, the detection task builds
PaddleDetection's BlazeFace at them, the shared Constraint admits or rejects it BEFORE any evaluation, every
subnet goes to history.jsonl in the detection search's format and the best is exported (fragment + sliced
weights), so `tools/report.py` works unchanged. Only the reward differs: `SupernetTask.train_and_evaluate`
(ppnas/oneshot/evaluate.py) calibrates BN on the subnet and takes AP@0.5 with inherited weights.
"""

from typing import Any, Mapping, Optional

from ppnas.constraint import Constraint
from ppnas.engine.options import search_options
from ppnas.engine.protocols import SearchResult
from ppnas.engine.runner import run_task
from ppnas.oneshot.evaluate import SupernetEvaluator, SupernetTask


def run_supernet_search(
    cfg: Mapping[str, Any], constraint: Constraint, config_path: str, args: Any, resume_dir: Optional[str] = None
) -> SearchResult:
    """Rank `subnet_count` subnets inside the Constraint window (resumes with `resume_dir`)."""
    task = SupernetTask(SupernetEvaluator.from_checkpoint(cfg, "search"))
    options = search_options(
        cfg,
        config_path,
        task.kind,
        args,
        search_steps=int(cfg["subnet_count"]),
        resume_dir=resume_dir,
        sampler=cfg["search_mode"],
        traverse_stride=int(cfg["traverse_stride"]),
    )
    return run_task(task, options, constraint)
