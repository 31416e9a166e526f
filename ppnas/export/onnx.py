"""ONNX side of an export: paddle2onnx converts the saved Paddle Inference model, onnxruntime runs it.

Both are optional (`pip install 'ppnas[onnx]'`). The conversion runs in a child process: paddle2onnx
aborts the whole process (SIGABRT) on an operator it cannot convert, which must not take the exporter down
with it before it can say which operator that was.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import importlib
import os
import re
import subprocess
import sys
from typing import Dict, List

import numpy as np

from latency.engine import MODEL_PREFIX
from ppnas.errors import ExportError
from ppnas.export.model import feeds_by_name

ONNX_FILE = f"{MODEL_PREFIX}.onnx"
DEFAULT_OPSET = 11
INSTALL_HINT = "pip install 'ppnas[onnx]' (or: pip install paddle2onnx==1.3.1 onnxruntime==1.32.0)"
_CONVERT = (
    "import sys, paddle2onnx; "
    "paddle2onnx.export(sys.argv[1], sys.argv[2], sys.argv[3], opset_version=int(sys.argv[4]), verbose=False)"
)


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def check_available() -> None:
    """Fail before any work when ONNX is asked for and a package it needs is not installed."""
    missing = [name for name in ("paddle2onnx", "onnxruntime") if not _importable(name)]
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}, which is not installed: {INSTALL_HINT}")


def convert(model_dir: str, opset: int = DEFAULT_OPSET) -> str:
    """`model_dir/model.onnx` from `model_dir/model.pdmodel` + `model.pdiparams`."""
    check_available()
    model = os.path.join(model_dir, f"{MODEL_PREFIX}.pdmodel")
    params = os.path.join(model_dir, f"{MODEL_PREFIX}.pdiparams")
    out = os.path.join(model_dir, ONNX_FILE)
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, model, params, out, str(opset)], capture_output=True, text=True
    )
    if done.returncode != 0 or not os.path.isfile(out):
        text = done.stdout + done.stderr
        ops = re.search(r"not supported yet, including ([^\n]*)", text)
        why = f"operators it cannot convert: {ops.group(1).strip().rstrip(',')}" if ops else _last_line(text)
        raise ExportError(f"paddle2onnx could not convert {model} (opset {opset}): {why}")
    return out


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def run_onnx(path: str, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """onnxruntime's outputs (CPU) on `feeds` (by input name; a single input takes the only feed)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, feeds_by_name([i.name for i in session.get_inputs()], feeds))
