"""The FBNet LUT: entries are the latency module's prices of each block alone; reuse and refusal."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import copy
import json
import pathlib

import pytest
from fbnet_helpers import SIDE, TINY_SEARCHED, TINY_SUPERNET, tiny_config

from latency.builder import collect_ops
from latency.estimate import estimate_latency
from latency.flops import count_flops
from latency.table import LatencyTable
from ppnas.candidates import load_candidates
from ppnas.constraint import Constraint
from ppnas.errors import ConfigError, ConstraintError, TableError
from ppnas.fbnet.blocks import SKIP, build_block
from ppnas.fbnet.derive import derive_choices
from ppnas.fbnet.lut import build_lut, ensure_lut, price_layers
from ppnas.fbnet.stem_head import parse_stem
from ppnas.fbnet.supernet import LandmarkForward, LandmarkModel, candidate_layer, supernet_spec

SPEC = supernet_spec(TINY_SUPERNET)
_THREE = copy.deepcopy(TINY_SUPERNET)
_THREE["stages"][1]["candidates"] = ["mb_k3_e2_res", "mb_k3_e2_res_se"]
SPEC_3X3 = supernet_spec(_THREE)  # latency_855.txt has no 5x5 stride-2 depthwise conv at all


def slot_index(spec, layer: int, name: str) -> int:  # noqa: ANN001
    return spec.layers[layer].candidates.index(name)


def _block(slot, name):  # noqa: ANN001, ANN202
    block = build_block(name, slot.c_in, slot.c_out, slot.stride)
    block.eval()
    return block


def test_lut_entries_equal_the_latency_estimate_of_each_block_alone(latency_855_path: pathlib.Path) -> None:
    table = LatencyTable.load(latency_855_path)
    prices = price_layers(SPEC_3X3, table, "nearest")  # the 855 table has 640-px shapes: nearest keys
    for slot, layer_prices in zip(SPEC_3X3.layers, prices):
        for name, price in zip(slot.candidates, layer_prices):
            assert price == estimate_latency(_block(slot, name), slot.input_shape, table, "nearest").raw_total > 0


def _covering_table(folder: pathlib.Path, spec=SPEC) -> str:  # noqa: ANN001
    """A table in the real format covering every op of the supernet (made-up prices, a calibration)."""
    models = [
        LandmarkForward(LandmarkModel(spec, [s.candidates[i % len(s.candidates)] for s in spec.layers]).backbone)
        for i in range(4)
    ]
    keys = collect_ops(models, [1, 3, SIDE, SIDE])
    table = LatencyTable(
        "test",
        "cpu",
        "us",
        {k: 1.0 + (i % 7) for i, k in enumerate(keys)},
        settings={"calib_a": "1.5", "calib_b": "20"},
    )
    return table.save(str(folder / "table.txt"))


@pytest.mark.parametrize(
    "spec, subnets",
    [(SPEC, ([1, 0, 1], [2, 1, 0])), (supernet_spec(TINY_SEARCHED), ([1, 2, 1, 2, 0], [0, 0, 0, 1, 1]))],
)
def test_lut_fixed_part_and_calibration_add_up_to_the_whole_network(tmp_path: pathlib.Path, spec, subnets) -> None:
    """The searched spec's subnets take the first stem width, for which the head's price is exact."""
    path = _covering_table(tmp_path, spec)
    table = LatencyTable.load(path)
    lut = build_lut(spec, path, "error")
    assert lut.metric == "latency" and lut.calibration == [1.5, 20.0]
    for slot, layer_prices in zip(spec.layers, lut.per_layer):
        for name, price in zip(slot.candidates, layer_prices):
            layer = candidate_layer(spec, slot, name)
            assert price == estimate_latency(layer, slot.input_shape, table).raw_total
    for choices in subnets:
        names = [s.candidates[c] for s, c in zip(spec.layers, choices)]
        whole = estimate_latency(LandmarkForward(LandmarkModel(spec, names).backbone), [1, 3, SIDE, SIDE], table)
        assert whole.calibrated and lut.total(choices) == pytest.approx(whole.total, rel=1e-9)
        assert lut.latency_ms(choices) == pytest.approx(whole.latency_ms, rel=1e-9)


def test_lut_follows_the_missing_keys_policy(latency_855_path: pathlib.Path) -> None:
    with pytest.raises(TableError, match="lacks .* op key"):
        build_lut(SPEC, str(latency_855_path), "error")


def test_lut_without_a_table_prices_flops() -> None:
    lut = build_lut(SPEC)
    assert lut.metric == "flops" and lut.ms_per_unit is None
    slot = SPEC.layers[2]
    assert lut.per_layer[2][1] == count_flops(_block(slot, slot.candidates[1]), slot.input_shape)
    names = [s.candidates[-1] for s in SPEC.layers]
    whole = count_flops(LandmarkForward(LandmarkModel(SPEC, names).backbone), [1, 3, SIDE, SIDE])
    assert lut.total([len(s.candidates) - 1 for s in SPEC.layers]) == whole
    assert lut.vectors().scale == 1e-6 and lut.loss_unit == "MFLOPs"


def test_searched_stem_head_and_skip_are_priced_alone_and_add_up_to_the_whole_network() -> None:
    spec = supernet_spec(TINY_SEARCHED)
    lut = build_lut(spec)
    stem, head = spec.layers[0], spec.layers[-1]
    for slot in (stem, head):
        for name, price in zip(slot.candidates, lut.per_layer[slot.index]):
            assert price == count_flops(candidate_layer(spec, slot, name), slot.input_shape) > 0
    assert lut.per_layer[3][slot_index(spec, 3, SKIP)] == 0  # skip removes the layer
    assert lut.per_layer[0][0] < lut.per_layer[0][2]  # 4 channels cost less than 8
    for choices in ([0, 1, 0, 2, 1], [1, 2, 1, 2, 0], [2, 0, 1, 1, 1], [3, 1, 0, 2, 0]):
        names = [s.candidates[c] for s, c in zip(spec.layers, choices)]
        whole = count_flops(LandmarkForward(LandmarkModel(spec, names).backbone), [1, 3, SIDE, SIDE])
        if parse_stem(names[0])[0] == spec.stem_channels[0]:
            assert lut.total(choices) == whole
        else:  # the head was priced after the first stem's width: off by its first conv's extra input channels
            assert lut.total(choices) == pytest.approx(whole, rel=0.02)


def test_lut_file_is_reused_rebuilt_or_refused(tmp_path: pathlib.Path, latency_855_path: pathlib.Path) -> None:
    path = str(tmp_path / "lut.json")
    lut, action = ensure_lut(path, SPEC, None, "error", rebuild=False)
    assert action == "built"
    again, action = ensure_lut(path, SPEC, None, "error", rebuild=False)
    assert action == "reused" and again.per_layer == lut.per_layer
    other = copy.deepcopy(TINY_SUPERNET)
    other["stages"][0]["channels"] = 12
    with pytest.raises(
        ConfigError, match=r"lut.json was built for another config \(supernet differ\): run --phase build_lut"
    ):
        ensure_lut(path, supernet_spec(other), None, "error", rebuild=False)
    with pytest.raises(ConfigError, match="was built without a latency table .*run --phase build_lut to price it"):
        ensure_lut(path, SPEC, str(latency_855_path), "nearest", rebuild=False)
    _, action = ensure_lut(path, supernet_spec(other), None, "error", rebuild=True)
    assert action == "rebuilt"


def test_latency_tools_sample_fbnet_subnets_that_cover_every_candidate(tiny_landmarks, tmp_path) -> None:
    """tools/build_latency_table.py and bench/latency_accuracy.py read an FBNet config through load_candidates."""
    source = load_candidates(str(tiny_config(tmp_path, tiny_landmarks)))
    assert source.range_table == [3, 2, 2] and source.input_shape == [1, 3, SIDE, SIDE]
    tokens = source.sample_tokens(4, seed=0)
    assert len(tokens) == 4 and all(
        {t[layer] for t in tokens[:3]} == set(range(n)) for layer, n in enumerate([3, 2, 2])
    )
    assert source.decode(tokens[0])["choices"] == ["mb_k3_res", "mb_k3_e2_res", "mb_k3_e2_res"]
    keys = collect_ops([source.measurable(t) for t in tokens], source.input_shape)
    assert any(key.startswith("conv,") for key in keys)


def test_derived_subnet_meets_the_hard_bound() -> None:
    lut = build_lut(SPEC)
    dearest = [max(range(len(p)), key=p.__getitem__) for p in lut.per_layer]
    probabilities = [
        [0.9 if c == d else 0.1 / (len(p) - 1) for c in range(len(p))] for p, d in zip(lut.per_layer, dearest)
    ]
    assert derive_choices(probabilities, lut, Constraint("flops")) == dearest  # no bound: argmax
    cheapest, top = lut.bounds()
    bound = (cheapest + top) / 2
    choices = derive_choices(probabilities, lut, Constraint("flops", max_constraint=bound))
    assert lut.total(choices) <= bound < lut.total(dearest)
    assert sum(c == d for c, d in zip(choices, dearest)) >= 1  # only what the bound needs was given up
    message = rf"no architecture meets Search.max_latency \(flops in \[-inf, {cheapest - 1:g}\] FLOPs\)"
    with pytest.raises(ConstraintError, match=message):
        derive_choices(probabilities, lut, Constraint("flops", max_constraint=cheapest - 1))


def test_an_edited_lut_file_is_checked_against_the_supernet_naming_layer_and_candidate(tmp_path) -> None:
    path = tmp_path / "lut.json"
    ensure_lut(str(path), SPEC, None, "error", rebuild=False)
    good = json.loads(path.read_text())
    slot = SPEC.layers[1]
    edits = {
        "a layer removed": (lambda d: (d["per_layer"].pop(), d["candidates"].pop()), "it lists candidates of 2 layers"),
        "a string price": (
            lambda d: d["per_layer"][1].__setitem__(0, "fast"),
            rf"layer 1 \({slot.stage}\), candidate {slot.candidates[0]}: price 'fast' is not a finite number",
        ),
        "fixed null": (lambda d: d.__setitem__("fixed", None), r"'fixed' \(the price of the unsearched rest\) is None"),
    }
    for edit, message in edits.values():
        broken = copy.deepcopy(good)
        edit(broken)
        path.write_text(json.dumps(broken))
        with pytest.raises(ConfigError, match=f"{message}.*run --phase build_lut to rebuild it"):
            ensure_lut(str(path), SPEC, None, "error", rebuild=False)
    assert ensure_lut(str(path), SPEC, None, "error", rebuild=True)[1] == "rebuilt"


def test_a_lut_built_with_a_table_names_it_when_the_table_is_left_off(tmp_path) -> None:
    path, table = str(tmp_path / "lut.json"), _covering_table(tmp_path)
    ensure_lut(path, SPEC, table, "error", rebuild=False)
    with pytest.raises(
        ConfigError,
        match=rf"was built with the latency table {table} and this run has no LUT.table_file: pass the same one "
        rf"\(-o LUT.table_file={table}\), or rebuild it on purpose with --phase build_lut",
    ):
        ensure_lut(path, SPEC, None, "error", rebuild=False)
