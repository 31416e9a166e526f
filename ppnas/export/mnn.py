"""MNN side of an export: `model.mnn` converted from `model.onnx` (latency/convert.py), run with MNN's module API.

The module API (`MNN.nn.load_module_from_file`) runs models whose shapes depend on input values, such as the
detector with NMS inside; MNN's Interpreter refuses those ("shape compute need input content"). The inputs
and outputs are named as in the Paddle model (paddle2onnx and MNN's converter keep the names).
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os
from typing import Dict, List, Sequence

import numpy as np

from latency.convert import DEFAULT_OPSET, convert, paddle_files
from latency.engine import MODEL_PREFIX
from ppnas.export.model import feeds_by_name

MNN_FILE = f"{MODEL_PREFIX}.mnn"


def convert_mnn(model_dir: str, opset: int = DEFAULT_OPSET) -> str:
    """`model_dir/model.mnn` (and `model.onnx` on the way) from the saved Paddle Inference model."""
    job = paddle_files(model_dir)
    job.mnn = os.path.join(model_dir, MNN_FILE)
    convert([job], opset)
    return job.mnn


def run_mnn(path: str, feeds: Dict[str, np.ndarray], inputs: Sequence[str], outputs: Sequence[str]) -> List[np.ndarray]:
    """MNN's outputs `outputs` (CPU, 1 thread) on `feeds` given to the inputs named `inputs`."""
    import MNN

    module = MNN.nn.load_module_from_file(path, list(inputs), list(outputs))
    values = feeds_by_name(list(inputs), feeds)
    variables = [MNN.expr.const(v, list(v.shape), MNN.expr.NCHW) for v in values.values()]
    return [np.array(out.read()) for out in module.forward(variables)]
