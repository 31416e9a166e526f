"""FBNet supernet: config checks, mixed op vs single op, searched stem / head / skip, gradients into alpha,
the latency loss in its three modes, and the target mode pulling a small supernet under its target."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import copy
import math

import numpy as np
import paddle
import pytest
from fbnet_helpers import SIDE, TINY_SEARCHED, TINY_SUPERNET

from ppnas.errors import ConfigError
from ppnas.fbnet.blocks import REGISTRY, SKIP, build_block
from ppnas.fbnet.derive import subnet_from_supernet
from ppnas.fbnet.lut import build_lut
from ppnas.fbnet.search import LatencyTerm, latency_loss
from ppnas.fbnet.supernet import FBNetSupernet, LatencyVectors, MixedOp, supernet_spec


def _tiny_supernet(seed: int = 0, block: dict = TINY_SUPERNET) -> FBNetSupernet:
    paddle.seed(seed)
    spec = supernet_spec(block)
    prices = [[10.0 * (i + 1) for i in range(len(s.candidates))] for s in spec.layers]
    return FBNetSupernet(spec, LatencyVectors(prices, fixed=100.0))


def test_every_registered_block_keeps_shape_and_stride() -> None:
    x = paddle.randn([2, 8, 8, 8])
    for name in REGISTRY:
        for stride, c_out in ((1, 8), (2, 16)):
            if name == SKIP and stride == 2:
                with pytest.raises(ConfigError, match="'skip' needs stride 1 and c_in == c_out, got 8 -> 16"):
                    build_block(name, 8, c_out, stride)
                continue
            out = build_block(name, 8, c_out, stride)(x)
            assert out.shape == [2, c_out, 8 // stride, 8 // stride], name
    np.testing.assert_array_equal(build_block(SKIP, 8, 8, 1)(x).numpy(), x.numpy())


def test_searched_slots_stem_first_head_last_and_skip_only_after_a_stage_start() -> None:
    spec = supernet_spec(TINY_SEARCHED)
    assert [(s.kind, s.stage) for s in spec.layers] == [
        ("stem", "stem"),
        ("block", "s0"),
        ("block", "s1"),
        ("block", "s1"),
        ("head", "head"),
    ]
    assert spec.layers[0].candidates == ("stem4_mb_k3_e2_res", "stem4_sep_k3", "stem8_mb_k3_e2_res", "stem8_sep_k3")
    assert spec.layers[0].input_shape == [1, 3, SIDE, SIDE]
    assert SKIP not in spec.layers[2].candidates and spec.layers[3].candidates[-1] == SKIP
    assert spec.layers[4].candidates == ("head8", "head16") and spec.layers[4].input_shape == [1, 8 + 16 + 4, 2, 2]
    assert [s.kind for s in supernet_spec(TINY_SUPERNET).layers] == ["block"] * 3  # fixed ends are not searched
    only_skip = copy.deepcopy(TINY_SEARCHED)
    only_skip["stages"][1]["candidates"] = [SKIP]
    with pytest.raises(ConfigError, match="stage 's1' lists only 'skip': its first layer needs a block"):
        supernet_spec(only_skip)
    with pytest.raises(ConfigError, match="Supernet.entry cannot be 'skip'"):
        supernet_spec({**TINY_SEARCHED, "entry": ["sep_k3", SKIP]})
    with pytest.raises(ConfigError, match=r"Supernet.stem_channels must list distinct, positive choices, got \[4, 4\]"):
        supernet_spec({**TINY_SEARCHED, "stem_channels": [4, 4]})


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


@pytest.mark.parametrize(
    "block, choices",
    [
        (TINY_SUPERNET, [2, 1, 0]),
        (TINY_SEARCHED, [1, 0, 1, 2, 0]),  # the narrower stem with the separable entry, skip, the narrower head
        (TINY_SEARCHED, [2, 2, 0, 1, 1]),
    ],
)
def test_supernet_with_one_hot_alpha_equals_the_derived_subnet(block: dict, choices: list) -> None:
    supernet = _tiny_supernet(block=block)
    for _ in range(2):  # BatchNorm statistics that are not the initial ones
        supernet(paddle.randn([4, 3, SIDE, SIDE]), 1.0, True)
    supernet.eval()
    subnet = subnet_from_supernet(supernet, choices)
    subnet.eval()
    x = paddle.randn([2, 3, SIDE, SIDE])
    weights = [paddle.to_tensor(np.eye(len(a.numpy()), dtype="float32")[c]) for a, c in zip(supernet.alphas, choices)]
    expected = supernet.backbone(x, weights)[0].numpy()
    np.testing.assert_allclose(subnet(x)[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(subnet(x)[1].numpy(), supernet.aux(supernet.backbone(x, weights)[1]).numpy(), atol=1e-6)


def test_gradients_reach_the_architecture_parameters() -> None:
    supernet = _tiny_supernet(block=TINY_SEARCHED)
    landmarks, angles, searched, whole = supernet(paddle.randn([2, 3, SIDE, SIDE]), temperature=5.0, gumbel=True)
    task = paddle.mean(paddle.square(landmarks - 0.5))
    latency_loss(task, searched, whole, LatencyTerm("mul", 0.25, 0.6)).backward()
    for alpha in supernet.alphas:
        assert alpha.grad is not None and float(paddle.abs(alpha.grad).sum()) > 0
    # the latency term alone pushes toward the cheaper candidates: -grad is largest for the cheapest
    supernet.clear_gradients()
    _, _, latency, _ = supernet(paddle.randn([1, 3, SIDE, SIDE]), temperature=1.0, gumbel=False)
    latency.backward()
    for alpha in supernet.alphas:
        grad = alpha.grad.numpy()
        assert int(np.argmin(grad)) == 0 and int(np.argmax(grad)) == len(grad) - 1


def test_expected_latency_is_the_probability_weighted_price_of_the_searched_part_plus_the_fixed_part() -> None:
    supernet = _tiny_supernet()
    supernet.latency.slope, supernet.latency.offset, supernet.latency.scale = 1.5, 20.0, 1e-3  # us -> ms
    searched, whole = supernet.expected_latency(supernet.mixing_weights(1.0, gumbel=False))
    uniform = sum(np.mean(p) for p in supernet.latency.per_layer)
    assert float(searched) == pytest.approx(1.5 * uniform * 1e-3)
    assert float(whole) == pytest.approx((1.5 * (uniform + 100.0) + 20.0) * 1e-3)


def test_latency_loss_in_its_three_modes_and_no_nan_at_small_latencies() -> None:
    task, searched, whole = paddle.to_tensor(2.0), paddle.to_tensor(3.0), paddle.to_tensor(5.0)
    mul = latency_loss(task, searched, whole, LatencyTerm("mul", 0.25, 0.6))
    assert float(mul) == pytest.approx(2.0 * 0.25 * math.log(4.0) ** 0.6)
    assert float(latency_loss(task, searched, whole, LatencyTerm("add", 0.25, 0.6))) == pytest.approx(
        2.0 + 0.25 * 3.0**0.6
    )
    over = LatencyTerm("target", 2.0, 0.6, target=4.0)  # 25% over the target
    assert float(latency_loss(task, searched, whole, over)) == pytest.approx(2.0 * (1 + 2.0 * 0.25))
    under = LatencyTerm("target", 2.0, 0.6, target=6.0)
    value = paddle.to_tensor(5.0, stop_gradient=False)
    loss = latency_loss(task, searched, value, under)
    loss.backward()
    assert float(loss) == 2.0 and float(value.grad) == 0.0  # at or under the target: no pull
    for small in (0.5, 1e-3, 0.0):
        for mode in ("mul", "add"):
            value = paddle.to_tensor(small, stop_gradient=False)
            loss = latency_loss(paddle.to_tensor(2.0), value, whole, LatencyTerm(mode, 0.25, 0.6))
            loss.backward()
            assert math.isfinite(float(loss)) and math.isfinite(float(value.grad)), (mode, small)


def _arch_steps(term: LatencyTerm, steps: int = 6) -> list:
    """Whole-model expected latency (ms-like MFLOPs) before and after `steps` architecture steps of the
    tiny searched supernet with its real FLOPs LUT, on a fixed batch and a fixed target."""
    spec = supernet_spec(TINY_SEARCHED)
    paddle.seed(4)
    supernet = FBNetSupernet(spec, build_lut(spec).vectors())
    optimizer = paddle.optimizer.Adam(learning_rate=0.1, parameters=supernet.arch_parameters())
    images, points = paddle.rand([4, 3, SIDE, SIDE]), paddle.rand([4, 212])
    expected = []
    for _ in range(steps):
        with paddle.no_grad():
            expected.append(float(supernet.expected_latency(supernet.mixing_weights(1.0, False))[1]))
        landmarks, _, searched, whole = supernet(images, 1.0, True)
        task = paddle.mean(paddle.sum(paddle.square(landmarks - points), axis=1))
        latency_loss(task, searched, whole, term).backward()
        optimizer.step()
        supernet.clear_gradients()
    return expected


def test_target_mode_lowers_the_expected_latency_of_a_small_supernet_in_a_few_architecture_steps() -> None:
    lut = build_lut(supernet_spec(TINY_SEARCHED))
    cheapest, dearest = (lut.to_loss_unit(v) for v in lut.bounds())
    target = cheapest + 0.2 * (dearest - cheapest)
    pulled = _arch_steps(LatencyTerm("target", 2.0, 0.6, target=target))
    free = _arch_steps(LatencyTerm("target", 0.0, 0.6, target=target))  # the task loss alone
    assert pulled[0] == free[0] > target
    assert pulled[-1] < pulled[0] - 0.3 * (pulled[0] - target)  # a third of the way to the target or more
    assert pulled[-1] < free[-1]


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
