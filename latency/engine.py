"""The engine a table is timed with and a model is deployed with: its settings, and Paddle's save and predictor.

`EngineSettings` go into a table's header (4th field): a table is never extended or used with settings it was
not measured with. The export (ppnas/export/) saves and runs models through the same functions, so a model is
timed exactly as it is deployed. The engines themselves are adapters in latency/engines/.
"""

import os
from dataclasses import dataclass
from typing import Any, Dict, Sequence

import paddle

from latency.convert import DEFAULT_OPSET
from latency.engines import engine_names, get_engine
from latency.engines.time_ops import Timing, clock_name, cpu_model, paddle_predictor
from latency.fusion import FUSES_KEY, FUSES_SEP
from ppnas.errors import ConfigError

MODEL_PREFIX = "model"  # model.pdmodel + model.pdiparams, the names PaddleDetection's and PaddleSeg's tools read


@dataclass
class EngineSettings:
    engine: str = "paddle_inference"
    device: str = "cpu"
    threads: int = 1
    mkldnn: bool = False
    ir_optim: bool = True
    warmup: int = 3
    repeats: int = 15
    passes: int = 3
    opset: int = DEFAULT_OPSET  # ONNX opset of the onnxruntime and mnn op models

    def __post_init__(self) -> None:
        if self.engine not in engine_names():
            raise ConfigError(f"unknown latency engine '{self.engine}'; known: {', '.join(engine_names())}")
        if self.device not in ("cpu", "gpu"):
            raise ConfigError(f"device must be cpu or gpu, got '{self.device}'")
        if self.engine != "paddle_inference" and (self.device != "cpu" or self.mkldnn):
            raise ConfigError(f"the {self.engine} engine runs on the CPU without MKLDNN: drop --device/--mkldnn")
        if self.threads < 1 or self.repeats < 1 or self.passes < 1 or self.warmup < 0:
            raise ConfigError("threads, repeats and passes must be at least 1 and warmup at least 0")

    @classmethod
    def from_header(cls, engine: str, header: Dict[str, str]) -> "EngineSettings":
        """The settings a table's or a timings file's header records."""
        return cls(
            engine=engine,
            device=header.get("device", "cpu"),
            threads=int(header.get("threads", 1)),
            mkldnn=bool(int(header.get("mkldnn", 0))),
            ir_optim=bool(int(header.get("ir_optim", 1))),
            opset=int(header.get("opset", DEFAULT_OPSET)),
        )

    @property
    def prefix(self) -> bool:
        """Time each op behind a 1x1 conv (MKLDNN: a one-op oneDNN model pays a layout reorder a chain never pays)."""
        return self.mkldnn and self.device == "cpu"

    def prefixed(self, spec: Dict[str, Any]) -> bool:
        """Whether the op of `spec` is timed behind the 1x1-conv prefix: every op with MKLDNN, the op kinds the
        engine adapter names otherwise (its `prefixed_ops`)."""
        return self.prefix or spec["op"] in get_engine(self.engine).prefixed_ops

    def prefix_header(self) -> str:
        """`1` (every op), `0` (none) or the op kinds timed behind the prefix (`conv`)."""
        kinds = get_engine(self.engine).prefixed_ops
        return "1" if self.prefix else FUSES_SEP.join(kinds) or "0"

    @property
    def timer(self) -> str:
        return clock_name(self.threads, self.device)

    def timing(self, sweeps: int = 1) -> Timing:
        return Timing(
            threads=self.threads,
            warmup=self.warmup,
            repeats=self.repeats,
            passes=self.passes,
            sweeps=sweeps,
            clock=self.timer,
        )

    def export_header(self) -> Dict[str, str]:
        """The settings fixed when op models are exported (the timer adds threads and timer)."""
        if self.engine == "paddle_inference":
            header = {
                "device": self.device,
                "mkldnn": str(int(self.mkldnn)),
                "ir_optim": str(int(self.ir_optim)),
                "prefix": self.prefix_header(),
            }
        else:
            header = {"device": self.device, "opset": str(self.opset), "prefix": self.prefix_header()}
        fuses = get_engine(self.engine).fuses(self)
        return {**header, FUSES_KEY: FUSES_SEP.join(fuses)} if fuses else header

    def header(self) -> Dict[str, str]:
        """The table header's settings: a table is extended and used only with these."""
        return {**self.export_header(), "threads": str(self.threads), "timer": self.timer}


def device_name(settings: EngineSettings) -> str:
    if settings.device == "gpu":
        return f"gpu:{paddle.device.cuda.get_device_name()}"
    return f"cpu:{cpu_model()}"


def make_predictor(settings: EngineSettings, model_dir: str) -> Any:
    """A Paddle Inference predictor of `model_dir/model.*` with the engine settings."""
    options = get_engine("paddle_inference").options(settings)
    return paddle_predictor(os.path.join(model_dir, f"{MODEL_PREFIX}.pdmodel"), options, settings.threads)


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


def export_model(layer: paddle.nn.Layer, input_shape: Sequence[int], model_dir: str) -> str:
    """Save `layer` (one image in) as an inference model `model_dir/model.*`, the way a deployment would."""
    return save_inference_model(layer, [paddle.static.InputSpec(list(input_shape), "float32", "image")], model_dir)
