"""Shared by the one-shot tests: a tiny BigNAS config and a briefly trained supernet on the tiny WIDER set."""

import ppnas  # noqa: F401  # isort: skip
import pathlib
from typing import Any, Dict

from conftest import ROOT, run_tool, write_det_config

BIGNAS_DEMO = ROOT / "configs" / "demo" / "blazeface_bignas_demo.yml"


def write_bignas_config(folder: pathlib.Path, wider: pathlib.Path, **keys: Any) -> pathlib.Path:
    """The demo one-shot config on the tiny set: 64 px, 2 supernet iterations, 2 calibration batches."""
    settings: Dict[str, Any] = dict(
        _BASE_=[str(BIGNAS_DEMO)], max_iters=2, checkpoint_every=1, calib_batches=2, subnet_count=3, flops_samples=20
    )
    settings.update(keys)
    folder.mkdir(parents=True, exist_ok=True)
    return write_det_config(folder, wider, **settings)


def trained_config(folder: pathlib.Path, wider: pathlib.Path, **keys: Any) -> Dict[str, Any]:
    """A config whose save_dir holds a supernet trained for max_iters iterations."""
    from ppnas.oneshot.settings import load_oneshot_config
    from ppnas.oneshot.train import train_supernet

    cfg = load_oneshot_config(str(write_bignas_config(folder, wider, **keys)))
    train_supernet(cfg, quiet=True)
    return cfg


def with_supernet(trained_save_dir: str, folder: pathlib.Path, wider: pathlib.Path, **keys: Any) -> pathlib.Path:
    """A fresh save_dir under `folder` holding a copy of an already trained supernet; returns its config."""
    import os
    import shutil

    from ppnas.oneshot.checkpoint import SUPERNET_DIR

    save_dir = folder / "out"
    shutil.copytree(os.path.join(trained_save_dir, SUPERNET_DIR), save_dir / SUPERNET_DIR)
    return write_bignas_config(folder, wider, **keys)


def run_bignas(capsys: Any, *argv: str) -> Any:
    """tools/bignas.py in-process as the shell runs it: (exit code, stdout, stderr)."""
    return run_tool(capsys, "bignas", *argv)
