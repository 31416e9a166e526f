"""Search over a trained supernet: the Constraint window, traverse, records the report reads, and the export
that loads strictly into PaddleDetection's own BlazeFace (built by ppdet's load_config/create) with the same AP."""

import ppnas  # noqa: F401  # isort: skip
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from oneshot_helpers import run_bignas, trained_config, with_supernet

from ppnas.errors import SearchFinished
from ppnas.history import CandidateRecord, History
from ppnas.oneshot.evaluate import SupernetEvaluator
from ppnas.samplers.traverse import TraverseController, traverse_tokens

RECORD_FIELDS = set(CandidateRecord.__dataclass_fields__)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_wider):
    return trained_config(tmp_path_factory.mktemp("supernet"), tiny_wider)["save_dir"]


def test_traverse_enumerates_the_space_with_a_stride(tmp_path):
    ranges = [6, 8, 12, 12, 6, 6, 6, 6, 1]  # BlazeFaceNasSpace with kernel_choices [3]
    tokens = list(traverse_tokens(ranges, 6))
    assert len(tokens) == 1 * 2 * 2 * 2 * 1 * 1 * 1 * 1 * 1
    assert tokens[0] == [0] * 9 and tokens[-1] == [0, 6, 6, 6, 0, 0, 0, 0, 0]
    assert len(list(traverse_tokens(ranges, 4))) == 2 * 2 * 3 * 3 * 2 * 2 * 2 * 2 * 1
    history = History.in_dir(str(tmp_path))
    history.append(CandidateRecord(tokens=tokens[3], status="trained", reward=0.5, step=1))
    controller = TraverseController(ranges, 6, history)
    drawn = [controller.next_tokens() for _ in range(7)]  # the recorded one is skipped
    assert tokens[3] not in drawn and sorted(drawn) == sorted(t for t in tokens if t != tokens[3])
    with pytest.raises(SearchFinished):
        controller.next_tokens()


@pytest.mark.parametrize("mode, keys", [("traverse", {"traverse_stride": 6, "subnet_count": 100}), ("sanas", {})])
def test_search_records_only_subnets_inside_the_window(capsys, tmp_path, tiny_wider, trained, mode, keys):
    window = {"ctype": "flops", "min_constraint": 1.5e6, "max_constraint": 3.5e6}
    config = with_supernet(trained, tmp_path, tiny_wider, search_mode=mode, Constraint=window, **keys)
    code, out, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet")
    assert code == 0, err
    records = History.in_dir(str(tmp_path / "out")).read()
    assert all(set(r) == RECORD_FIELDS for r in records)
    trained_records = [r for r in records if r["status"] == "trained"]
    rejected = [r for r in records if r["status"] == "rejected"]
    assert trained_records
    assert all(1.5e6 <= r["flops"] <= 3.5e6 and 0 <= r["reward"] <= 1 for r in trained_records)
    assert all(not 1.5e6 <= r["flops"] <= 3.5e6 for r in rejected)
    if mode == "traverse":
        assert len(records) == 8 and rejected  # every subnet of the stride-6 grid, measured once
    else:
        assert len(trained_records) == 3  # subnet_count
    for name in ("pareto.png", "report.md", "blazeface_nas.yml", "best_model.pdparams"):
        assert os.path.isfile(tmp_path / "out" / name), name
    assert "best reward" in out


STRICT_LOAD = """
import ppnas, json, sys, paddle
from ppdet.core.workspace import load_config, create
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.tasks.detection import BlazeFaceTask
face_config, weights, search_config = sys.argv[1:4]
cfg = load_config(face_config)
model = create(cfg.architecture)
state = paddle.load(weights)
own = model.state_dict()
print(json.dumps({
    "missing": sorted(set(own) - set(state)), "extra": sorted(set(state) - set(own)),
    "shape_mismatch": sorted(k for k in own if k in state and list(own[k].shape) != list(state[k].shape)),
}))
model.set_state_dict(state)
print(json.dumps({"ap": BlazeFaceTask(load_oneshot_config(search_config)).evaluate(model)}))
"""


def test_export_loads_strictly_into_ppdet_blazeface_with_the_search_ap(capsys, tmp_path, tiny_wider, trained):
    config = with_supernet(trained, tmp_path, tiny_wider, subnet_count=1)
    code, out, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet")
    assert code == 0, err
    best = max(History.in_dir(str(tmp_path / "out")).trained(), key=lambda r: r["reward"])
    face_config = tmp_path / "blazeface_nas_face.yml"  # a stock face config: model base + the fragment last
    base = ROOT / "configs" / "_base_" / "blazeface_nas_model.yml"
    face_config.write_text(f"_BASE_: ['{base}', '{tmp_path / 'out' / 'blazeface_nas.yml'}']\n")
    weights = tmp_path / "out" / "best_model.pdparams"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", STRICT_LOAD, str(face_config), str(weights), str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    keys, ap = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert keys == {"missing": [], "extra": [], "shape_mismatch": []}
    assert ap["ap"] == pytest.approx(best["reward"], abs=1e-9)
    # and the supernet itself, evaluated at that subnet after the same calibration, scores the same
    from ppnas.oneshot.settings import load_oneshot_config

    evaluator = SupernetEvaluator.from_checkpoint(load_oneshot_config(str(config)))
    subnet = evaluator.supernet.space.decode(best["tokens"])
    evaluator.inherit(evaluator.supernet.plain_model(subnet), subnet)
    assert evaluator.adapter.evaluate(evaluator.supernet, subnet.image_size) == pytest.approx(best["reward"], abs=1e-6)


def test_sample_flops_plots_the_distribution_with_the_baseline(capsys, tmp_path, tiny_wider, trained):
    config = with_supernet(trained, tmp_path, tiny_wider, flops_samples=8)
    code, out, err = run_bignas(capsys, "-c", str(config), "--phase", "sample_flops", "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["samples"] == 8 and 0 <= summary["baseline_flops_percentile"] <= 100
    assert summary["baseline"]["tokens"] == [2, 1, 3, 8, 2, 1, 2, 1, 0]
    saved = json.loads((tmp_path / "out" / "sample_flops.json").read_text())
    assert len(saved["subnets"]) == 8 and len({tuple(s["tokens"]) for s in saved["subnets"]}) > 6
    assert (tmp_path / "out" / "sample_flops.png").stat().st_size > 10_000
