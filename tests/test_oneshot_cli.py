"""tools/bignas.py on bad input: one `error:` line and exit code 2, never a traceback."""

import ppnas  # noqa: F401  # isort: skip
import json
import subprocess
import sys

import pytest
from conftest import ROOT
from oneshot_helpers import run_bignas, trained_config, with_supernet, write_bignas_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_wider):
    return trained_config(tmp_path_factory.mktemp("supernet"), tiny_wider, max_iters=1)["save_dir"]


def _one_line_exit_2(code, err, expected):
    assert code == 2
    assert err.startswith(expected), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unknown_phase(capsys, tmp_path, tiny_wider):
    code, _, err = run_bignas(capsys, "-c", str(write_bignas_config(tmp_path, tiny_wider)), "--phase", "train")
    _one_line_exit_2(code, err, "error: unknown --phase 'train'; choose one of train_supnet, sample_flops, search, ")


@pytest.mark.parametrize("phase", ["search", "evaluate_subnet", "finetune_subnet"])
def test_a_phase_that_needs_a_supernet_names_the_phase_to_run_first(capsys, tmp_path, tiny_wider, phase):
    config = write_bignas_config(tmp_path, tiny_wider, subnet_tokens="2,1,3,8,2,1,2,1,0")
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", phase)
    _one_line_exit_2(code, err, f"error: --phase {phase} needs a trained supernet and ")
    assert "run --phase train_supnet first" in err


@pytest.mark.parametrize(
    "tokens, expected",
    [
        ("2,1,3,8,2,1,2,1", "error: BlazeFaceNasSpace takes 9 tokens, got 8"),
        ("2,1,3,8,2,1,2,1,1", "error: BlazeFaceNasSpace token 8 = 1 is out of range: it must be in [0, 0]"),
        ("2,1,3,x,2,1,2,1,0", "error: subnet_tokens must be integers separated by commas"),
        ("", "error: this phase needs a subnet: -o subnet_tokens="),
    ],
)
def test_bad_subnet_tokens(capsys, tmp_path, tiny_wider, trained, tokens, expected):
    config = with_supernet(trained, tmp_path, tiny_wider)
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "evaluate_subnet", "-o", f"subnet_tokens={tokens}")
    _one_line_exit_2(code, err, expected)


def test_a_checkpoint_of_another_space_setting(capsys, tmp_path, tiny_wider, trained):
    config = with_supernet(trained, tmp_path, tiny_wider)
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "-o", "kernel_choices=[3,5]")
    _one_line_exit_2(code, err, "error: the supernet checkpoint in ")
    assert "was trained with kernel_choices [3], this config has [3, 5]" in err


def test_a_window_no_subnet_meets_stops_after_max_rejects(capsys, tmp_path, tiny_wider, trained):
    window = {"ctype": "flops", "min_constraint": 1e12, "max_constraint": 2e12}
    config = with_supernet(trained, tmp_path, tiny_wider, Constraint=window, max_rejects=4)
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet")
    _one_line_exit_2(code, err, "error: no candidate met the constraint flops in [1e+12, 2e+12] FLOPs in 4 draws")
    assert "the values seen were in [" in err


def test_bad_strategy_and_an_existing_supernet(capsys, tmp_path, tiny_wider, trained):
    config = with_supernet(trained, tmp_path, tiny_wider, max_iters=1)
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "train_supnet", "-o", "sample_strategy=[max,mid]")
    _one_line_exit_2(code, err, "error: sample_strategy must be a list of max, min, random, got ['max', 'mid']")
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "train_supnet")
    _one_line_exit_2(code, err, "error: ")
    assert "already holds a supernet trained to iteration 1: resume it with -r " in err
    code, out, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "-o", "search_mode=grid")
    _one_line_exit_2(code, err, "error: search_mode must be one of random, traverse, sanas, nsga2, tpe, got 'grid'")


def test_a_search_uses_a_supernet_trained_elsewhere_and_refuses_a_mismatched_one(capsys, tmp_path, tiny_wider, trained):
    config = write_bignas_config(tmp_path, tiny_wider, subnet_count=2, search_mode="traverse", traverse_stride=5)
    elsewhere = f"supernet_dir={trained}"
    code, _, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet", "-o", elsewhere)
    assert code == 0, err
    save_dir = tmp_path / "out"
    records = [json.loads(line) for line in (save_dir / "history.jsonl").read_text().splitlines()]
    assert sum(r["status"] == "trained" for r in records) == 2 and not (save_dir / "supernet").exists()
    assert json.loads((save_dir / "search_meta.json").read_text())["search"]["sampler"] == "traverse"
    for override, difference in [
        ("kernel_choices=[3,5]", "was trained with kernel_choices [3], this config has [3, 5]"),
        ("input_size=96", "was trained with input_size 64, this config has 96"),
    ]:
        other = f"save_dir={tmp_path / override.split('=')[0]}"
        code, _, err = run_bignas(
            capsys, "-c", str(config), "--phase", "search", "-o", f"supernet_dir={trained}", override, other
        )
        _one_line_exit_2(code, err, f"error: the supernet checkpoint in {trained}/supernet ")
        assert difference in err


def test_train_supnet_prints_plain_progress_lines_off_a_terminal(tmp_path, tiny_wider):
    config = write_bignas_config(tmp_path, tiny_wider, max_iters=2)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bignas.py"), "-c", str(config), "--phase", "train_supnet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stdout and "\r" not in proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("train_supnet: ")]
    assert [line.split(" max ")[0] for line in lines] == ["train_supnet: 1/2 it", "train_supnet: 2/2 it"]
