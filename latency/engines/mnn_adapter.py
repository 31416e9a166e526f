"""MNN (the engine NNI's PFLD example deploys to): Paddle program -> ONNX (paddle2onnx) -> `.mnn` (MNN's
converter); timed with MNN's Interpreter API, one session per model (`numThread` = the timer's threads)."""

from latency.engines.base import Engine

# folds batch norm, bias, ReLU and ReLU6 into a conv (not hard swish, sigmoid: docs/latency.md)
MNN_ENGINE = Engine("mnn", ".mnn", target="mnn", folds=("batch_norm", "bias", "relu", "relu6"))
