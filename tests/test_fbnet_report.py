"""The FBNet chain as a user runs it (subprocesses, output to a pipe, not a terminal), then tools/report.py on
its folder: plain progress lines, and a report with the derived subnet, NME per epoch, figures and commands."""

import ppnas  # noqa: F401  # isort: skip
import json
import pathlib
import subprocess
import sys

import pytest
from conftest import ROOT
from fbnet_helpers import tiny_config

FBNET = str(ROOT / "tools" / "fbnet.py")
REPORT = str(ROOT / "tools" / "report.py")


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def chain(tiny_landmarks: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("fbnet_chain")
    config = str(tiny_config(folder, tiny_landmarks))
    outputs = {}
    for phase in ("build_lut", "search", "retrain", "export"):
        proc = run(FBNET, "-c", config, "--phase", phase)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs[phase] = proc.stdout
    return {"config": config, "save_dir": folder / "out", "outputs": outputs}


def test_fbnet_prints_plain_progress_lines_off_a_terminal(chain: dict) -> None:
    search = chain["outputs"]["search"]
    assert "\r" not in search and "\r" not in chain["outputs"]["retrain"]
    lines = search.strip().splitlines()
    epochs = [line.split(":")[0] for line in lines if line.startswith("epoch ")]
    assert epochs == ["epoch 1/2 warmup", "epoch 2/2 search"]


def test_report_of_an_fbnet_folder(chain: dict) -> None:
    save_dir = chain["save_dir"]
    proc = run(REPORT, str(save_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (save_dir / "report.md").read_text()
    derived = json.loads(chain["outputs"]["search"].strip().splitlines()[-1])
    exported = json.loads(chain["outputs"]["export"].strip().splitlines()[-1])
    retrained = json.loads(chain["outputs"]["retrain"].strip().splitlines()[-1])
    assert "# NAS report: FBNet search" in report and "## Derived subnet (derived at the end of the search)" in report
    for block in derived["choices"]:
        assert f"`{block}`" in report
    assert f"Predicted by the LUT: **{derived['predicted']:.4g} FLOPs**" in report
    assert f"Measured end to end here (Paddle Inference, 1 thread): {exported['latency_ms_measured']:.3f} ms" in report
    assert f"**{retrained['nme']:.4f}**" in report  # the retraining result
    assert "| 1 | warmup |" in report and "| 2 | search |" in report  # NME per epoch
    assert f"python tools/fbnet.py -c {chain['config']} --phase export" in report
    for png in ("nme_curve.png", "choice_probabilities.png"):
        assert f"]({png})" in report and (save_dir / png).stat().st_size > 10_000


def test_a_folder_with_nothing_to_report_says_what_it_is_and_what_to_run(chain: dict, tmp_path: pathlib.Path) -> None:
    only_lut = tmp_path / "lut_only"
    only_lut.mkdir()
    (only_lut / "lut.json").write_text((chain["save_dir"] / "lut.json").read_text())
    proc = run(REPORT, str(only_lut))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: {only_lut} holds an FBNet lookup table but no search yet: nothing to report; run "
        "python tools/fbnet.py -c CONFIG --phase search"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(REPORT, str(empty))
    assert proc.returncode == 2 and "no history.jsonl in" in proc.stderr
    assert "give the save_dir of a search" in proc.stderr
