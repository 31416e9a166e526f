"""Paddle Inference: op models are the saved Paddle programs themselves (`.pdmodel` + `.pdiparams`).

This is also the format Paddle-Lite's `opt` tool reads (docs/latency.md: timing them on a phone with it).
"""

from typing import Any, Dict, List, Sequence, Tuple

from latency.engines.base import Engine


class PaddleInference(Engine):
    def fuses(self, settings: Any) -> Tuple[str, ...]:
        """Without MKLDNN a batch norm or ReLU6 after a conv still costs its time here; with it they fold."""
        return ("batch_norm", "relu", "relu6") if settings.mkldnn else ()

    def options(self, settings: Any) -> Dict[str, Any]:
        return {"device": settings.device, "mkldnn": int(settings.mkldnn), "ir_optim": int(settings.ir_optim)}

    def convert(self, stems: Sequence[str], opset: int, describe: Sequence[str] = ()) -> List[str]:
        return [f"{stem}{self.suffix}" for stem in stems]


PADDLE_INFERENCE_ENGINE = PaddleInference("paddle_inference", ".pdmodel")
