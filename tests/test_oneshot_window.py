"""Window-aware sandwich sampling (sandwich_sampling: window): the random members of a supernet iteration are inside
the Constraint window, measured as the search measures them; an impossible window stops; resume stays exact."""

import ppnas  # noqa: F401  # isort: skip
import os

import numpy as np
import paddle
import pytest
from oneshot_helpers import write_bignas_config

from ppnas import parallel
from ppnas.errors import ConfigError
from ppnas.oneshot.adapters import adapter_for
from ppnas.oneshot.algorithm import sandwich_step
from ppnas.oneshot.checkpoint import WEIGHTS, Checkpoint
from ppnas.oneshot.settings import load_oneshot_config, oneshot_constraint
from ppnas.oneshot.supernet import build_supernet
from ppnas.oneshot.train import sandwich_rule, seed_iteration, train_supernet

# about 45% of the tiny space's random subnets at 64 px (0.6 to 9.1 MFLOPs, min to max subnet)
WINDOW = {"ctype": "flops", "min_constraint": 2_500_000, "max_constraint": 4_500_000}


def _random_members(folder, wider, sampling, steps=3):
    """The FLOPs (measured afresh, as the search does) of every random member of `steps` sandwich steps."""
    cfg = load_oneshot_config(str(write_bignas_config(folder, wider, Constraint=WINDOW, sandwich_sampling=sampling)))
    adapter = adapter_for(cfg)
    paddle.seed(0)
    supernet = build_supernet(cfg)
    loader = adapter.train_loader(parallel.shard_sampler)
    data = adapter.fetch(loader, list(range(4)))
    optimizer = paddle.optimizer.SGD(learning_rate=0.0, parameters=supernet.parameters())
    rule = sandwich_rule(cfg)
    drawn = []
    for iteration in range(steps):
        result = sandwich_step(supernet, adapter, data, optimizer, rule, seed_iteration(1, iteration))
        drawn += [t for kind, t in zip(rule.strategy, result.tokens) if kind == "random"]
    constraint, measurable = oneshot_constraint(cfg), type(adapter).measurable
    flops = []
    for tokens in drawn:
        subnet = supernet.space.decode(tokens)
        flops.append(constraint.measure(measurable(supernet.plain_model(subnet)), subnet.image_size).flops)
    return constraint, flops


def test_window_sampling_draws_only_subnets_inside_the_window_and_uniform_does_not(tmp_path, tiny_wider):
    constraint, flops = _random_members(tmp_path / "window", tiny_wider, "window")
    assert len(flops) == 6 and len(set(flops)) > 1
    assert all(constraint.admits_value(f) for f in flops), flops
    constraint, flops = _random_members(tmp_path / "uniform", tiny_wider, "uniform")
    assert not all(constraint.admits_value(f) for f in flops), flops  # else the test above could not fail


def test_an_impossible_window_stops_with_the_window_and_the_closest_value(tmp_path, tiny_wider):
    with pytest.raises(ConfigError, match="sandwich_sampling must be one of uniform, window, got 'attentive'"):
        load_oneshot_config(str(write_bignas_config(tmp_path, tiny_wider, sandwich_sampling="attentive")))
    impossible = {"ctype": "flops", "min_constraint": 1, "max_constraint": 2}
    cfg = load_oneshot_config(
        str(write_bignas_config(tmp_path, tiny_wider, Constraint=impossible, sandwich_sampling="window", max_rejects=5))
    )
    with pytest.raises(
        ConfigError,
        match=r"none of 5 random subnets \(max_rejects\) is inside the window flops in \[1, 2\] FLOPs; the closest "
        r"was [0-9.e+]+ FLOPs",
    ):
        train_supernet(cfg, quiet=True)


def test_resume_with_window_sampling_gives_the_uninterrupted_weights(tmp_path, tiny_wider):
    keys = dict(max_iters=3, checkpoint_every=2, Constraint=WINDOW, sandwich_sampling="window")
    straight = load_oneshot_config(str(write_bignas_config(tmp_path / "a", tiny_wider, **keys)))
    train_supernet(straight, quiet=True)
    killed = load_oneshot_config(str(write_bignas_config(tmp_path / "b", tiny_wider, **keys)))
    killed["max_iters"] = 2  # a run killed after its checkpoint at iteration 2; the resumed one starts a new cache
    train_supernet(killed, quiet=True)
    killed["max_iters"] = 3
    train_supernet(killed, resume=True, quiet=True)
    assert Checkpoint.of(killed).state()["sandwich_sampling"] == "window"
    a = paddle.load(os.path.join(Checkpoint.of(straight).dir, WEIGHTS))
    b = paddle.load(os.path.join(Checkpoint.of(killed).dir, WEIGHTS))
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-6, atol=1e-7, err_msg=key)


def test_pricing_a_subnet_leaves_the_global_rngs_where_they_were(tmp_path, tiny_wider):
    """A resumed run starts with an empty price cache: pricing (which builds a plain model, drawing initial
    weights) must not move the RNGs the rest of the iteration draws from."""
    import random

    from ppnas.engine.seeding import seed_everything
    from ppnas.oneshot.window import window_sampler

    cfg = load_oneshot_config(str(write_bignas_config(tmp_path, tiny_wider, sandwich_sampling="window")))
    sampler = window_sampler(cfg)
    draws = []
    for price in (False, True):
        seed_everything(7)
        if price:
            assert sampler.price(tuple(sampler.space.max_tokens()), None) > 0
        draws.append((float(paddle.rand([1])), float(np.random.rand()), random.random()))
    assert draws[0] == draws[1]
