"""The detection, one-shot and FBNet searches price candidates with tables built by the onnxruntime and MNN
engines, through the same keys as any table (Constraint.table_file, LUT.table_file)."""

import ppnas  # noqa: F401  # isort: skip
import pathlib

from conftest import run_tool, write_det_config
from fbnet_helpers import TINY_SUPERNET, tiny_config
from oneshot_helpers import run_bignas, trained_config, with_supernet

from latency.builder import build_table, collect_ops
from latency.engine import EngineSettings
from latency.estimate import estimate_latency
from latency.table import LatencyTable
from ppnas.candidates import load_candidates
from ppnas.fbnet.lut import build_lut
from ppnas.fbnet.supernet import supernet_spec
from ppnas.history import History

FAST = dict(warmup=0, repeats=1, passes=1)


def engine_table(config: pathlib.Path, engine: str, path: pathlib.Path, samples: int) -> LatencyTable:
    """A table of `samples` architectures of the config's space, timed with `engine` (what the CLI does)."""
    source = load_candidates(str(config))
    models = [source.measurable(t) for t in source.sample_tokens(samples, 0)]
    ops = collect_ops(models, source.input_shape)
    return build_table(ops, str(path), EngineSettings(engine=engine, **FAST), progress=False, sweeps=1)


def search_window(table_path: pathlib.Path, config: pathlib.Path) -> dict:
    """A latency window around the init candidate's price with this table (nearest keys for the rest)."""
    source = load_candidates(str(config))
    table = LatencyTable.load(str(table_path))
    init = estimate_latency(source.measurable(source.init_tokens), source.input_shape, table).total
    return {
        "ctype": "latency",
        "min_constraint": 0.5 * init,
        "max_constraint": 2.0 * init,
        "table_file": str(table_path),
        "missing_keys": "nearest",
    }


def test_detection_search_with_an_onnxruntime_table(capsys, tmp_path, tiny_wider):
    table_path = tmp_path / "ort.txt"
    det = write_det_config(tmp_path, tiny_wider)
    assert engine_table(det, "onnxruntime", table_path, samples=2).engine.startswith("onnxruntime-")
    window = search_window(table_path, det)
    config = write_det_config(tmp_path, tiny_wider, search_steps=1, Constraint=window)
    code, _, err = run_tool(capsys, "train_nas", "-c", str(config), "--quiet")
    assert code == 0, err
    trained = [r for r in History.in_dir(str(tmp_path / "out")).read() if r["status"] == "trained"]
    assert len(trained) == 1 and trained[0]["latency_ms"] is not None
    assert window["min_constraint"] <= trained[0]["latency_ms"] * 1e3 <= window["max_constraint"]


def test_one_shot_search_with_an_mnn_table(capsys, tmp_path, tiny_wider):
    save_dir = trained_config(tmp_path / "supernet", tiny_wider, max_iters=1)["save_dir"]
    det = write_det_config(tmp_path, tiny_wider)
    table_path = tmp_path / "mnn.txt"
    assert engine_table(det, "mnn", table_path, samples=2).engine.startswith("mnn-")
    window = search_window(table_path, det)
    config = with_supernet(save_dir, tmp_path, tiny_wider, search_mode="random", subnet_count=2, Constraint=window)
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet")
    assert code == 0, err
    records = History.in_dir(str(tmp_path / "out")).read()
    trained = [r for r in records if r["status"] == "trained"]
    assert len(trained) == 2
    assert all(window["min_constraint"] <= r["latency_ms"] * 1e3 <= window["max_constraint"] for r in trained)
    assert all(
        not window["min_constraint"] <= r["latency_ms"] * 1e3 <= window["max_constraint"]
        for r in records
        if r["status"] == "rejected"
    )


def test_fbnet_lut_priced_with_an_onnxruntime_table(tmp_path, tiny_landmarks):
    table_path = tmp_path / "ort.txt"
    engine_table(tiny_config(tmp_path, tiny_landmarks), "onnxruntime", table_path, samples=3)  # every candidate
    source = load_candidates(str(tiny_config(tmp_path, tiny_landmarks, LUT={"table_file": str(table_path)})))
    assert source.table_file == str(table_path) and source.missing_keys == "error"
    lut = build_lut(supernet_spec(TINY_SUPERNET), source.table_file, source.missing_keys)  # no key missing
    assert lut.metric == "latency" and lut.unit == "us" and lut.fixed > 0
    assert all(price > 0 for prices in lut.per_layer for price in prices)
    cheap, dear = lut.bounds()
    assert 0 < cheap < dear
