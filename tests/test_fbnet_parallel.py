"""FBNet search under `python -m paddle.distributed.launch --nproc_per_node 2` on CPU (gloo): every rank ends with
the same architecture parameters and derives the same subnet, and rank 0 alone writes the history."""

import ppnas  # noqa: F401  # isort: skip
import json
import pathlib

from conftest import ROOT
from fbnet_helpers import TINY_SEARCHED, tiny_config
from test_data_parallel import finish, launch

from ppnas.history import History


def _summary(log: str) -> dict:
    """The JSON line tools/fbnet.py printed on one rank."""
    return json.loads(next(line for line in log.splitlines() if line.startswith('{"phase"')))


def test_two_process_search_derives_one_subnet_on_every_rank(tiny_landmarks: pathlib.Path, tmp_path) -> None:
    # a large architecture step, so that ranks that did not share their gradients would part ways at once
    search = {"epochs": 3, "warmup_epochs": 1, "nas_lr": 0.5}
    config = tiny_config(tmp_path, tiny_landmarks, Supernet=TINY_SEARCHED, Search=search)
    process = launch(tmp_path / "log", ROOT / "tools" / "fbnet.py", "-c", str(config), "--phase", "search", "--quiet")
    text = finish(process)
    assert process.returncode == 0, text[-3000:]
    ranks = [_summary((tmp_path / "log" / f"workerlog.{r}").read_text()) for r in (0, 1)]
    assert ranks[0]["choices"] == ranks[1]["choices"]
    assert ranks[0]["probabilities"] == ranks[1]["probabilities"]  # the same alpha, to the last bit
    assert ranks[0]["probabilities"][1] != [1 / 3] * 3  # and alpha did move
    kinds = [r["kind"] for r in History.in_dir(str(tmp_path / "out")).read()]
    assert kinds == ["epoch", "epoch", "epoch", "derived"]
