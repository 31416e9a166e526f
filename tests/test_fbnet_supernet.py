"""FBNet supernet: config checks, mixed op vs single op, gradients into alpha, the latency loss."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import copy
import math

import numpy as np
import paddle
import pytest
from fbnet_helpers import SIDE, TINY_SUPERNET

from ppnas.errors import ConfigError
from ppnas.fbnet.blocks import REGISTRY, build_block
from ppnas.fbnet.derive import subnet_from_supernet
from ppnas.fbnet.search import latency_loss
from ppnas.fbnet.supernet import FBNetSupernet, LatencyVectors, MixedOp, supernet_spec


def _tiny_supernet(seed: int = 0) -> FBNetSupernet:
    paddle.seed(seed)
    spec = supernet_spec(TINY_SUPERNET)
    prices = [[10.0 * (i + 1) for i in range(len(s.candidates))] for s in spec.layers]
    return FBNetSupernet(spec, LatencyVectors(prices, fixed=100.0))


def test_every_registered_block_keeps_shape_and_stride() -> None:
    x = paddle.randn([2, 8, 8, 8])
    for name in REGISTRY:
        for stride, c_out in ((1, 8), (2, 16)):
            out = build_block(name, 8, c_out, stride)(x)
            assert out.shape == [2, c_out, 8 // stride, 8 // stride], name


def test_mixed_op_with_one_hot_weights_equals_the_single_op() -> None:
    paddle.seed(1)
    names = ["mb_k3_e2_res_se", "sep_k5", "gh_k3", "mb_k3_res_d3"]
    mixed = MixedOp([build_block(n, 8, 8, 1) for n in names])
    mixed.eval()
    x = paddle.randn([2, 8, 6, 6])
    for i, op in enumerate(mixed.ops):
        one_hot = paddle.to_tensor(np.eye(len(names), dtype="float32")[i])
        np.testing.assert_array_equal(mixed(x, one_hot).numpy(), op(x).numpy())
    half = paddle.to_tensor([0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(
        mixed(x, half).numpy(), 0.5 * (mixed.ops[0](x) + mixed.ops[1](x)).numpy(), rtol=1e-5, atol=1e-6
    )


def test_supernet_with_one_hot_alpha_equals_the_derived_subnet() -> None:
    supernet = _tiny_supernet()
    choices = [2, 1, 0]
    supernet.eval()
    subnet = subnet_from_supernet(supernet, choices)
    subnet.eval()
    x = paddle.randn([2, 3, SIDE, SIDE])
    weights = [paddle.to_tensor(np.eye(len(a.numpy()), dtype="float32")[c]) for a, c in zip(supernet.alphas, choices)]
    expected = supernet.backbone(x, weights)[0].numpy()
    np.testing.assert_allclose(subnet(x)[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(subnet(x)[1].numpy(), supernet.aux(supernet.backbone(x, weights)[1]).numpy(), atol=1e-6)


def test_gradients_reach_the_architecture_parameters() -> None:
    supernet = _tiny_supernet()
    landmarks, angles, latency = supernet(paddle.randn([2, 3, SIDE, SIDE]), temperature=5.0, gumbel=True)
    task = paddle.mean(paddle.square(landmarks - 0.5))
    latency_loss(task, latency, "mul", 0.25, 0.6).backward()
    for alpha in supernet.alphas:
        assert alpha.grad is not None and float(paddle.abs(alpha.grad).sum()) > 0
    # the latency term alone pushes toward the cheaper candidates: -grad is largest for the cheapest
    supernet.clear_gradients()
    _, _, latency = supernet(paddle.randn([1, 3, SIDE, SIDE]), temperature=1.0, gumbel=False)
    latency.backward()
    for alpha in supernet.alphas:
        grad = alpha.grad.numpy()
        assert int(np.argmin(grad)) == 0 and int(np.argmax(grad)) == len(grad) - 1


def test_expected_latency_is_the_probability_weighted_price() -> None:
    supernet = _tiny_supernet()
    for alpha in supernet.alphas:
        alpha.set_value(paddle.zeros_like(alpha))
    expected = float(supernet.expected_latency(supernet.mixing_weights(1.0, gumbel=False)))
    uniform = 100.0 + sum(np.mean(p) for p in supernet.latency.per_layer)
    assert expected == pytest.approx(uniform)


def test_latency_loss_in_both_modes_and_no_nan_at_small_latencies() -> None:
    task = paddle.to_tensor(2.0)
    lat = paddle.to_tensor(400.0)
    assert float(latency_loss(task, lat, "mul", 0.25, 0.6)) == pytest.approx(2.0 * 0.25 * math.log(400.0) ** 0.6)
    assert float(latency_loss(task, lat, "add", 0.25, 0.6)) == pytest.approx(2.0 + 0.25 * 400.0**0.6)
    for small in (0.5, 1e-3, 0.0):
        for mode in ("mul", "add"):
            value = paddle.to_tensor(small, stop_gradient=False)
            loss = latency_loss(paddle.to_tensor(2.0), value, mode, 0.25, 0.6)
            loss.backward()
            assert math.isfinite(float(loss)) and math.isfinite(float(value.grad)), (mode, small)


def test_bad_supernet_blocks_are_named() -> None:
    empty = copy.deepcopy(TINY_SUPERNET)
    empty["stages"][1]["candidates"] = []
    with pytest.raises(ConfigError, match="stage 's1' has no candidates"):
        supernet_spec(empty)
    unknown = copy.deepcopy(TINY_SUPERNET)
    unknown["stages"][0]["candidates"] = ["mb_k3_res", "mb_k7_res"]
    with pytest.raises(
        ConfigError, match=r"unknown candidate block 'mb_k7_res' in stage 's0'; valid: gh_k3, gh_k5, mb"
    ):
        supernet_spec(unknown)
    with pytest.raises(ConfigError, match="unknown key 'stagez' in Supernet"):
        supernet_spec({**TINY_SUPERNET, "stagez": []})
    with pytest.raises(ConfigError, match="'sep_k3' is not a candidate of layer 1"):
        supernet_spec({**TINY_SUPERNET, "baseline": ["sep_k3", "sep_k3", "sep_k3"]})
