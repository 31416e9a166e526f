"""ONNX Runtime (CPU execution provider): op models converted from the Paddle programs by paddle2onnx."""

from latency.engines.base import Engine

# folds batch norm, bias and ReLU into a conv (not ReLU6, hard swish, sigmoid: docs/latency.md)
ONNXRUNTIME_ENGINE = Engine("onnxruntime", ".onnx", target="onnx", folds=("batch_norm", "bias", "relu"))
