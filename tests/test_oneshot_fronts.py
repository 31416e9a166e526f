"""The device-front search (ppnas/oneshot/fronts.py): Optuna's NSGA-II over a trained supernet, one Pareto front per
latency table, the subnet shipped under each budget (exported), two worker processes on one storage, and one
`error:` line for each bad input."""

import ppnas  # noqa: F401  # isort: skip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import ROOT
from oneshot_helpers import run_bignas, trained_config, with_supernet

from ppnas.history import History

TABLE_855 = ROOT / "configs" / "latency_855.txt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_wider):
    return trained_config(tmp_path_factory.mktemp("supernet"), tiny_wider)["save_dir"]


@pytest.fixture(scope="module")
def board_table(tmp_path_factory):
    """A second device in the table format: the 855 table's convolutions, 3x3 ones 3x faster and the rest 2x
    slower (a device whose ranking of subnets differs from the 855's)."""
    lines = TABLE_855.read_text().splitlines()
    out = [lines[0].replace("855", "board")]
    for line in lines[1:]:
        key, value = line.rsplit("\t", 1)
        kernel = key.split(",")[9] if key.startswith("conv,") else "0"
        out.append(f"{key}\t{float(value) / 3 if kernel == '3' else float(value) * 2:g}")
    path = tmp_path_factory.mktemp("tables") / "board.txt"
    path.write_text("\n".join(out) + "\n")
    return path


def front_keys(tables, **keys):
    """A front search over `tables`, the 855 table's missing keys (64 px shapes) priced by the nearest ones."""
    return dict(
        search_mode="nsga2",
        population_size=4,
        tables=[str(t) for t in tables],
        Constraint={"ctype": "flops", "min_constraint": None, "max_constraint": None, "missing_keys": "nearest"},
        **keys,
    )


def dominated(row, rows):
    return any(
        o["reward"] >= row["reward"]
        and o["latency_ms"] <= row["latency_ms"]
        and (o["reward"] > row["reward"] or o["latency_ms"] < row["latency_ms"])
        for o in rows
    )


def test_one_front_per_table_and_the_best_subnet_under_each_budget(capsys, tmp_path, tiny_wider, trained, board_table):
    keys = front_keys([TABLE_855, board_table], subnet_count=8, budgets_ms={"latency_855": [5.0, 9.0], "board": [6.0]})
    config = with_supernet(trained, tmp_path, tiny_wider, **keys)
    code, out, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet")
    assert code == 0, err
    save_dir = tmp_path / "out"
    trained_records = History.in_dir(str(save_dir)).trained()
    assert len(trained_records) == 8
    assert max(Counter(tuple(r["tokens"]) for r in trained_records).values()) == 1  # each subnet evaluated once
    assert all(set(r["latencies_ms"]) == {"latency_855", "board"} for r in trained_records)
    fronts = json.loads((save_dir / "fronts.json").read_text())
    assert fronts["evaluated"] == 8
    for name, table in fronts["tables"].items():
        rows = [{"reward": r["reward"], "latency_ms": r["latencies_ms"][name]} for r in trained_records]
        front = table["front"]
        assert front and all(not dominated(row, rows) for row in front)
        assert all(dominated(row, rows) for row in rows if row not in [{k: f[k] for k in row} for f in front])
        for entry in table["budgets"]:
            within = [r for r in rows if r["latency_ms"] <= entry["budget_ms"]]
            if not within:
                assert entry["subnet"] is None and entry["fastest_found"]["latency_ms"] > entry["budget_ms"]
                continue
            assert entry["subnet"]["reward"] == max(r["reward"] for r in within)
            folder = entry["export"]["folder"]
            assert os.path.isfile(os.path.join(folder, "blazeface_nas.yml"))
            assert os.path.isfile(os.path.join(folder, "best_model.pdparams"))
            assert f"--weights {folder}/best_model.pdparams" in entry["export"]["export_command"]
    assert [b["budget_ms"] for b in fronts["tables"]["latency_855"]["budgets"]] == [5.0, 9.0]
    by_tokens = {tuple(r["tokens"]): r for r in trained_records}
    for name, table in fronts["tables"].items():  # each front is on its own table's latencies
        assert all(row["latency_ms"] == by_tokens[tuple(row["tokens"])]["latencies_ms"][name] for row in table["front"])
    assert (save_dir / "fronts.png").stat().st_size > 10_000 and (save_dir / "report.md").is_file()
    assert "latency_855: front of" in out and "board: front of" in out


WORKER = """
import sys
sys.path.insert(0, {tools!r})
from ppnas.cli import run_main
import bignas
run_main(bignas.main, ["-c", {config!r}, "--phase", "search", "--quiet"])
"""


def test_two_workers_share_one_storage_and_evaluate_each_subnet_once(tmp_path, tiny_wider, trained, board_table):
    config = with_supernet(trained, tmp_path, tiny_wider, **front_keys([TABLE_855, board_table], subnet_count=10))
    code = WORKER.format(tools=str(ROOT / "tools"), config=str(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen([sys.executable, "-c", code], cwd=str(tmp_path), env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [w.communicate(timeout=600)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    trained_records = History.in_dir(str(tmp_path / "out")).trained()
    counts = Counter(tuple(r["tokens"]) for r in trained_records)
    assert max(counts.values()) == 1
    assert 10 <= len(counts) <= 11  # both may start their last subnet before the other's is recorded
    assert {r["client"] for r in trained_records} == {"worker0", "worker1"}
    assert json.loads((tmp_path / "out" / "fronts.json").read_text())["evaluated"] == len(counts)


def one_error(code, err):
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "keys, expected",
    [
        ({"tables": ["no_such_table.txt"]}, "tables: latency table not found: "),
        ({"Constraint": {"ctype": "flops", "missing_keys": "error"}}, "table latency_855 ("),
        ({"budgets_ms": [0.01]}, "budgets_ms 0.01 on table latency_855: no subnet meets it; the fastest subnet"),
        ({"budgets_ms": {"nokia": [3]}}, "budgets_ms names no table nokia: the tables are latency_855, board"),
        ({"storage": "sqlite:////no/such/folder/optuna.db"}, "storage 'sqlite:////no/such/folder/optuna.db' cannot"),
        ({"search_mode": "traverse"}, "tables: a front search draws with search_mode random, nsga2, tpe"),
    ],
)
def test_bad_input_is_one_error_line(capsys, tmp_path, tiny_wider, trained, board_table, keys, expected):
    settings = {**front_keys([TABLE_855, board_table], subnet_count=2), **keys}
    config = with_supernet(trained, tmp_path, tiny_wider, **settings)
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet")
    assert expected in one_error(code, err)
    assert not History.in_dir(str(tmp_path / "out")).read()  # stopped before any subnet was evaluated


def test_a_killed_worker_resumes_without_losing_or_repeating(capsys, tmp_path, tiny_wider, trained, board_table):
    config = with_supernet(trained, tmp_path, tiny_wider, **front_keys([TABLE_855, board_table], subnet_count=12))
    code = WORKER.format(tools=str(ROOT / "tools"), config=str(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=str(tmp_path), env=env)
    history = History.in_dir(str(tmp_path / "out"))
    deadline = time.time() + 300
    while len(history.trained()) < 3 and worker.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=60)
    before = [tuple(r["tokens"]) for r in history.trained()]
    assert 3 <= len(before) < 12  # killed mid-search
    code, out, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet", "-r", str(tmp_path / "out"))
    assert code == 0, err
    after = [tuple(r["tokens"]) for r in history.trained()]
    assert after[: len(before)] == before and len(set(after)) == len(after) and len(after) in (12, 13)


def test_the_predictor_learns_an_additive_metric_and_reports_held_out_tau():
    import random

    from ppnas.oneshot.predictor import AccuracyPredictor

    ranges = [6, 8, 12, 12, 6, 6, 6, 6, 1]
    rng = random.Random(0)
    weights = [[rng.random() for _ in range(n)] for n in ranges]
    tokens = [[rng.randrange(n) for n in ranges] for _ in range(60)]
    metric = [sum(w[t] for w, t in zip(weights, row)) for row in tokens]
    predictor = AccuracyPredictor(ranges)
    assert predictor.held_out_tau(tokens[:8], metric[:8])["kendall_tau"] is None  # too few to hold any out
    held_out = predictor.held_out_tau(tokens, metric)
    assert held_out["kendall_tau"] > 0.6 and held_out["p_value"] < 1e-6 and held_out["subnets"] == 60
    shuffled = metric[1:] + metric[:1]  # no relation to the tokens: nothing to learn
    assert abs(predictor.held_out_tau(tokens, shuffled)["kendall_tau"]) < 0.3


def test_screened_draws_are_recorded_as_rejected_never_as_measured(capsys, tmp_path, tiny_wider, trained, board_table):
    keys = front_keys([TABLE_855, board_table], subnet_count=12, predictor_after=4)
    config = with_supernet(trained, tmp_path, tiny_wider, **keys)
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet")
    assert code == 0, err
    records = History.in_dir(str(tmp_path / "out")).read()
    screened = [r for r in records if str(r.get("reason")).startswith("screened by the accuracy predictor")]
    assert all(r["status"] == "rejected" and r["reward"] is None for r in screened)
    assert len([r for r in records if r["status"] == "trained"]) == 12
    predictor = json.loads((tmp_path / "out" / "fronts.json").read_text())["predictor"]
    assert predictor["after"] == 4 and predictor["screened"] == len(screened) and predictor["held_out"]["subnets"] == 12
    assert predictor["held_out"]["kendall_tau"] is not None


def test_a_table_typed_on_the_command_line_is_relative_to_the_working_directory(
    capsys, monkeypatch, tmp_path, tiny_wider, trained
):
    keys = {**front_keys([], subnet_count=3), "search_mode": "tpe"}  # Optuna's multi-objective TPE draws here
    config = with_supernet(trained, tmp_path, tiny_wider, **keys)
    monkeypatch.chdir(ROOT)
    code, out, err = run_bignas(
        capsys, "-c", str(config), "--phase", "search", "--quiet", "-o", "tables=[configs/latency_855.txt]"
    )
    assert code == 0, err
    fronts = json.loads((tmp_path / "out" / "fronts.json").read_text())
    assert fronts["tables"]["latency_855"]["table_file"] == str(TABLE_855) and fronts["evaluated"] == 3
