"""Paddle Inference side of an export: save with paddle.jit.save, run with paddle.inference."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from latency.engine import EngineSettings, make_predictor
from ppnas.export.model import feeds_by_name


def fed_predictor(model_dir: str, feeds: Dict[str, np.ndarray], settings: Optional[EngineSettings] = None) -> Any:
    """A predictor of the saved model (1 CPU thread by default) with `feeds` copied into its inputs."""
    predictor = make_predictor(settings or EngineSettings(), model_dir=model_dir)
    for name, value in feeds_by_name(predictor.get_input_names(), feeds).items():
        handle = predictor.get_input_handle(name)
        handle.reshape(list(value.shape))
        handle.copy_from_cpu(value)
    return predictor


def run_inference(model_dir: str, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """The outputs of the saved model on `feeds` (by input name; a single input takes the only feed)."""
    predictor = fed_predictor(model_dir, feeds)
    predictor.run()
    return [predictor.get_output_handle(name).copy_to_cpu() for name in predictor.get_output_names()]


def io_names(model_dir: str) -> Tuple[List[str], List[str]]:
    """(input names, output names) of the saved model, in the order Paddle Inference feeds and returns them."""
    predictor = make_predictor(EngineSettings(), model_dir=model_dir)
    return predictor.get_input_names(), predictor.get_output_names()
