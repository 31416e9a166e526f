"""Long SANAS searches under a constraint: the annealing leaves a used-up neighbourhood instead of dying, and
`max_rejects` counts rejected draws in a row and says to widen the window.

The loop, controller, constraint and history are the real ones, over the BlazeFace range table. Each candidate
is a real (tiny) Paddle layer whose parameter count the constraint measures; the reward is a smooth function of
the tokens, so that 300 rewarded steps take a second instead of 300 trainings.
"""

import ppnas  # noqa: F401  # isort: skip
import logging
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence

import paddle
import pytest

from ppnas.constraint import Constraint
from ppnas.engine.loop import SearchSettings, run_search
from ppnas.errors import ConstraintError
from ppnas.history import History
from ppnas.samplers.annealing import LocalController

RANGE = [7, 9, 12, 12, 6, 6, 6, 6, 2]  # BlazeFaceNasSpace with kernel_choices [3, 5]
INIT = [2, 1, 3, 8, 2, 1, 2, 1, 1]
PEAK = [4, 6, 9, 4, 3, 5, 1, 2, 0]


def smooth_reward(tokens: Sequence[int]) -> float:
    """In (0, 1], highest at PEAK, falling off with the scaled squared distance to it."""
    return 1.0 / (1.0 + sum(((t - p) / r) ** 2 for t, p, r in zip(tokens, PEAK, RANGE)))


class WidthTask:
    """A candidate is `paddle.nn.Linear(1, width(tokens))`, 2 * width parameters, for a params window."""

    space_name = "BlazeFaceNasSpace"
    input_shape = [1, 1]

    def __init__(self, width: Callable[[Sequence[int]], int]) -> None:
        self.width = width

    def decode(self, tokens: Sequence[int]) -> Dict[str, Any]:
        return {"tokens": list(tokens)}

    def build(self, tokens: Sequence[int]) -> paddle.nn.Layer:
        layer = paddle.nn.Linear(1, self.width(tokens))
        layer.tokens = list(tokens)
        return layer

    def measurable(self, model: paddle.nn.Layer) -> paddle.nn.Layer:
        return model

    def train_and_evaluate(self, model: paddle.nn.Layer, on_iter: Optional[Callable]) -> float:
        return smooth_reward(model.tokens)

    def export(self, tokens: Sequence[int], model: paddle.nn.Layer, save_dir: str) -> List[str]:
        return []

    def summary(self, tokens: Sequence[int]) -> str:
        return str(list(tokens))


def third_rejected(tokens: Sequence[int]) -> int:
    """Width 1, 2 or 3, spread over the token lists like a hash: a window of at most 4 params rejects a third."""
    return 1 + zlib.crc32(str(list(tokens)).encode()) % 3


def far_from_init(tokens: Sequence[int]) -> int:
    """Width 1 within one token of INIT, 3 farther away: a window of at least 4 params rejects all 58 near ones."""
    return 1 if sum(t != i for t, i in zip(tokens, INIT)) <= 1 else 3


def _search(tmp_path, width, constraint, steps, max_rejects=500, controller=None, checkpoints=True):
    controller = controller or LocalController(
        RANGE,
        INIT,
        init_temperature=10.24,
        reduce_rate=0.85,
        seed=0,
        checkpoint_dir=str(tmp_path) if checkpoints else None,
    )
    history = History.in_dir(str(tmp_path))
    settings = SearchSettings(search_steps=steps, save_dir=str(tmp_path), seed=None, max_rejects=max_rejects)
    result = run_search(WidthTask(width), controller, constraint, history, settings)
    return result, history.read()


def test_300_steps_with_a_third_of_the_draws_rejected_finish(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ppnas.samplers.annealing")
    window = Constraint("params", max_constraint=4)
    # no checkpoints: 900 fsyncs would double the time; the resume tests cover them
    result, records = _search(tmp_path, third_rejected, window, steps=300, checkpoints=False)
    trained = [r for r in records if r["status"] == "trained"]
    rejected = [r for r in records if r["status"] == "rejected"]
    assert result.steps_done == 300 and [r["step"] for r in trained] == list(range(1, 301))
    assert 0.25 < len(rejected) / len(records) < 0.42
    assert len({str(r["tokens"]) for r in records}) == len(records), "a token list was drawn twice"
    assert all(r["params"] > 4 for r in rejected) and all(r["params"] <= 4 for r in trained)
    escapes = [m for m in caplog.messages if "within one token of the current tokens" in m]
    assert escapes, "the neighbourhood never ran out: the test no longer covers the long-search case"
    assert result.best["reward"] > smooth_reward(INIT)


def test_a_window_that_rejects_every_neighbour_of_the_start_does_not_end_the_search(tmp_path):
    result, records = _search(tmp_path, far_from_init, Constraint("params", min_constraint=4), steps=5)
    rejected = [r for r in records if r["status"] == "rejected"]
    assert result.steps_done == 5
    assert len(rejected) == 58  # INIT and its 57 one-token neighbours, then farther lists, all admitted
    assert all(sum(t != i for t, i in zip(r["tokens"], INIT)) >= 2 for r in records if r["status"] == "trained")


def test_an_impossible_window_ends_with_the_max_rejects_message(tmp_path):
    constraint = Constraint("params", max_constraint=1)  # every candidate has 2, 4 or 6 params
    with pytest.raises(ConstraintError) as stop:
        _search(tmp_path, third_rejected, constraint, steps=3, max_rejects=70)
    assert str(stop.value) == (
        "no candidate met the constraint params in [-inf, 1] params in 70 draws in a row; "
        "the values seen were in [2, 6]: widen the window"
    )


def test_rejections_in_a_row_are_counted_across_a_resume(tmp_path):
    constraint = Constraint("params", max_constraint=1)
    with pytest.raises(ConstraintError, match="in 40 draws in a row"):
        _search(tmp_path, third_rejected, constraint, steps=3, max_rejects=40)
    resumed = LocalController(RANGE, INIT, init_temperature=10.24, reduce_rate=0.85, checkpoint_dir=str(tmp_path))
    resumed.load(str(tmp_path))
    with pytest.raises(ConstraintError, match="in 70 draws in a row"):
        _search(tmp_path, third_rejected, constraint, steps=3, max_rejects=70, controller=resumed)
    assert len(History.in_dir(str(tmp_path)).read()) == 70  # 30 more draws, not 70 more
