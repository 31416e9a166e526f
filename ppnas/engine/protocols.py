"""What the candidate loop talks to: a Task (evaluation side), a Controller (sampler), SearchObservers.

Every strategy that draws token lists plugs into these: SANAS (a Task that trains each candidate, the annealing
Controller), the one-shot search (a Task whose reward is the inherited accuracy, any Controller).
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence

import paddle

from ppnas.history import CandidateRecord

IterCallback = Callable[[int, int, float], None]  # (iteration, total iterations, loss)


class Task(Protocol):
    """The evaluation side of a search: one per product (BlazeFace detection, DeepLabV3+ segmentation)."""

    kind: str  # "detection" | "segmentation": the report's reward name and the export family
    space_name: str
    space: Any  # the SearchSpaceBase: init_tokens(), range_table(), token2arch()
    input_shape: List[int]

    def decode(self, tokens: Sequence[int]) -> Dict[str, Any]: ...

    def build(self, tokens: Sequence[int]) -> paddle.nn.Layer: ...

    def measurable(self, model: paddle.nn.Layer) -> paddle.nn.Layer: ...

    def train_and_evaluate(self, model: paddle.nn.Layer, on_iter: Optional[IterCallback]) -> float: ...

    def export(self, tokens: Sequence[int], model: paddle.nn.Layer, save_dir: str) -> List[str]: ...

    def summary(self, tokens: Sequence[int]) -> str: ...


def measure_shape(task: Task, tokens: Sequence[int]) -> List[int]:
    """The input a candidate is measured at: the task's `input_shape`, or the candidate's own when the task
    searches the input resolution too (a one-shot task's `measure_shape`)."""
    own = getattr(task, "measure_shape", None)
    return list(own(tokens)) if own is not None else list(task.input_shape)


class Controller(Protocol):
    """What the loop needs from a sampler (ppnas/samplers/)."""

    def next_tokens(self) -> List[int]: ...

    def recorded(self, record: CandidateRecord) -> None:
        """The loop appended `record` (trained, rejected or failed) to its history: learn from it and keep it.

        Called after the history line is written, so a kill before it returns is replayed on resume."""

    def info(self) -> Dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass
class SearchResult:
    steps_done: int
    best: Optional[Dict[str, Any]]
    exported: List[str]


class SearchObserver:
    """Hooks for progress bars, VisualDL and logs. Every method is optional."""

    def on_start(self, total_steps: int, done_steps: int) -> None: ...

    def on_iter(self, iteration: int, total: int, loss: float) -> None: ...

    def on_candidate(self, record: CandidateRecord, info: Dict[str, Any]) -> None: ...

    def on_end(self, result: SearchResult) -> None: ...
