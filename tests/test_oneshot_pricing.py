"""The cached one-shot pricer (ppnas/oneshot/pricing.py) gives the full trace's Measurement: table latency, FLOPs and
params of random BlazeFace and DeepLabV3+ subnets, and its cache tells apart subnets that differ in one setting."""

import ppnas  # noqa: F401  # isort: skip
import copy
import random
from typing import List, Sequence

import paddle
import pytest
from conftest import ROOT
from oneshot_helpers import BIGNAS_DEMO
from seg_helpers import make_tiny_config
from test_long_search import INIT, RANGE, WidthTask, third_rejected

from latency.opkeys import trace_ops
from latency.table import LatencyTable
from ppnas.constraint import Constraint, Measurement
from ppnas.engine.loop import SearchSettings, run_search
from ppnas.history import History
from ppnas.oneshot.pricing import PricePart, SubnetPricer, after, subnet_pricer
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.supernet import build_supernet
from ppnas.samplers.annealing import LocalController

TABLE_855 = str(ROOT / "configs" / "latency_855.txt")


def assert_same(cached: Measurement, full: Measurement) -> None:
    assert cached.flops == full.flops and cached.params == full.params
    if full.latency is not None:
        assert abs(cached.latency - full.latency) <= 1e-9 * abs(full.latency)
        assert cached.latency_ms == pytest.approx(full.latency_ms, rel=1e-9)
        assert cached.substitutions == full.substitutions


def random_subnets(space, count, seed=0):
    rng = random.Random(seed)
    return [space.decode([rng.randrange(n) for n in space.range_table()]) for _ in range(count)]


def test_blazeface_subnets_price_as_the_full_trace():
    cfg = load_oneshot_config(str(BIGNAS_DEMO), ["input_size=128", "image_size_list=[96, 128]"])
    supernet = build_supernet(cfg)
    constraint = Constraint("latency", table_file=TABLE_855, missing_keys="nearest")
    pricer = subnet_pricer(supernet, constraint, cfg)
    space = supernet.space
    subnets = [space.decode(space.max_tokens()), space.decode(space.min_tokens()), *random_subnets(space, 30)]
    assert len({tuple(s.image_size) for s in subnets}) == 2
    for subnet in subnets:
        assert_same(pricer.measure(subnet), pricer.measure_full(subnet))
    assert len(pricer.parts) < 13 * len(subnets)  # parts were reused, not traced once per subnet


def test_the_cache_key_holds_the_kernel_and_the_input_size():
    """Subnets differing only in kernel, or only in input size, share every other setting: a key without the kernel
    or the shape would price the second as the first."""
    cfg = load_oneshot_config(str(BIGNAS_DEMO), ["input_size=128", "kernel_choices=[3, 5]"])
    supernet = build_supernet(cfg)
    pricer = subnet_pricer(supernet, Constraint("flops"), cfg)
    base = supernet.space.decode(supernet.space.init_tokens())
    variants = []
    for kernel in (3, 5):
        for side in (128, 96):
            subnet = copy.deepcopy(base)
            subnet.settings["backbone"]["kernel_size"] = [kernel] * 4
            subnet.image_size = [1, 3, side, side]
            variants.append(subnet)
    priced = [pricer.measure(subnet) for subnet in variants]
    for subnet, cached in zip(variants, priced):
        assert_same(cached, pricer.measure_full(subnet))
    assert len({(m.flops, m.params) for m in priced}) == 4
    assert priced[0].params == priced[1].params != priced[2].params  # the size changes FLOPs only


def test_full_trace_option_and_a_supernet_without_parts_trace_the_whole_model(monkeypatch):
    cfg = load_oneshot_config(str(BIGNAS_DEMO), ["input_size=96"])
    supernet = build_supernet(cfg)
    subnet = supernet.space.decode(supernet.space.init_tokens())
    traced = []
    constraint = Constraint("flops")
    real = constraint.measure
    monkeypatch.setattr(constraint, "measure", lambda *a: traced.append(a) or real(*a))
    cached = subnet_pricer(supernet, constraint, cfg).measure(subnet)
    assert not traced
    assert_same(subnet_pricer(supernet, constraint, cfg, full_trace=True).measure(subnet), cached)
    monkeypatch.setattr(supernet, "price_parts", lambda subnet: None)
    assert_same(subnet_pricer(supernet, constraint, cfg).measure(subnet), cached)
    assert len(traced) == 2


class ConvThenNorm(paddle.nn.Layer):
    """A toy supernet's plain model: a conv, then (in the next part) a batch norm and a ReLU reading its output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.tail = paddle.nn.Sequential(paddle.nn.BatchNorm2D(8), paddle.nn.ReLU())

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.tail(self.conv(x))


class ToySupernet:
    def plain_model(self, subnet):
        return ConvThenNorm()

    def price_parts(self, subnet):
        return [PricePart("conv", lambda plain: plain().conv, (None,)), PricePart("tail", lambda p: p().tail, after(0))]


def test_a_fold_across_a_part_boundary_falls_back_to_the_full_trace(tmp_path):
    """An engine folding BN and ReLU into the conv before them prices the tail at 0 in the whole model; priced
    alone the tail reads no conv. The pricer sees the fold cross the boundary and traces the whole model."""
    keys = [op.key for op in trace_ops(ConvThenNorm(), [1, 3, 16, 16]) if op.key]
    assert len(keys) == 4  # conv, its bias add, batch norm, ReLU
    lines = ["onnxruntime\tcpu\tus\tfuses=bias|batch_norm|relu"] + [
        f"{k}\t{100 if i == 0 else 7}" for i, k in enumerate(keys)
    ]
    table = tmp_path / "fusing.txt"
    table.write_text("\n".join(lines) + "\n")
    assert LatencyTable.load(str(table)).settings["fuses"] == "bias|batch_norm|relu"
    constraint = Constraint("latency", table_file=str(table))
    subnet = type("Subnet", (), {"image_size": [1, 3, 16, 16]})()
    pricer = SubnetPricer(ToySupernet(), constraint, lambda model: model)
    cached, full = pricer.measure(subnet), pricer.measure_full(subnet)
    assert_same(cached, full)
    assert not pricer.parts[("tail", ((1, 8, 16, 16),))].exact and full.latency == 100.0


@pytest.fixture(scope="module")
def seg_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg_pricing")
    small = {
        "backbone": {
            "depth": {"space": {"max": [1, 2, 2, 2, 2, 2, 2]}},
            "out_channel": {"space": {"max": [8, 8, 12, 24, 32, 48, 80]}},
            "kernel_size": {"space": {"max": [3] * 7}},  # latency_855.txt has no 5x5 keys
        }
    }
    slim = {"NAS_SPACE_NAME": "MobileNetV2SpaceSeg", "BIGNAS_SPACE": small, "BIGNAS_SAVE_DIR": str(folder / "out")}
    return load_oneshot_config(str(make_tiny_config(folder, SLIM=slim)))


def test_deeplab_subnets_price_as_the_full_trace(seg_config):
    supernet = build_supernet(seg_config)
    space = supernet.space
    subnets = [space.decode(space.max_tokens()), space.decode(space.init_tokens()), *random_subnets(space, 3)]
    for constraint in (Constraint("latency", table_file=TABLE_855, missing_keys="nearest"), Constraint("flops")):
        pricer = subnet_pricer(supernet, constraint, seg_config)
        for subnet in subnets:
            assert_same(pricer.measure(subnet), pricer.measure_full(subnet))


def test_a_data_parallel_group_prices_on_rank_0_with_the_inner_constraint():
    """The search's GroupConstraint runs a task's pricing once (rank 0) and hands it the plain constraint, whose
    full-trace fallback must not go through the group a second time."""
    from ppnas.parallel.ranks import GroupConstraint

    inner, seen = Constraint("flops"), []
    measurement = GroupConstraint(inner).measure_by(lambda own: seen.append(own) or Measurement(flops=1.0, params=2))
    assert seen == [inner] and measurement.params == 2


class PricedWidthTask(WidthTask):
    """WidthTask pricing a candidate from its tokens, as SupernetTask does: the loop builds admitted ones only."""

    def __init__(self) -> None:
        super().__init__(third_rejected)
        self.built: List[List[int]] = []

    def price(self, constraint: Constraint, tokens: Sequence[int]) -> Measurement:
        width = self.width(tokens)
        return Measurement(flops=float(width), params=2 * width)

    def build(self, tokens: Sequence[int]) -> paddle.nn.Layer:
        self.built.append(list(tokens))
        return super().build(tokens)


def test_the_search_prices_first_and_builds_only_admitted_subnets(tmp_path):
    task = PricedWidthTask()
    controller = LocalController(RANGE, INIT, init_temperature=10.24, reduce_rate=0.85, seed=0)
    settings = SearchSettings(search_steps=6, save_dir=str(tmp_path))
    run_search(task, controller, Constraint("params", max_constraint=4), History.in_dir(str(tmp_path)), settings)
    records = History.in_dir(str(tmp_path)).read()
    trained = [r["tokens"] for r in records if r["status"] == "trained"]
    assert len(trained) == 6 and len(records) > 6  # a third of the draws are rejected
    assert task.built == trained
    assert all(r["params"] == 2 * third_rejected(r["tokens"]) for r in records)
