"""The table builder: real one-op Paddle Inference timings of a tiny net, the header, resume, settings checks."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import pathlib
import subprocess
import sys

import paddle
import pytest

from latency.builder import UNSTABLE_KEY, OpTimer, build_table, collect_ops, op_program, unstable_keys
from latency.engine import EngineSettings
from latency.estimate import estimate_latency
from latency.table import LatencyTable
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


def test_builds_a_table_that_prices_every_op_the_net_runs(tmp_path):
    path = str(tmp_path / "tiny.txt")
    ops = collect_ops([tiny_net()], SHAPE)
    assert list(ops) == ["conv,0,0,1,3,16,16,8,1,3,1,2,1", "batch_norm,None,1,8,8,8", "relu,1,8,8,8"]
    table = build_table(ops, path, EngineSettings(**FAST), progress=False)
    assert list(table.entries) == list(ops)
    assert all(value > 0 for value in table.entries.values())  # no op is free: none was clamped to 0
    assert table.unit == "us" and table.engine.startswith("paddle_inference-")
    # an op this small (relu over 512 values) may time below the fixed cost of a run in every sweep: it is then
    # priced at an upper bound and flagged, which is the builder working, not failing (the header says which)
    assert set(unstable_keys(table)) <= set(ops)
    settings = {key: value for key, value in table.settings.items() if key != UNSTABLE_KEY}
    assert settings == {
        "device": "cpu",
        "threads": "1",
        "mkldnn": "0",
        "ir_optim": "1",
        "prefix": "0",
        "timer": "thread_cpu",
    }
    estimate = estimate_latency(tiny_net(), SHAPE, table)
    assert estimate.num_ops == 3 and estimate.unpriced_ops == {}
    assert estimate.total == pytest.approx(sum(table.entries.values()))


class HeavyReferenceTimer(OpTimer):
    """Subtracts a 64-channel conv (a real program, timed like the others) from each op: every difference
    is negative, as noise can make a tiny op's."""

    def reference_programs(self, specs):
        heavy = paddle.nn.Conv2D(64, 64, 3, padding=1)
        (spec,) = [s for key, s in collect_ops([heavy], [1, 64, 32, 32]).items() if key.startswith("conv")]
        return [op_program(spec, False)]


def test_an_op_below_its_reference_is_retimed_priced_and_flagged_not_free(tmp_path, caplog):
    path = str(tmp_path / "tiny.txt")
    ops = collect_ops([tiny_net()], SHAPE)
    settings = EngineSettings(**FAST)
    with caplog.at_level("INFO", logger="latency.builder"):
        table = build_table(ops, path, settings, progress=False, sweeps=1, timer=HeavyReferenceTimer(settings))
    assert caplog.text.count("3 ops timed below their reference: timing them again") == 2  # two retries
    assert all(value > 0 for value in table.entries.values())  # priced at the op's own time, not 0
    assert unstable_keys(table) == list(ops)
    header = pathlib.Path(path).read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith("unstable=" + "|".join(ops))
    again = build_table(ops, path, settings, progress=False)  # resume: nothing to measure, flag kept
    assert unstable_keys(again) == list(ops)


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


def test_refuses_to_extend_a_table_built_with_other_settings(tmp_path):
    path = str(tmp_path / "tiny.txt")
    ops = collect_ops([tiny_net()], SHAPE)
    build_table(dict(list(ops.items())[:1]), path, EngineSettings(**FAST), progress=False)
    with pytest.raises(TableError, match="other engine settings: mkldnn=0 \\(now 1\\).*prefix=0 \\(now 1\\)"):
        build_table(ops, path, EngineSettings(mkldnn=True, **FAST), progress=False)


def test_mkldnn_prefix_timing_gives_a_usable_value(tmp_path):
    ops = collect_ops([tiny_net()], SHAPE)
    table = build_table(dict(list(ops.items())[:1]), str(tmp_path / "m.txt"), EngineSettings(mkldnn=True, **FAST))
    assert table.settings["prefix"] == "1" and table.settings["mkldnn"] == "1"
    assert len(table.entries) == 1 and list(table.entries.values())[0] > 0


def test_cli_builds_then_resumes(tmp_path):
    out = tmp_path / "demo.txt"
    command = [
        sys.executable,
        str(ROOT / "tools" / "build_latency_table.py"),
        "-c",
        str(ROOT / "configs" / "demo" / "blazeface_demo.yml"),
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
    assert len(LatencyTable.load(str(out)).entries) == summary["keys"]
