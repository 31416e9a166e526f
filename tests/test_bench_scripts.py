"""Benchmark scripts as a user runs them: the shipped table by default, bad input as one line, no litter."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import importlib.util
import json
import os
import tempfile
import time

import pytest
from conftest import LATENCY_855, ROOT

from ppnas.cli import EXIT_USER_ERROR, run_main


def _load(script, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # the scripts import bench/common.py
    spec = importlib.util.spec_from_file_location(script, ROOT / "bench" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constraint_cost_takes_table_defaulting_to_the_shipped_copy(monkeypatch, capsys):
    bench = _load("constraint_cost", monkeypatch)
    assert bench.parse_args([]).table == str(LATENCY_855) and LATENCY_855.is_file()
    with pytest.raises(SystemExit) as exit_info:
        run_main(bench.main, ["--table", "/no/such/latency.txt"])
    assert exit_info.value.code == EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: latency table not found: /no/such/latency.txt\n"


def test_search_overhead_leaves_no_folder_behind(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where mkdtemp/TemporaryDirectory put folders
    monkeypatch.chdir(ROOT)  # the script names the demo config relative to the repo
    bench = _load("search_overhead", monkeypatch)
    bench.main(["--steps", "1", "--max-iters", "1", "--results", str(tmp_path / "results")])
    assert os.listdir(scratch) == []  # the generated set and the search's save_dir are gone
    saved = json.loads((tmp_path / "results" / "search_overhead.json").read_text())
    assert saved["steps"] == 1 and saved["candidates"]["trained"] == 1


def test_reference_shards_split_the_runs_once_ranked_subnets_first(monkeypatch):
    bench = _load("scratch_reference", monkeypatch)
    members = [{"label": "bin00"}, {"label": "hand_made"}, {"label": "bin01"}]
    every = [(seed, m["label"]) for seed, m in bench.reference_runs(members, (0, 1))]
    assert every == [(0, "bin00"), (0, "bin01"), (1, "bin00"), (1, "bin01"), (0, "hand_made"), (1, "hand_made")]
    halves = [[(s, m["label"]) for s, m in bench.reference_runs(members, (0, 1), (i, 2))] for i in (0, 1)]
    assert sorted(halves[0] + halves[1]) == sorted(every) and not set(halves[0]) & set(halves[1])
    assert bench.shard_arg("1/2") == (1, 2)
    for bad in ("2/2", "x", "1/2/3"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.shard_arg(bad)


def test_supernet_training_counts_the_cpu_of_a_killed_piece(tmp_path, monkeypatch):
    """break_even_subnets counts the whole supernet training: a run killed before its first checkpoint too."""
    from ppnas.oneshot import train as oneshot_train

    bench = _load("supernet_training", monkeypatch)

    def killed_after_some_work(cfg, resume, quiet):
        assert resume is False  # no checkpoint yet: a fresh start
        busy_until = time.thread_time() + 0.2
        while time.thread_time() < busy_until:
            pass
        raise KeyboardInterrupt

    monkeypatch.setattr(oneshot_train, "train_supernet", killed_after_some_work)
    cfg = {"save_dir": str(tmp_path / "not_made_yet"), "max_iters": 10}
    for piece in (1, 2):
        with pytest.raises(KeyboardInterrupt):
            bench.train_counted(cfg)
        assert bench.supernet_cpu_seconds(cfg) >= 0.2 * piece
