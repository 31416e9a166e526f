"""Paddle Inference side of an export: save with paddle.jit.save, run with paddle.inference."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle

from latency.builder import EngineSettings, make_predictor
from ppnas.export.model import feeds_by_name

MODEL_PREFIX = "model"  # model.pdmodel + model.pdiparams, the names PaddleDetection's and PaddleSeg's tools read


def save_inference_model(layer: paddle.nn.Layer, input_spec: Sequence[Any], model_dir: str) -> str:
    """Save `layer` (in eval mode) as `model_dir/model.pdmodel` + `model.pdiparams`; returns model_dir.

    full_graph=True is the AST translation PaddleDetection's and PaddleSeg's exporters were written for.
    """
    was_training = layer.training
    layer.eval()
    try:
        static = paddle.jit.to_static(layer, input_spec=list(input_spec), full_graph=True)
        paddle.jit.save(static, os.path.join(model_dir, MODEL_PREFIX), input_spec=list(input_spec))
    finally:
        if was_training:
            layer.train()
    return model_dir


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
