"""Progress and VisualDL observers fed real CandidateRecords, as run_search feeds them."""

import zlib  # noqa: F401  # isort: skip  # before paddle (see ppnas/__init__.py)
import io
import os

import pytest
from visualdl import LogReader

from ppnas.engine.protocols import SearchResult
from ppnas.history import CandidateRecord
from ppnas.observers import PLAIN_ITER_LINES, ProgressObserver, VisualDLObserver, make_observers

ITERS = 20
REWARDS = [0.41, 0.63, 0.52]


def _records():
    """Three rewarded candidates, with a rejected and a failed draw in between (as a real search goes)."""
    common = dict(structure={"w": 8}, flops=2.5e8, params=120_000, seconds=12.0)
    yield CandidateRecord(tokens=[0, 1], status="trained", step=1, reward=REWARDS[0], latency_ms=21.5, **common)
    yield CandidateRecord(tokens=[5, 5], status="rejected", reason="latency 90000 outside [1, 2] us", **common)
    yield CandidateRecord(tokens=[0, 2], status="trained", step=2, reward=REWARDS[1], latency_ms=23.0, **common)
    yield CandidateRecord(tokens=[1, 2], status="failed", reason="FloatingPointError: reward is nan", **common)
    yield CandidateRecord(tokens=[1, 3], status="trained", step=3, reward=REWARDS[2], latency_ms=22.0, **common)


def _drive(observer) -> None:
    """on_start, then per candidate: training iterations (not for rejected draws) and on_candidate."""
    observer.on_start(len(REWARDS), 0)
    best = None
    for n, record in enumerate(_records()):
        if record.status != "rejected":
            for iteration in range(1, ITERS + 1):
                observer.on_iter(iteration, ITERS, 10.0 * n + 1.0 / iteration)
        if record.status == "trained":
            best = record.reward if best is None else max(best, record.reward)
        info = {"best_tokens": None, "best_reward": best, "temperature": 10.24 * 0.85**n, "iter": n}
        observer.on_candidate(record, info)
    observer.on_end(SearchResult(steps_done=3, best={"reward": max(REWARDS), "tokens": [0, 2]}, exported=[]))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_tty():
    stream = io.StringIO()
    observer = ProgressObserver(stream=stream)
    assert observer.plain  # StringIO is no terminal
    _drive(observer)
    out = stream.getvalue()
    assert "\r" not in out
    lines = out.splitlines()
    assert lines[0] == "search: 3 steps"  # a fresh search
    step_lines = [line for line in lines if line.startswith("step ") and " reward " in line]
    assert [line.split()[1] for line in step_lines] == ["1/3", "2/3", "3/3"]
    assert "reward 0.6300 (best 0.6300)" in step_lines[1] and "(best 0.6300)" in step_lines[2]
    assert "21.50 ms" in step_lines[0] and "250M FLOPs, 120k params" in step_lines[0]
    assert "rejected 1, failed 1" in step_lines[2]
    assert any(line.startswith("rejected [5, 5]: latency 90000") for line in lines)
    assert any(line.startswith("failed [1, 2]: FloatingPointError") for line in lines)
    # a log file gets PLAIN_ITER_LINES loss lines per trained/failed candidate, not one per iteration
    iter_lines = [line for line in lines if line.startswith("  step ")]
    assert len(iter_lines) == 4 * PLAIN_ITER_LINES
    assert iter_lines[PLAIN_ITER_LINES - 1] == f"  step 1 iter {ITERS}/{ITERS} loss 0.0500"
    assert lines[-1].startswith("search finished: 3 steps, rejected 1, failed 1 in this run; best reward 0.6300")


def test_a_client_shows_the_servers_count_and_total():
    stream = io.StringIO()
    observer = ProgressObserver(stream=stream)
    observer.on_start(4, 1)  # the client's own search_steps; the server counts every client's rewards
    assert stream.getvalue() == "search: 1/4 steps done, going on\n"
    for trained, record in zip((1, 3), (r for r in _records() if r.status == "trained")):  # client steps 1, 2
        observer.on_candidate(record, {"best_reward": record.reward, "search_steps": 3, "trained": trained})
    steps = [line.split(" reward ")[0] for line in stream.getvalue().splitlines() if " reward " in line]
    assert steps == ["step 1/3", "step 3/3 (this client's step 2)"]


def test_bars_on_a_terminal():
    stream = _Terminal()
    observer = ProgressObserver(stream=stream)
    assert not observer.plain
    _drive(observer)
    out = stream.getvalue()
    assert "\r" in out  # tqdm redraws in place
    assert "search: 100%" in out and "3/3" in out
    assert "rejected=1" in out and "failed=1" in out and "best=0.6300" in out
    assert "step 2:" in out  # the iteration bar of the candidate in training
    assert "failed [1, 2]: FloatingPointError" in out
    assert out.rstrip().splitlines()[-1].startswith("search finished: 3 steps")


def _scalars(reader: LogReader, tag: str):
    return [(item.id, round(item.value, 5)) for item in reader.get_data("scalar", tag)]


def test_visualdl_logs_every_tag(tmp_path):
    observer = VisualDLObserver(str(tmp_path / "vdl"), run_name="client-a")
    _drive(observer)
    run_dir = tmp_path / "vdl" / "client-a"
    files = os.listdir(run_dir)
    assert len(files) == 1 and files[0].startswith("vdlrecords.")
    reader = LogReader(file_path=str(run_dir / files[0]))
    tags = set(reader.get_tags()["scalar"])
    expected = {"search/reward", "search/best_reward", "search/MFLOPs", "search/params", "search/latency_ms"}
    expected |= {"search/temperature", "search/seconds", "train/loss", "draws/MFLOPs", "draws/latency_ms"}
    expected |= {"draws/rejected", "draws/failed"}
    assert expected <= tags
    assert _scalars(reader, "search/reward") == [(1, 0.41), (2, 0.63), (3, 0.52)]
    assert _scalars(reader, "search/best_reward") == [(1, 0.41), (2, 0.63), (3, 0.63)]
    assert _scalars(reader, "search/latency_ms") == [(1, 21.5), (2, 23.0), (3, 22.0)]
    assert _scalars(reader, "search/MFLOPs") == [(1, 250.0), (2, 250.0), (3, 250.0)]
    assert _scalars(reader, "search/temperature")[1] == (2, round(10.24 * 0.85**2, 5))
    assert _scalars(reader, "draws/rejected") == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1)]
    assert _scalars(reader, "draws/failed")[-1] == (5, 1)
    # the loss axis runs on across candidates: 4 trained/failed candidates x ITERS iterations
    loss = _scalars(reader, "train/loss")
    assert [step for step, _ in loss] == list(range(1, 4 * ITERS + 1))
    assert loss[ITERS] == (ITERS + 1, 20.0 + 1.0)  # first iteration of the third candidate drawn (n=2)


def test_visualdl_resumed_run_continues_the_loss_axis(tmp_path):
    observer = VisualDLObserver(str(tmp_path), run_name="resumed")
    observer.on_start(10, 4)
    observer.on_iter(1, ITERS, 0.5)
    observer.on_end(SearchResult(steps_done=4, best=None, exported=[]))
    files = os.listdir(tmp_path / "resumed")
    reader = LogReader(file_path=str(tmp_path / "resumed" / files[0]))
    assert _scalars(reader, "train/loss") == [(4 * ITERS + 1, 0.5)]


@pytest.mark.parametrize(
    "quiet, use_vdl, vdl_dir, expected",
    [
        (True, False, None, []),
        (False, False, None, [ProgressObserver]),
        (True, True, None, [VisualDLObserver]),
        (False, True, "elsewhere", [ProgressObserver, VisualDLObserver]),
    ],
)
def test_make_observers_follows_the_flags(tmp_path, quiet, use_vdl, vdl_dir, expected):
    vdl_log_dir = None if vdl_dir is None else str(tmp_path / vdl_dir)
    observers = make_observers(quiet, use_vdl, vdl_log_dir, str(tmp_path / "save"), run_name="r")
    assert [type(o) for o in observers] == expected
    vdl = [o for o in observers if isinstance(o, VisualDLObserver)]
    if vdl:
        assert vdl[0].run_dir == os.path.join(vdl_log_dir or str(tmp_path / "save" / "vdl_log"), "r")
        assert not os.path.exists(vdl[0].run_dir)  # nothing is written before the search starts
