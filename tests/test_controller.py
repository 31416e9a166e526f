"""LocalController: PaddleSlim's SAController with fixes for rewards < -1, exhaustion, RNG and checkpoints."""

import ppnas  # noqa: F401  # isort: skip
import json
import logging

import numpy as np
import pytest

from ppnas.errors import ControllerError
from ppnas.history import CandidateRecord
from ppnas.samplers.annealing import PPNAS_STATE, SANAS_CHECKPOINT, LocalController

RANGE = [7, 9, 12, 12, 6, 6, 6, 6, 2]
INIT = [2, 1, 3, 8, 2, 1, 2, 1, 1]


def test_rewards_below_minus_one_are_tracked_as_best():
    controller = LocalController(RANGE, INIT, seed=0)
    first = controller.next_tokens()
    controller.reward(first, -5.0, 1)
    second = controller.next_tokens()
    controller.reward(second, -3.0, 2)
    info = controller.info()
    assert info["best_reward"] == -3.0
    assert info["best_tokens"] == second


def test_same_seed_same_tokens_whatever_else_uses_numpy():
    def draw(seed, disturb):
        controller = LocalController(RANGE, INIT, seed=seed)
        tokens = []
        for step in range(1, 6):
            if disturb:
                np.random.seed(step * 7)
                np.random.random(100)  # training draws from the global RNG between candidates
            t = controller.next_tokens()
            controller.reward(t, 0.1 * step, step)
            tokens.append(t)
        return tokens

    assert draw(3, disturb=False) == draw(3, disturb=True)
    assert draw(3, disturb=False) != draw(4, disturb=False)


def test_checkpoint_round_trip_continues_the_same_way(tmp_path):
    a = LocalController(RANGE, INIT, seed=5, checkpoint_dir=str(tmp_path))
    for step in (1, 2):
        tokens = a.next_tokens()
        a.recorded(CandidateRecord(tokens, "trained", step=step, reward=0.2 * step))
    b = LocalController(RANGE, INIT, seed=99)
    b.load(str(tmp_path))
    assert b.holds({"tokens": tokens, "status": "trained", "reward": 0.4})
    for step in (3, 4):
        ta, tb = a.next_tokens(), b.next_tokens()
        assert ta == tb
        a.reward(ta, 0.5, step)
        b.reward(tb, 0.5, step)
    assert a.info() == b.info()


def test_checkpoint_is_paddleslim_sanas_format(tmp_path):
    controller = LocalController(RANGE, INIT, seed=0, checkpoint_dir=str(tmp_path))
    tokens = controller.next_tokens()
    controller.recorded(CandidateRecord(tokens, "trained", step=1, reward=0.25))
    scene = json.loads((tmp_path / SANAS_CHECKPOINT).read_text())
    # the keys SANAS(load_checkpoint=...) reads
    assert scene["_tokens"] == tokens and scene["_reward"] == 0.25 and scene["_max_reward"] == 0.25
    assert scene["_best_tokens"] == tokens and scene["_iter"] == 1 and str(tokens) in scene["_searched"]
    assert set(json.loads((tmp_path / PPNAS_STATE).read_text())) == {"rng_state"}


def _draw_without_moving(controller, count):
    """`count` draws that are never rewarded (rejected by a constraint): the current tokens stay put."""
    return [controller.next_tokens() for _ in range(count)]


def _distance(a, b):
    return sum(x != y for x, y in zip(a, b))


def test_a_used_up_neighbourhood_is_left_for_a_farther_list_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="ppnas.samplers.annealing")
    controller = LocalController(RANGE, INIT, seed=0)
    near = _draw_without_moving(controller, 1 + sum(r - 1 for r in RANGE))  # INIT and its 57 neighbours
    assert sorted(_distance(t, INIT) for t in near) == [0] + [1] * 57 and not caplog.messages
    farther = _draw_without_moving(controller, 20)
    assert all(_distance(t, INIT) == 2 for t in farther)
    assert len({str(t) for t in near + farther}) == 78
    assert controller.info()["current_tokens"] == farther[-1]
    assert caplog.messages[-1] == (
        f"every token list within one token of the current tokens {INIT} has been seen; "
        f"drew {farther[-1]} instead (2 tokens changed)"
    )


def test_every_list_of_a_small_space_is_drawn_once_then_it_is_exhausted():
    controller = LocalController([3, 2, 2], [0, 0, 0], seed=0, max_try_times=50)
    drawn = _draw_without_moving(controller, 12)
    assert sorted(drawn) == [[a, b, c] for a in range(3) for b in range(2) for c in range(2)]
    with pytest.raises(ControllerError, match="^all 12 token lists of the search space have been seen: the search"):
        controller.next_tokens()


def test_a_resumed_search_leaves_the_neighbourhood_the_same_way(tmp_path):
    a = LocalController(RANGE, INIT, seed=7, checkpoint_dir=str(tmp_path))
    a.reward(a.next_tokens(), 0.5, 1)
    _draw_without_moving(a, 57)
    a.checkpoint()
    b = LocalController(RANGE, INIT, seed=99)
    b.load(str(tmp_path))
    current = b.info()["current_tokens"]
    after = _draw_without_moving(b, 10)
    assert after == _draw_without_moving(a, 10)
    assert all(_distance(t, b.sa._tokens) == 2 for t in after) and current != after[0]


def test_non_finite_reward_is_refused():
    controller = LocalController(RANGE, INIT, seed=0)
    with pytest.raises(ControllerError, match="finite"):
        controller.reward(controller.next_tokens(), float("nan"), 1)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ControllerError, match="no controller checkpoint"):
        LocalController(RANGE, INIT).load(str(tmp_path))


def test_long_searches_do_not_divide_by_a_zero_temperature():
    controller = LocalController(RANGE, INIT, init_temperature=10.24, reduce_rate=0.85, seed=0)
    controller.reward(controller.next_tokens(), 0.5, 1)
    controller.reward(controller.next_tokens(), 0.4, 10_000)  # 0.85**10000 underflows to 0.0
    assert controller.info()["best_reward"] == 0.5
    assert controller.temperature > 0.0
