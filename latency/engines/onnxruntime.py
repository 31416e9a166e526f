"""ONNX Runtime (CPU execution provider): op models converted from the Paddle programs by paddle2onnx."""

from latency.engines.base import Engine

ONNXRUNTIME_ENGINE = Engine("onnxruntime", ".onnx", target="onnx")
