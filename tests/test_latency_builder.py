"""The table builder: real one-op timings of a tiny net (Paddle Inference, onnxruntime, MNN), the header, resume,
settings checks, and the timing method of the device timer (latency/engines/time_ops.py)."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import pathlib
import subprocess
import sys

import paddle
import pytest

from latency.builder import build_table, collect_ops
from latency.engine import EngineSettings
from latency.engines.time_ops import Timing, opener, time_against_reference
from latency.estimate import estimate_latency
from latency.opprograms import input_shapes, save_op_model
from latency.table import LatencyTable
from latency.timings import UNSTABLE_KEY, unstable_keys
from ppnas.errors import TableError

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAPE = [1, 3, 16, 16]
FAST = dict(warmup=1, repeats=3, passes=1)


def tiny_net():
    return paddle.nn.Sequential(
        paddle.nn.Conv2D(3, 8, 3, stride=2, padding=1, bias_attr=False),
        paddle.nn.BatchNorm2D(8),
        paddle.nn.ReLU(),
    )


@pytest.mark.parametrize(
    "engine, engine_settings",
    [
        ("paddle_inference", {"mkldnn": "0", "ir_optim": "1", "prefix": "0"}),
        ("onnxruntime", {"opset": "11", "fuses": "batch_norm|bias|relu", "prefix": "conv"}),
        ("mnn", {"opset": "11", "fuses": "batch_norm|bias|relu|relu6", "prefix": "0"}),
    ],
)
def test_builds_a_table_that_prices_every_op_the_net_runs(tmp_path, engine, engine_settings):
    path = str(tmp_path / "tiny.txt")
    ops = collect_ops([tiny_net()], SHAPE)
    assert list(ops) == ["conv,0,0,1,3,16,16,8,1,3,1,2,1", "batch_norm,None,1,8,8,8", "relu,1,8,8,8"]
    table = build_table(ops, path, EngineSettings(engine=engine, **FAST), progress=False)
    assert list(table.entries) == list(ops)
    assert all(value > 0 for value in table.entries.values())  # no op is free: none was clamped to 0
    assert table.unit == "us" and table.engine.startswith(f"{engine}-")
    # an op this small (relu over 512 values) may time below the fixed cost of a run in every sweep: it is then
    # priced at an upper bound and flagged, which is the builder working, not failing (the header says which)
    assert set(unstable_keys(table)) <= set(ops)
    settings = {key: value for key, value in table.settings.items() if key != UNSTABLE_KEY}
    assert settings == {"device": "cpu", "threads": "1", "timer": "thread_cpu", **engine_settings}
    assert not (tmp_path / "tiny.txt.ops").exists()  # the work folder goes once the table is complete
    estimate = estimate_latency(tiny_net(), SHAPE, table)
    assert estimate.unpriced_ops == {}
    if "fuses" in engine_settings:  # BN and ReLU fold into the conv: the conv alone is priced
        assert estimate.fused_ops == {"batch_norm": 1, "relu": 1} and estimate.num_ops == 1
        assert estimate.total == table.entries["conv,0,0,1,3,16,16,8,1,3,1,2,1"]
    else:
        assert estimate.num_ops == 3 and estimate.total == pytest.approx(sum(table.entries.values()))


def test_an_op_below_its_reference_is_retimed_priced_and_flagged_not_free(tmp_path, capsys):
    """A 64-channel conv as the reference (a real model, timed like the others): every difference is negative,
    as noise can make a tiny op's."""
    from latency.engines import get_engine

    ops = collect_ops([tiny_net()], SHAPE)
    heavy = collect_ops([paddle.nn.Conv2D(64, 64, 3, padding=1, bias_attr=False)], [1, 64, 32, 32])
    specs = list(ops.values()) + list(heavy.values())
    for i, spec in enumerate(specs):
        save_op_model(spec, False, str(tmp_path / f"m{i}"))
    get_engine("onnxruntime").convert([str(tmp_path / f"m{i}") for i in range(len(specs))], 11)
    openers = [
        opener("onnxruntime", str(tmp_path / f"m{i}.onnx"), [{"name": "x0", "shape": input_shapes(s)[0]}], {}, 1)
        for i, s in enumerate(specs)
    ]
    times, unstable = time_against_reference(openers[:3], openers[3:], Timing(warmup=1, repeats=3, passes=1))
    assert capsys.readouterr().err.count("3 ops timed below their reference: timing them again") == 2  # two retries
    assert unstable == [True, True, True] and all(value > 0 for value in times)  # priced at its own time, not 0


def test_resume_keeps_measured_keys_and_measures_only_new_ones(tmp_path):
    path = str(tmp_path / "tiny.txt")
    first = collect_ops([tiny_net()], SHAPE)
    build_table(dict(list(first.items())[:1]), path, EngineSettings(**FAST), progress=False)
    # pretend the first key was measured at a value no timing would give: a re-measure would replace it
    text = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    key = text[1].split("\t")[0]
    pathlib.Path(path).write_text(f"{text[0]}\n{key}\t123456\n", encoding="utf-8")
    table = build_table(first, path, EngineSettings(**FAST), progress=False)
    assert table.entries[key] == 123456
    assert list(table.entries) == list(first)
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(first)


def test_refuses_to_extend_a_table_built_with_other_settings_or_engine(tmp_path):
    path = str(tmp_path / "tiny.txt")
    ops = collect_ops([tiny_net()], SHAPE)
    build_table(dict(list(ops.items())[:1]), path, EngineSettings(**FAST), progress=False)
    with pytest.raises(
        TableError, match="another engine, device or settings: mkldnn=0 \\(now 1\\).*prefix=0 \\(now 1\\)"
    ):
        build_table(ops, path, EngineSettings(mkldnn=True, **FAST), progress=False)
    with pytest.raises(TableError, match="engine paddle_inference \\(now onnxruntime\\)"):
        build_table(ops, path, EngineSettings(engine="onnxruntime", **FAST), progress=False)


def test_mkldnn_prefix_timing_gives_a_usable_value(tmp_path):
    ops = collect_ops([tiny_net()], SHAPE)
    table = build_table(dict(list(ops.items())[:1]), str(tmp_path / "m.txt"), EngineSettings(mkldnn=True, **FAST))
    assert table.settings["prefix"] == "1" and table.settings["mkldnn"] == "1"
    assert len(table.entries) == 1 and list(table.entries.values())[0] > 0


def test_cli_builds_then_resumes(tmp_path):
    """All three steps on this machine, as the issue's last command: --engine onnxruntime --out."""
    out = tmp_path / "demo.txt"
    command = [
        sys.executable,
        str(ROOT / "tools" / "build_latency_table.py"),
        "-c",
        str(ROOT / "configs" / "demo" / "blazeface_demo.yml"),
        "--engine",
        "onnxruntime",
        "--out",
        str(out),
        "--samples",
        "1",
        "--input-size",
        "32",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--passes",
        "1",
        "--sweeps",
        "1",
        "--quiet",
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["architectures"] == 1 and summary["entries"] == summary["keys"] > 40
    assert set(summary["kinds"]) == {"activation", "batch_norm", "conv", "eltwise", "pooling"}
    before = out.read_text(encoding="utf-8")
    second = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "0 to measure" in second.stderr and out.read_text(encoding="utf-8") == before
    table = LatencyTable.load(str(out))
    assert len(table.entries) == summary["keys"] and table.engine.startswith("onnxruntime-")
