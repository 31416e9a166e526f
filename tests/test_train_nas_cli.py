"""tools/train_nas.py as users run it: bad input, repeatable seeds, resume after SIGKILL."""

import ppnas  # noqa: F401  # isort: skip
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, run_tool, write_det_config

TRAIN_NAS = str(ROOT / "tools" / "train_nas.py")


def run_cli(capsys, *argv):
    """Run the entry point in-process as the shell would; return (exit code, stderr)."""
    code, _, err = run_tool(capsys, "train_nas", *argv)
    return code, err


@pytest.mark.parametrize(
    "override, expected",
    [
        ("TrainDataset.dataset_dir=/no/such/wider", "error: TrainDataset.dataset_dir does not exist: /no/such/wider"),
        ("search_space=BlazeFaceSpace", "error: unknown search space 'BlazeFaceSpace'; registered spaces: "),
        ("serch_steps=3", "error: unknown key 'serch_steps' in detection config (did you mean 'search_steps'?)"),
        ("Constraint.ctype=energy", "error: Constraint.ctype must be one of flops, latency, params, got 'energy'"),
        ("use_gpu=true", "error: use_gpu is set but this Paddle has no usable GPU"),
        ("search_steps", "error: override 'search_steps' has no '='"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, tiny_wider, override, expected):
    config = write_det_config(tmp_path, tiny_wider)
    code, err = run_cli(capsys, "-c", str(config), "-o", override)
    assert code == 2
    assert err.startswith(expected)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_annotation_file(capsys, tmp_path, tiny_wider):
    empty = tmp_path / "empty_wider"
    (empty / "WIDER_train" / "images").mkdir(parents=True)
    config = write_det_config(tmp_path, tiny_wider, TrainDataset={"dataset_dir": str(empty)})
    code, err = run_cli(capsys, "-c", str(config))
    assert code == 2
    assert (
        err.strip() == f"error: TrainDataset.anno_path not found: {empty}/wider_face_split/wider_face_train_bbx_gt.txt"
    )


def test_yaml_syntax_error_names_file_and_line(capsys, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("search_steps: 3\nConstraint: {ctype: flops\nsave_dir: x\n")
    code, err = run_cli(capsys, "-c", str(bad))
    assert code == 2 and err.startswith(f"error: YAML syntax error at {bad}:")


def _trained(save_dir):
    with open(os.path.join(save_dir, "history.jsonl")) as f:
        return [(r["tokens"], r["reward"]) for r in map(json.loads, f) if r["status"] == "trained"]


def _search(config, *extra):
    return subprocess.Popen(
        [sys.executable, TRAIN_NAS, "-c", str(config), "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_seeded_search_repeats_and_resume_after_kill_loses_nothing(tmp_path, tiny_wider):
    keys = {"search_steps": 3, "max_iters": 12}
    configs = {}
    for name in ("a", "b", "killed"):
        (tmp_path / name).mkdir()
        configs[name] = write_det_config(tmp_path / name, tiny_wider, **keys)
    first, second = _search(configs["a"]), _search(configs["b"])
    out_a, _ = first.communicate(timeout=300)
    out_b, _ = second.communicate(timeout=300)
    assert first.returncode == 0, out_a[-2000:]
    assert second.returncode == 0, out_b[-2000:]
    reference = _trained(tmp_path / "a" / "out")
    assert len(reference) == 3
    assert _trained(tmp_path / "b" / "out") == reference  # same seed: same candidates, same rewards
    assert "BlazeFace-NAS structure start" in out_a and "blazeface_nas.yml" in out_a

    save_dir = tmp_path / "killed" / "out"
    victim = _search(configs["killed"])
    deadline = time.time() + 240
    while time.time() < deadline and not (save_dir / "history.jsonl").exists():
        time.sleep(0.2)
    time.sleep(0.5)  # into the second candidate's training
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    done_before = _trained(save_dir)
    assert 1 <= len(done_before) < 3, "the kill should land after the first candidate and before the last"
    resumed = _search(configs["killed"], "-r", str(save_dir))
    out_r, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out_r[-2000:]
    assert f"resuming the search in {save_dir}: {len(done_before)}/3 steps done" in out_r
    assert _trained(save_dir) == reference  # nothing lost, nothing evaluated twice
