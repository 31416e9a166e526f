"""THE search over a trained supernet (`--phase search`): subnets ranked by inherited accuracy under the Constraint.

The engine's candidate loop (ppnas/engine/loop.py) runs it, as it runs SANAS: the sampler of `search_mode`
(ppnas/samplers/: `random`, `traverse`, or `sanas`, the annealing) draws tokens, the supernet builds the subnet's
plain model (PaddleDetection's BlazeFace, PaddleSeg's DeepLabV3P, or the plain copy of a user's supernet), the
shared Constraint measures it at the subnet's own input size and admits or rejects it BEFORE any evaluation,
every subnet goes to history.jsonl in the candidate record format and the best is exported (fragment + sliced
weights), so `tools/report.py` works unchanged. Only the reward differs: `SupernetTask.train_and_evaluate`
(ppnas/oneshot/evaluate.py) calibrates BN on the subnet and takes the task's metric with inherited weights.
"""

from typing import Any, Mapping, Optional

from ppnas.constraint import Constraint
from ppnas.engine.options import SearchOptions, search_options
from ppnas.engine.protocols import SearchResult
from ppnas.engine.runner import run_task
from ppnas.oneshot.evaluate import SupernetEvaluator, SupernetTask


def supernet_task(cfg: Mapping[str, Any], phase: str) -> SupernetTask:
    return SupernetTask(SupernetEvaluator.from_checkpoint(cfg, phase))


def run_subnet_sampling(
    task: SupernetTask,
    cfg: Mapping[str, Any],
    config_path: str,
    constraint: Constraint,
    args: Any,
    sampler: str,
    save_dir: str,
    resume_dir: Optional[str] = None,
) -> SearchResult:
    """`subnet_count` subnets of `sampler` inside the constraint's window, into `save_dir`'s history."""
    options = subnet_search_options(task, cfg, config_path, args, sampler, save_dir, resume_dir)
    return run_task(task, options, constraint)


def subnet_search_options(
    task: SupernetTask,
    cfg: Mapping[str, Any],
    config_path: str,
    args: Any,
    sampler: str,
    save_dir: str,
    resume_dir: Optional[str],
) -> SearchOptions:
    """The search options of a search over the supernet: `subnet_count` subnets of `sampler` into `save_dir`."""
    return search_options(
        cfg,
        config_path,
        task.kind,
        args,
        space_name=task.space_name,
        init_tokens=task.space.init_tokens(),
        search_steps=int(cfg["subnet_count"]),
        save_dir=save_dir,
        resume_dir=resume_dir,
        sampler=sampler,
        traverse_stride=int(cfg["traverse_stride"]),
    )


def run_supernet_search(
    cfg: Mapping[str, Any], constraint: Constraint, config_path: str, args: Any, resume_dir: Optional[str] = None
) -> SearchResult:
    """Rank `subnet_count` subnets inside the Constraint window (resumes with `resume_dir`)."""
    task = supernet_task(cfg, "search")
    return run_subnet_sampling(
        task, cfg, config_path, constraint, args, cfg["search_mode"], cfg["save_dir"], resume_dir
    )
