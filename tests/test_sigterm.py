"""SIGTERM (`kill`, `timeout`, a batch scheduler) ends a search like Ctrl-C: one line, state saved, resumable."""

import ppnas  # noqa: F401  # isort: skip
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, write_det_config

from ppnas import interrupts
from ppnas.cli import EXIT_TERMINATED, run_main

TRAIN_NAS = str(ROOT / "tools" / "train_nas.py")


@pytest.fixture
def python_handlers():
    """ppnas's SIGINT/SIGTERM handlers for the test, the ones from before afterwards."""
    with interrupts.handled():
        yield


def test_a_signal_inside_held_back_waits_for_the_end_of_the_block(python_handlers):
    steps = []
    with pytest.raises(interrupts.Terminated):
        with interrupts.held_back():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # Python runs the handler between bytecodes: it had its chance here
            steps.append("line")
            steps.append("checkpoint")
        steps.append("after")
    assert steps == ["line", "checkpoint"]
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)


def test_sigterm_stops_a_search_cleanly_and_it_resumes(tmp_path, tiny_wider, capsys):
    # 40 iterations make a candidate last seconds, so the signal 0.3 s after the first line lands inside the second
    config = write_det_config(tmp_path, tiny_wider, search_steps=3, max_iters=40)
    save_dir = tmp_path / "out"
    search = subprocess.Popen(
        [sys.executable, TRAIN_NAS, "-c", str(config), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (save_dir / "history.jsonl").exists():
        time.sleep(0.1)
    time.sleep(0.3)  # into the second candidate
    search.send_signal(signal.SIGTERM)
    output, _ = search.communicate(timeout=60)
    assert search.returncode == EXIT_TERMINATED, output[-3000:]
    assert output.strip().splitlines()[-1] == f"interrupted (SIGTERM): resume with -r {save_dir}", output[-3000:]
    assert "FatalError" not in output and "Traceback" not in output, output[-3000:]
    lines = (save_dir / "history.jsonl").read_text().splitlines()
    done = [json.loads(line) for line in lines]  # every line whole: the signal did not cut one
    assert 1 <= sum(r["status"] == "trained" for r in done) < 3, "SIGTERM should land after candidate 1, before 3"
    checkpoint = json.loads((save_dir / "sanas.checkpoints").read_text())
    assert all(str(r["tokens"]) in checkpoint["_searched"] for r in done), "a line without its checkpoint"

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import train_nas
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as resumed:
        run_main(train_nas.main, ["-c", str(config), "--quiet", "-r", str(save_dir)])
    assert resumed.value.code == 0
    trained_before = sum(r["status"] == "trained" for r in done)
    assert f"resuming the search in {save_dir}: {trained_before}/3 steps done" in capsys.readouterr().out
    records = [json.loads(line) for line in (save_dir / "history.jsonl").read_text().splitlines()]
    assert records[: len(done)] == done
    trained = [r for r in records if r["status"] == "trained"]
    assert [r["step"] for r in trained] == [1, 2, 3]
    assert len({str(r["tokens"]) for r in records}) == len(records)
