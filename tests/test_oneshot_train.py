"""Supernet training: the sandwich order, one optimizer step, in-place distillation, checkpoints and resume."""

import ppnas  # noqa: F401  # isort: skip
import os
import random

import numpy as np
import paddle
import pytest
from oneshot_helpers import write_bignas_config

from ppnas import parallel
from ppnas.errors import ConfigError
from ppnas.oneshot.adapters import adapter_for
from ppnas.oneshot.adapters.detection import distill_loss
from ppnas.oneshot.algorithm import Sandwich, check_strategy, sandwich_step
from ppnas.oneshot.checkpoint import WEIGHTS, Checkpoint
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.supernet import build_supernet
from ppnas.oneshot.train import train_supernet


@pytest.fixture()
def setup(tmp_path, tiny_wider):
    cfg = load_oneshot_config(str(write_bignas_config(tmp_path, tiny_wider)))
    adapter = adapter_for(cfg)
    paddle.seed(0)
    supernet = build_supernet(cfg)
    loader = adapter.train_loader(parallel.shard_sampler)
    data = adapter.fetch(loader, list(range(4)))
    return cfg, adapter, supernet, loader, data


def test_sandwich_order_and_one_optimizer_step(setup):
    cfg, adapter, supernet, loader, data = setup
    optimizer = adapter.optimizer(supernet, len(loader))
    lr_step = optimizer._learning_rate.last_epoch
    weight = supernet.backbone.conv1._conv.weight.numpy().copy()
    rule = Sandwich(["max", "random", "random", "min"], 1.0)
    result = sandwich_step(supernet, adapter, data, optimizer, rule, random.Random(0))
    space = supernet.space
    assert result.tokens[0] == space.max_tokens() and result.tokens[-1] == space.min_tokens()
    assert all(0 <= t < n for tokens in result.tokens[1:3] for t, n in zip(tokens, space.range_table()))
    assert result.tokens[1] != result.tokens[2]
    assert list(result.losses) == ["max", "random", "min"] and len(result.losses["random"]) == 2
    assert optimizer._learning_rate.last_epoch == lr_step + 1  # one step for four subnets
    assert not np.allclose(supernet.backbone.conv1._conv.weight.numpy(), weight)
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in supernet.parameters())  # cleared


def test_distillation_adds_the_teacher_term_and_zero_turns_it_off(setup):
    cfg, adapter, supernet, loader, data = setup
    state = {k: v.numpy().copy() for k, v in supernet.state_dict().items()}
    losses = {}
    for weight in (0.0, 2.0):
        supernet.set_state_dict(state)
        optimizer = paddle.optimizer.SGD(learning_rate=0.0, parameters=supernet.parameters())
        rule = Sandwich(["max", "min"], weight)
        losses[weight] = sandwich_step(supernet, adapter, data, optimizer, rule, random.Random(0)).losses
    assert losses[0.0]["max"] == pytest.approx(losses[2.0]["max"], rel=1e-6)  # the teacher learns from labels only
    supernet.set_state_dict(state)
    supernet.train()
    outs = []
    for tokens in (supernet.space.max_tokens(), supernet.space.min_tokens()):
        supernet.set_subnet(supernet.space.decode(tokens))
        boxes, scores, _ = supernet.head_outputs(data["image"])
        outs.append((paddle.concat(boxes, axis=1), paddle.concat(scores, axis=1)))
    kd = float(distill_loss(outs[1], tuple(o.detach() for o in outs[0])))
    assert kd > 0
    assert float(distill_loss(outs[0], outs[0])) == pytest.approx(0.0, abs=1e-6)
    assert losses[2.0]["min"][0] == pytest.approx(losses[0.0]["min"][0] + 2.0 * kd, rel=1e-4)


def test_strategy_checks():
    assert check_strategy(["max", "random", "min"], 1.0) == ["max", "random", "min"]
    with pytest.raises(ConfigError, match="sample_strategy must be a list of max, min, random"):
        check_strategy(["max", "middle"], 0.0)
    with pytest.raises(ConfigError, match="needs 'max' first"):
        check_strategy(["random", "max"], 1.0)


def test_resume_from_the_last_checkpoint_gives_the_uninterrupted_weights(tmp_path, tiny_wider):
    keys = dict(max_iters=3, checkpoint_every=2)
    straight = load_oneshot_config(str(write_bignas_config(tmp_path / "a", tiny_wider, **keys)))
    train_supernet(straight, quiet=True)
    killed = load_oneshot_config(str(write_bignas_config(tmp_path / "b", tiny_wider, **keys)))
    killed["max_iters"] = 2  # stands for a run killed after its checkpoint at iteration 2
    train_supernet(killed, quiet=True)
    assert Checkpoint.of(killed).state()["iteration"] == 2
    killed["max_iters"] = 3
    with pytest.raises(ConfigError, match="already holds a supernet trained to iteration 2: resume it with -r"):
        train_supernet(killed, quiet=True)
    train_supernet(killed, resume=True, quiet=True)
    assert Checkpoint.of(killed).state()["iteration"] == 3
    a = paddle.load(os.path.join(Checkpoint.of(straight).dir, WEIGHTS))
    b = paddle.load(os.path.join(Checkpoint.of(killed).dir, WEIGHTS))
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-6, atol=1e-7, err_msg=key)


def test_a_checkpoint_of_another_kernel_choice_is_refused(tmp_path, tiny_wider):
    cfg = load_oneshot_config(str(write_bignas_config(tmp_path, tiny_wider, max_iters=1)))
    train_supernet(cfg, quiet=True)
    other = load_oneshot_config(str(write_bignas_config(tmp_path, tiny_wider, kernel_choices=[3, 5])))
    supernet = build_supernet(other)
    with pytest.raises(ConfigError, match=r"trained with kernel_choices \[3\], this config has \[3, 5\]"):
        Checkpoint.of(other).load_weights(supernet, other, "search")
