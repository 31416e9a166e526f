"""ONNX Runtime (CPU execution provider): op models converted from the Paddle programs by paddle2onnx."""

from latency.engines.base import Engine

# folds batch norm, bias and ReLU into a conv (not ReLU6, hard swish, sigmoid: docs/latency.md)
# runs convs in a blocked layout (NCHWc): a conv alone pays the reorders in and out that a chain pays once, so
# convs are timed behind a 1x1-conv prefix and the prefix alone subtracted (docs/latency.md)
ONNXRUNTIME_ENGINE = Engine(
    "onnxruntime", ".onnx", target="onnx", folds=("batch_norm", "bias", "relu"), prefixed_ops=("conv",)
)
