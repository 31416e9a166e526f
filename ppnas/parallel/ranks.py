"""The search loop's parts as each rank of a data-parallel group sees them (`python -m paddle.distributed.launch`).

Every rank runs the same `run_search` loop; these views keep the ranks in step:
- the controller and the history exist on rank 0 only; their answers (tokens, records on resume, "search
  finished", errors) reach the other ranks by broadcast, so every rank trains the same candidates;
- the constraint is measured once, on rank 0, and its measurement (hence the decision) is broadcast;
- every rank trains the candidate on its shard and evaluates it (the task makes the models equal first);
  the reward the loop goes on with is rank 0's, broadcast; only rank 0 exports the best model.
With one process `rank_views` returns the parts unchanged.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import paddle

from ppnas import parallel
from ppnas.constraint import Constraint, Measurement
from ppnas.engine.protocols import Controller, IterCallback, Task
from ppnas.errors import ParallelError
from ppnas.history import CandidateRecord, History


class GroupController:
    """Rank 0's controller, asked on rank 0 and answered on every rank."""

    def __init__(self, inner: Optional[Controller]) -> None:
        self.inner = inner  # None on ranks > 0

    def next_tokens(self) -> List[int]:
        return parallel.on_main(lambda: self.inner.next_tokens(), "waiting for the controller's next tokens")

    def recorded(self, record: CandidateRecord) -> None:
        parallel.on_main(lambda: self.inner.recorded(record), "handing the record to the controller")

    def info(self) -> Dict[str, Any]:
        return parallel.on_main(lambda: self.inner.info(), "asking the controller for its state")

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class GroupHistory:
    """Rank 0's history.jsonl: read on rank 0 for every rank, written by rank 0 alone."""

    def __init__(self, inner: Optional[History]) -> None:
        self.inner = inner

    def read(self) -> List[Dict[str, Any]]:
        return parallel.on_main(lambda: self.inner.read(), "reading the history")

    def append(self, record: CandidateRecord) -> None:
        if self.inner is not None:
            self.inner.append(record)


class GroupConstraint:
    """The constraint, measured on rank 0 only; every rank gets the measurement and so the same decision."""

    def __init__(self, inner: Constraint) -> None:
        self.inner = inner

    def measure(self, layer: paddle.nn.Layer, input_shape: Sequence[int]) -> Measurement:
        return parallel.on_main(
            lambda: self.inner.measure(layer, input_shape), "measuring the candidate", keepalive=False
        )

    def measure_by(self, price: Callable[[Constraint], Measurement]) -> Measurement:
        return parallel.on_main(lambda: self.inner.measure_by(price), "measuring the candidate", keepalive=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class GroupTask:
    """The task on every rank: training is data-parallel, the reward is rank 0's, only rank 0 exports."""

    def __init__(self, inner: Task) -> None:
        self.inner = inner

    def train_and_evaluate(self, model: paddle.nn.Layer, on_iter: Optional[IterCallback]) -> float:
        try:
            reward = self.inner.train_and_evaluate(model, on_iter)
        except ParallelError:
            raise
        except Exception:
            # every rank fails a candidate together (the loss is averaged over the ranks); a collective
            # that fails here means a rank is gone, which ends the run (ParallelError) instead
            parallel.broadcast(None, what="checking the group after a failed candidate")
            raise
        return parallel.broadcast(reward, what="sharing the reward")

    def export(self, tokens: Sequence[int], model: paddle.nn.Layer, save_dir: str) -> List[str]:
        return self.inner.export(tokens, model, save_dir) if parallel.is_main() else []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def rank_views(
    task: Task, controller: Optional[Controller], constraint: Constraint, history: Optional[History]
) -> Tuple[Task, Controller, Constraint, History]:
    """The parts `run_search` takes, as this rank must see them (unchanged without launch)."""
    if parallel.world_size() <= 1:
        return task, controller, constraint, history
    return GroupTask(task), GroupController(controller), GroupConstraint(constraint), GroupHistory(history)
