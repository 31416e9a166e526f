"""Data-parallel training under `python -m paddle.distributed.launch --nproc_per_node 2` on CPU (gloo).

Real launches of real processes: the equivalence of 2 ranks x batch b with one process x batch 2b for a
BlazeFace trained by the detection task's loop, and a detection search whose rank 1 is killed, which ends
with launch naming rank 1 and then resumes with -r, writing exactly one history line per candidate.
"""

import ppnas  # noqa: F401  # isort: skip
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import psutil
import yaml
from conftest import ROOT, write_det_config
from dp_worker import train_weights

from ppnas.demo.wider import make_wider_demo
from ppnas.history import History
from ppnas.samplers.annealing import SANAS_CHECKPOINT

LAUNCH_TIMEOUT = 120  # seconds; no launch of these tests should come near it


def launch(log_dir: pathlib.Path, script: pathlib.Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(log_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*command, str(script), *args], cwd=log_dir.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=LAUNCH_TIMEOUT)
    return out.decode(errors="replace")


def same_boxes_everywhere(wider: pathlib.Path) -> None:
    """Give every train image the first image's face box: the SSD loss divides by the positives of the whole
    batch, so a 2 x b step equals one 2b step only when both halves hold as many positives."""
    anno = wider / "wider_face_split" / "wider_face_train_bbx_gt.txt"
    lines = anno.read_text().splitlines()
    names = [line for line in lines if line.endswith(".jpg")]
    box = lines[2]
    anno.write_text("".join(f"{name}\n1\n{box}\n" for name in names))


def test_two_ranks_of_batch_b_train_the_weights_of_one_process_with_batch_2b(tmp_path):
    wider = tmp_path / "wider"
    make_wider_demo(str(wider), train=8, val=2, size=64, max_faces=1, seed=5)
    same_boxes_everywhere(wider)
    configs = {}
    for name, batch in (("ranks", 2), ("single", 4)):
        folder = tmp_path / name
        folder.mkdir()
        path = write_det_config(folder, wider, max_iters=3)  # 3 steps: into the second epoch of 8 images
        cfg = yaml.safe_load(path.read_text())
        cfg["TrainReader"].update(batch_size=batch, shuffle=True)
        path.write_text(yaml.safe_dump(cfg))
        configs[name] = path
    out = tmp_path / "weights"
    process = launch(tmp_path / "log", ROOT / "tests" / "dp_worker.py", str(configs["ranks"]), str(out))
    text = finish(process)
    assert process.returncode == 0, text[-3000:]

    paddle.set_device("cpu")
    initial, single = train_weights(str(configs["single"]))
    assert max(np.abs(single[k] - initial[k]).max() for k in single) > 1e-3  # the steps moved the weights
    ranks = [np.load(out / f"rank{r}.npz") for r in (0, 1)]
    for key, expected in single.items():
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
        np.testing.assert_allclose(ranks[0][key], expected, rtol=0, atol=1e-5, err_msg=key)
    seen = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [s["world_size"] for s in seen] == [2, 2]
    assert all(s["result"] == [3, 1, 4] for s in seen)  # after several keep-alives from rank 0
    assert all(s["error"] == "the server is gone" for s in seen)  # rank 0's ControllerError, raised on rank 1 too


def _rank_pid(launcher: int, rank: int) -> int:
    for child in psutil.Process(launcher).children(recursive=True):
        try:
            if child.environ().get("PADDLE_TRAINER_ID") == str(rank):
                return child.pid
        except psutil.Error:
            continue
    raise AssertionError(f"launch started no rank {rank}")


def _wait_for_lines(history: History, count: int, process: subprocess.Popen) -> None:
    deadline = time.time() + LAUNCH_TIMEOUT
    while len(history.read()) < count:
        assert process.poll() is None, finish(process)[-3000:]
        assert time.time() < deadline, "the search wrote no history line"
        time.sleep(0.2)


def test_a_dead_rank_ends_the_search_naming_it_and_minus_r_finishes_it(tmp_path, tiny_wider):
    config = write_det_config(tmp_path, tiny_wider, search_steps=2, max_iters=10)
    save_dir = tmp_path / "out"
    history = History.in_dir(str(save_dir))
    train_nas = ROOT / "tools" / "train_nas.py"
    first = launch(tmp_path / "log", train_nas, "-c", str(config), "--quiet")
    _wait_for_lines(history, 1, first)
    os.kill(_rank_pid(first.pid, 1), signal.SIGKILL)  # as the OOM killer would
    killed = time.time()
    text = finish(first)
    assert first.returncode != 0
    assert time.time() - killed < 30, "the surviving rank hung after rank 1 died"
    named = "Container rank 1 status failed" in text and "workerlog.1" in text
    # gloo can abort the surviving rank inside backward's allreduce (C++ terminate on gloo::IoException: no Python
    # exception to hold back) before launch has polled the dead rank; then launch shows rank 0's lost connection
    lost_peer = "gloo::IoException" in text
    assert named or lost_peer, text[-3000:]
    before = history.read()
    assert [r["status"] for r in before].count("failed") == 0  # the lost rank failed no candidate

    second = launch(tmp_path / "log_resume", train_nas, "-c", str(config), "--quiet", "-r", str(save_dir))
    text = finish(second)
    assert second.returncode == 0, text[-3000:]
    assert "resuming the search" in text
    records = history.read()
    assert records[: len(before)] == before
    assert [r["step"] for r in records if r["status"] == "trained"] == [1, 2]
    assert len({str(r["tokens"]) for r in records}) == len(records)  # every candidate once
    searched = json.loads((save_dir / SANAS_CHECKPOINT).read_text())["_searched"]
    assert {str(r["tokens"]) for r in records} <= set(searched)  # every line rank 0 wrote reached its controller
    assert (save_dir / "best_model.pdparams").is_file() and (save_dir / "report.md").is_file()
