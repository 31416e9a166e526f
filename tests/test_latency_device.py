"""A table for another device: export the op models (MNN), time them where paddle and ppnas cannot be imported,
resume a killed timer, import the timings, and refuse bad timing files with one line naming file and line."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import DEMO_DET_CONFIG, ROOT, run_tool

from latency.table import LatencyTable

SIZE, SAMPLES = "32", "1"
FAST_TIMER = ["--threads", "1", "--warmup", "0", "--repeats", "1", "--passes", "1", "--sweeps", "2", "--chunk", "16"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`build_latency_table.py --engine mnn --export-ops DIR`, as a user runs it on the workstation."""
    folder = tmp_path_factory.mktemp("device") / "ops_blazeface"
    command = [sys.executable, str(ROOT / "tools" / "build_latency_table.py"), "-c", str(DEMO_DET_CONFIG)]
    command += ["--engine", "mnn", "--export-ops", str(folder), "--samples", SAMPLES, "--input-size", SIZE, "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["engine"] == "mnn" and summary["next"].startswith(f"python {folder}/time_ops.py {folder}")
    return folder, summary


def run_timer(folder: pathlib.Path, out: pathlib.Path) -> subprocess.CompletedProcess:
    """time_ops.py in an interpreter where `import paddle` and `import ppnas` fail (stub packages first)."""
    stubs = folder.parent / "stubs"
    for name in ("paddle", "ppnas"):
        (stubs / name).mkdir(parents=True, exist_ok=True)
        (stubs / name / "__init__.py").write_text(f"raise ImportError('no {name} on the device')\n")
    env = dict(os.environ, PYTHONPATH=str(stubs))
    command = [sys.executable, str(folder / "time_ops.py"), str(folder), "--out", str(out), *FAST_TIMER]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=folder.parent)


@pytest.fixture(scope="module")
def timed(exported):
    folder, summary = exported
    out = folder.parent / "timings.jsonl"
    done = run_timer(folder, out)
    assert done.returncode == 0, done.stderr
    return out


def test_the_export_folder_holds_one_mnn_model_per_key_and_the_timer(exported):
    folder, summary = exported
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["engine"] == "mnn" and manifest["opset"] == 11 and manifest["ppnas_version"]
    assert manifest["table"] == {"space": "BlazeFaceNasSpace", "input_shape": [1, 3, 32, 32], "samples": 1, "seed": 0}
    assert (
        len(manifest["ops"]) == summary["keys"] > 40 and len({op["key"] for op in manifest["ops"]}) == summary["keys"]
    )
    assert sorted(os.listdir(folder / "ops")) == sorted(os.path.basename(op["file"]) for op in manifest["ops"])
    assert {op["reference"]["file"] for op in manifest["ops"]} == {"ref/fixed.mnn"} and (
        folder / "ref/fixed.mnn"
    ).exists()
    assert (folder / "time_ops.py").read_text() == (ROOT / "latency" / "engines" / "time_ops.py").read_text()


def test_the_timer_runs_without_paddle_and_ppnas_and_resumes(exported, timed, tmp_path):
    folder, summary = exported
    lines = timed.read_text().splitlines()
    header, results = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["engine"] == "mnn" and header["settings"]["timer"] == "thread_cpu"
    assert header["timing"]["sweeps"] == 2 and header["manifest_id"] == summary["manifest_id"]
    assert len(results) == 2 * summary["keys"] and all(r["us"] > 0 for r in results)
    # killed while writing: the second sweep's last chunk is gone and a line is cut in the middle
    killed = tmp_path / "timings.jsonl"
    kept = lines[: len(lines) - 10]
    killed.write_text("\n".join(kept) + "\n" + lines[len(lines) - 10][:25])
    done = run_timer(folder, killed)
    assert done.returncode == 0, done.stderr
    assert "dropping an unfinished last line" in done.stderr
    again = killed.read_text().splitlines()
    assert again[: len(kept)] == kept and len(again) == len(lines)  # nothing repeated, nothing lost
    assert sorted(json.loads(line)["key"] for line in again[len(kept) :]) == sorted(
        json.loads(line)["key"] for line in lines[len(kept) :]
    )


def _import(capsys, timings, out, *extra):
    args = ["-c", str(DEMO_DET_CONFIG), "--import", str(timings), "--out", str(out), "--quiet", *extra]
    return run_tool(capsys, "build_latency_table", *args)


def test_import_makes_a_table_of_the_minimum_over_sweeps(capsys, exported, timed, tmp_path):
    out = tmp_path / "board.txt"
    code, stdout, stderr = _import(capsys, timed, out)
    assert code == 0, stderr
    table = LatencyTable.load(str(out))
    results = [json.loads(line) for line in timed.read_text().splitlines()[1:]]
    assert table.engine.startswith("mnn-") and table.device.startswith("cpu:") and table.unit == "us"
    assert {k: v for k, v in table.settings.items() if k != "unstable"} == {
        "device": "cpu",
        "opset": "11",
        "prefix": "0",
        "fuses": "batch_norm|bias|relu|relu6",
        "threads": "1",
        "timer": "thread_cpu",
    }
    for key, value in table.entries.items():
        mine = [r["us"] for r in results if r["key"] == key]
        stable = [r["us"] for r in results if r["key"] == key and not r["unstable"]]
        assert len(mine) == 2 and value == pytest.approx(min(stable or mine), rel=1e-5)
    assert json.loads(stdout)["entries"] == len(table.entries) == exported[1]["keys"]


def _edited(timed, tmp_path, line_number, edit):
    lines = timed.read_text().splitlines(keepends=True)
    record = json.loads(lines[line_number - 1])
    lines[line_number - 1] = edit(record)
    path = tmp_path / "edited.jsonl"
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: json.dumps({**r, "us": -3.0}) + "\n", "edited.jsonl:5: time of '.*' must be a finite number >= 0"),
        (lambda r: json.dumps({**r, "us": math.nan}) + "\n", "edited.jsonl:5: time of .* got nan"),
        (lambda r: json.dumps(r)[:20] + "\n", "edited.jsonl:5: truncated or malformed line"),
        (lambda r: "", "lacks the timing of 1 key\\(s\\) in some sweep: .*run it again on the same folder"),
        (lambda r: json.dumps({**r, "key": "relu,1,1,1,1"}) + "\n", "has 1 key\\(s\\) this export does not have"),
    ],
)
def test_import_refuses_bad_timings_with_one_line(capsys, timed, tmp_path, edit, message):
    code, _, stderr = _import(capsys, _edited(timed, tmp_path, 5, edit), tmp_path / "t.txt")
    lines = stderr.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: ") and "Traceback" not in stderr
    assert re.search(message, lines[-1]), lines[-1]
    assert not (tmp_path / "t.txt").exists()


def test_import_refuses_another_export_engine_or_table(capsys, timed, tmp_path):
    code, _, stderr = _import(capsys, timed, tmp_path / "t.txt", "--samples", "2")
    assert code == 2 and "holds timings of another export (manifest" in stderr.splitlines()[-1]
    code, _, stderr = _import(capsys, timed, tmp_path / "t.txt", "--engine", "onnxruntime")
    assert code == 2 and "holds mnn timings, not onnxruntime" in stderr.splitlines()[-1]
    other = tmp_path / "ort.txt"
    other.write_text("onnxruntime-1.32.0\tcpu:x\tus\tdevice=cpu;opset=11;prefix=0;threads=1;timer=thread_cpu\n")
    code, _, stderr = _import(capsys, timed, other)
    assert code == 2 and "another engine, device or settings: device cpu:x" in stderr.splitlines()[-1]
    code, _, stderr = _import(capsys, tmp_path / "none.jsonl", tmp_path / "t.txt")
    assert code == 2 and stderr.strip().endswith("timings file not found: " + str(tmp_path / "none.jsonl"))


def test_bad_commands_are_one_line_errors(capsys, tmp_path):
    code, _, stderr = run_tool(
        capsys, "build_latency_table", "-c", str(DEMO_DET_CONFIG), "--export-ops", "d", "--import", "t.jsonl"
    )
    assert code == 2 and stderr.strip().splitlines()[-1] == (
        "error: --export-ops and --import are separate steps: give one of them"
    )
    code, _, stderr = run_tool(
        capsys, "build_latency_table", "-c", str(DEMO_DET_CONFIG), "--export-ops", "d", "--out", "t"
    )
    assert code == 2 and "--export-ops writes op models, not a table" in stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    code, _, stderr = run_tool(
        capsys, "build_latency_table", "-c", str(DEMO_DET_CONFIG), "--export-ops", str(tmp_path / "full"),
        "--samples", "1", "--input-size", "32", "--quiet",
    )  # fmt: skip
    assert code == 2 and "is not empty and holds no manifest.json" in stderr.strip().splitlines()[-1]
    timer = subprocess.run(
        [sys.executable, str(ROOT / "latency" / "engines" / "time_ops.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert timer.returncode == 2 and timer.stderr.strip() == (
        f"error: {tmp_path / 'manifest.json'} not found: pass the folder written by build_latency_table.py --export-ops"
    )
