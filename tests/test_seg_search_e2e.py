"""slim/nas/train.py end to end on tiny generated data: a 2-step search, its outputs, resume, full training."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import pathlib
import subprocess
import sys

import paddle
import pytest
from seg_helpers import ISSUE_PAIRS, make_tiny_config

from ppnas.tasks.segmentation_config import config_with_model, paddleseg_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(args, timeout=300):
    proc = subprocess.run([sys.executable, "-u", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return proc


def _history(save_dir):
    return [json.loads(line) for line in (save_dir / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg_e2e")
    cfg = make_tiny_config(folder, epochs=1)
    save_dir = folder / "out"
    proc = _run(
        [
            "slim/nas/train.py",
            "--log_steps",
            "1",
            "--cfg",
            str(cfg),
            "--use_gpu",
            "--use_mpio",
            "--save_dir",
            str(save_dir),
            "--quiet",
            *ISSUE_PAIRS,
        ]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cfg, save_dir, proc


def test_two_rewarded_candidates_and_outputs(search):
    cfg, save_dir, proc = search
    assert "training on the CPU" in proc.stdout  # --use_gpu without a GPU
    records = _history(save_dir)
    assert [(r["status"], r["step"]) for r in records] == [("trained", 1), ("trained", 2)]
    assert all(0.0 <= r["reward"] <= 1.0 and len(r["tokens"]) == 25 and r["flops"] > 0 for r in records)
    assert all(len(r["structure"]["blocks"]) == 6 for r in records)
    best = max(records, key=lambda r: r["reward"])
    assert f"best reward {best['reward']:.4f} with tokens {best['tokens']}" in proc.stdout
    assert "MobileNetV2SpaceSeg structure start" in proc.stdout
    assert (save_dir / "best_model" / "deeplabv3p_nas.yml").is_file()


def test_exported_fragment_and_weights_rebuild_the_best_model(search):
    cfg, save_dir, _ = search
    fragment = save_dir / "best_model" / "deeplabv3p_nas.yml"
    model = paddleseg_config(config_with_model(str(cfg), str(fragment))).model
    missing, unexpected = model.set_state_dict(paddle.load(str(save_dir / "best_model" / "model.pdparams")))
    assert missing == [] and unexpected == []
    best = max(_history(save_dir), key=lambda r: r["reward"])
    assert model.backbone.feat_channels == best["structure"]["feat_channels"]
    # PaddleSeg's own trainer (through the compat shim) trains and evaluates it
    full = save_dir.parent / "full"
    proc = _run(
        [
            "tools/train_seg.py",
            "--config",
            str(cfg),
            "--model",
            str(fragment),
            "--iters",
            "2",
            "--log_iters",
            "1",
            "--save_interval",
            "2",
            "--do_eval",
            "--save_dir",
            str(full),
        ]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (full / "iter_2" / "model.pdparams").is_file() and (full / "best_model" / "model.pdparams").is_file()


def test_resume_continues_the_same_search(search):
    cfg, save_dir, _ = search
    before = (save_dir / "history.jsonl").read_text().splitlines()
    pairs = ISSUE_PAIRS[:4] + ["SLIM.NAS_SEARCH_STEPS", "3"] + ISSUE_PAIRS[6:]
    proc = _run(["slim/nas/train.py", "--cfg", str(cfg), "-r", str(save_dir), "--quiet", *pairs])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = (save_dir / "history.jsonl").read_text().splitlines()
    assert after[:2] == before
    assert [r["step"] for r in _history(save_dir)] == [1, 2, 3]


def test_user_errors_exit_2_with_one_line(tmp_path):
    cfg = make_tiny_config(tmp_path)
    proc = _run(["slim/nas/train.py", "--cfg", str(cfg), "SLIM.NAS_PORT", "1", "SLIM.NAS_SEED"])
    assert proc.returncode == 2
    assert "error: Command line options config format error" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run(["slim/nas/train.py", "--cfg", str(cfg), "SLIM.NAS_PROT", "1"])
    assert proc.returncode == 2 and "Non-existent config key: SLIM.NAS_PROT" in proc.stderr
