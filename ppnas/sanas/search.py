"""THE SANAS search: PaddleSlim's simulated annealing proposes token lists, each candidate is trained from scratch.

One candidate, from tokens to reward (the engine's loop, ppnas/engine/loop.py, runs these steps for it):
  tokens    the annealing controller (ppnas/samplers/annealing.py; or the controller server's, through
            ppnas/samplers/remote.py) mutates one token of the current best-so-far tokens, never repeating a list
  model     the task decodes them (search_space/) and builds a real PaddleDetection BlazeFace or PaddleSeg
            DeepLabV3+ (ppnas/tasks/detection.py, segmentation.py)
  measure   the shared Constraint (ppnas/constraint.py) measures FLOPs, params or table latency BEFORE training;
            outside the window the candidate is recorded "rejected" and another is drawn (no step used)
  reward    the task trains it for max_iters (SLIM.* epochs) with the framework's reader, loss and optimizer
            and evaluates AP@0.5 (mIoU): `task.train_and_evaluate`
  record    history.jsonl gets the candidate's line, then the controller learns the reward and checkpoints
The best candidate's config fragment and weights are exported as it appears; report.md and the figures are
written at the end (ppnas/report/).
"""

from ppnas.constraint import Constraint
from ppnas.engine.options import SearchOptions
from ppnas.engine.protocols import SearchResult, Task
from ppnas.engine.runner import run_task


def run_sanas(task: Task, options: SearchOptions, constraint: Constraint) -> SearchResult:
    """Run (or resume, with options.resume_dir) a SANAS search of `task`: the annealing sampler, candidates
    trained by the task itself."""
    options.sampler = "sanas"
    return run_task(task, options, constraint)
