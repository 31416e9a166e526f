"""Shared fixtures: tiny generated datasets in the real on-disk formats, and the real 855 latency table."""

import zlib  # noqa: F401  # isort: skip  # must precede paddle (see ppnas/__init__.py)
import os
import pathlib
from typing import Tuple

import pytest

os.environ.setdefault("CPU_NUM", "1")  # paddle itself sets OMP_NUM_THREADS=1 when it is unset

ROOT = pathlib.Path(__file__).resolve().parents[1]
LATENCY_855 = ROOT / "configs" / "latency_855.txt"  # shipped with the project, as the original example did


@pytest.fixture(scope="session")
def latency_855_path() -> pathlib.Path:
    return LATENCY_855


def tool_entry(tool: str) -> pathlib.Path:
    """The file that runs for `python tools/<tool>.py`: the script, or a folder's __main__.py (tools/latency.py)."""
    path = ROOT / "tools" / f"{tool}.py"
    return path / "__main__.py" if path.is_dir() else path


def run_tool(capsys: pytest.CaptureFixture, tool: str, *argv: str) -> Tuple[int, str, str]:
    """Run tools/<tool>.py's main in-process as the shell would (through run_main); (exit code, stdout, stderr)."""
    import importlib
    import sys

    from ppnas.cli import run_main

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        module = importlib.import_module(tool)
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as exit_info:
        run_main(module.main, list(argv))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


DEMO_DET_CONFIG = ROOT / "configs" / "demo" / "blazeface_demo.yml"
TINY_SIZE = 64


@pytest.fixture(scope="session")
def tiny_wider(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """8 train / 4 val images of 64x64 in the WIDER FACE layout."""
    from ppnas.demo.wider import make_wider_demo

    out = tmp_path_factory.mktemp("tiny_wider")
    make_wider_demo(str(out), train=8, val=4, size=TINY_SIZE, max_faces=2, seed=3)
    return out


def write_det_config(folder: pathlib.Path, wider: pathlib.Path, **keys: object) -> pathlib.Path:
    """A small detection search config inheriting the demo one: tiny data, 64px, 2 iterations a candidate."""
    import yaml

    resize = {"Resize": {"target_size": [TINY_SIZE, TINY_SIZE], "keep_ratio": False, "interp": 1}}
    normalize = {"NormalizeImage": {"mean": [123, 117, 104], "std": [127.502231] * 3, "is_scale": False}}
    cfg = {
        "_BASE_": [str(DEMO_DET_CONFIG)],
        "search_steps": 2,
        "max_iters": 2,
        "input_size": TINY_SIZE,
        "save_dir": str(folder / "out"),
        "seed": 1,
        "Constraint": {"ctype": "flops", "min_constraint": 0, "max_constraint": 10**9},
        "TrainDataset": {"dataset_dir": str(wider)},
        "EvalDataset": {"dataset_dir": str(wider)},
        "TrainReader": {
            "sample_transforms": [{"Decode": {}}, resize, {"NormalizeBox": {}}, {"PadBox": {"num_max_boxes": 4}}],
            "batch_size": 4,
        },
        "EvalReader": {"sample_transforms": [{"Decode": {}}, resize, normalize, {"Permute": {}}]},
    }
    cfg.update(keys)
    path = folder / "det.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def tiny_landmarks(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """10 train / 4 test images of 32x32 in the 106-point layout (tests/fbnet_helpers.py has the config)."""
    from fbnet_helpers import SIDE, TEST, TRAIN

    from ppnas.demo.landmarks import make_landmark_demo

    out = tmp_path_factory.mktemp("tiny_106")
    make_landmark_demo(str(out), train=TRAIN, test=TEST, size=SIDE, seed=5)
    return out
