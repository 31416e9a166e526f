"""The engine a table is timed with and a model is deployed with: Paddle Inference, its settings, a predictor.

`EngineSettings` go into a table's header (4th field): a table is never extended or used with settings it was
not measured with. The export (ppnas/export/) saves and runs models through the same functions, so a model is
timed exactly as it is deployed.
"""

import os
import platform
from dataclasses import dataclass
from typing import Any, Dict, Sequence

import paddle
from paddle import inference

from ppnas.errors import ConfigError

MODEL_PREFIX = "model"  # model.pdmodel + model.pdiparams, the names PaddleDetection's and PaddleSeg's tools read
ENGINE = f"paddle_inference-{paddle.__version__}"
# the header settings that must match for a table to be extended or used for end-to-end comparison
ENGINE_KEYS = ("device", "threads", "mkldnn", "ir_optim", "prefix", "timer")


@dataclass
class EngineSettings:
    device: str = "cpu"
    threads: int = 1
    mkldnn: bool = False
    ir_optim: bool = True
    warmup: int = 3
    repeats: int = 15
    passes: int = 3

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "gpu"):
            raise ConfigError(f"device must be cpu or gpu, got '{self.device}'")
        if self.threads < 1 or self.repeats < 1 or self.passes < 1 or self.warmup < 0:
            raise ConfigError("threads, repeats and passes must be at least 1 and warmup at least 0")

    @property
    def prefix(self) -> bool:
        return self.mkldnn and self.device == "cpu"

    @property
    def timer(self) -> str:
        return "thread_cpu" if self.device == "cpu" and self.threads == 1 else "wall"

    def header(self) -> Dict[str, str]:
        return {
            "device": self.device,
            "threads": str(self.threads),
            "mkldnn": str(int(self.mkldnn)),
            "ir_optim": str(int(self.ir_optim)),
            "prefix": str(int(self.prefix)),
            "timer": self.timer,
        }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(settings: EngineSettings) -> str:
    if settings.device == "gpu":
        return f"gpu:{paddle.device.cuda.get_device_name()}"
    return f"cpu:{cpu_model()}"


def make_predictor(settings: EngineSettings, program: bytes = b"", params: bytes = b"", model_dir: str = "") -> Any:
    """A Paddle Inference predictor with the engine settings, from buffers or from `model_dir/model.*`."""
    config = inference.Config()
    if model_dir:
        config.set_prog_file(os.path.join(model_dir, f"{MODEL_PREFIX}.pdmodel"))
        params_file = os.path.join(model_dir, f"{MODEL_PREFIX}.pdiparams")
        if os.path.exists(params_file):  # a model without parameters writes no .pdiparams
            config.set_params_file(params_file)
    else:
        config.set_model_buffer(program, len(program), params, len(params))
    if settings.device == "gpu":
        config.enable_use_gpu(256, 0)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(settings.threads)
        if settings.mkldnn:
            config.enable_mkldnn()
        else:
            config.disable_mkldnn()
    config.switch_ir_optim(settings.ir_optim)
    config.disable_glog_info()
    return inference.create_predictor(config)


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
