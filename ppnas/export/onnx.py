"""ONNX side of an export: paddle2onnx converts the saved Paddle Inference model (latency/convert.py, in a
child process), onnxruntime runs it. Both are optional (`pip install 'ppnas[onnx]'`)."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
from typing import Dict, List

import numpy as np

from latency.convert import convert, paddle_files
from latency.engine import MODEL_PREFIX
from ppnas.export.model import feeds_by_name

ONNX_FILE = f"{MODEL_PREFIX}.onnx"


def convert_onnx(model_dir: str, opset: int) -> str:
    """`model_dir/model.onnx` from `model_dir/model.pdmodel` + `model.pdiparams`."""
    job = paddle_files(model_dir)
    convert([job], opset)
    return job.onnx


def run_onnx(path: str, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """onnxruntime's outputs (CPU) on `feeds` (by input name; a single input takes the only feed)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, feeds_by_name([i.name for i in session.get_inputs()], feeds))
