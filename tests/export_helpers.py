"""Shared by tests/test_export_*.py: the export CLI as a subprocess, and a Paddle Inference run of a saved model."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os
import pathlib
import subprocess
import sys
from typing import Dict, List, Optional

import numpy as np
from conftest import ROOT

EXPORT_TOOL = ROOT / "tools" / "export_model.py"


def run_export_cli(*args: str, extra_path: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (extra_path, str(ROOT)) if p))
    return subprocess.run(
        [sys.executable, str(EXPORT_TOOL), *args], capture_output=True, text=True, env=env, timeout=300
    )


def paddle_inference(
    model_dir: pathlib.Path, feeds: Dict[str, np.ndarray], outputs: Optional[List[str]] = None
) -> List[np.ndarray]:
    """The saved model run by paddle.inference directly, with the settings deploy tools use on a CPU; its
    outputs in order, or those named in `outputs`."""
    from paddle import inference

    config = inference.Config(str(model_dir / "model.pdmodel"), str(model_dir / "model.pdiparams"))
    config.disable_gpu()
    config.switch_ir_optim(True)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    for name in predictor.get_input_names():
        value = feeds[name] if name in feeds else next(iter(feeds.values()))
        handle = predictor.get_input_handle(name)
        handle.reshape(list(value.shape))
        handle.copy_from_cpu(value)
    predictor.run()
    names = predictor.get_output_names() if outputs is None else outputs
    return [predictor.get_output_handle(name).copy_to_cpu() for name in names]
