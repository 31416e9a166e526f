"""Paddle Inference: op models are the saved Paddle programs themselves (`.pdmodel` + `.pdiparams`).

This is also the format Paddle-Lite's `opt` tool reads (docs/latency.md: timing them on a phone with it).
"""

from typing import Any, Dict, List, Sequence

from latency.engines.base import Engine


class PaddleInference(Engine):
    def options(self, settings: Any) -> Dict[str, Any]:
        return {"device": settings.device, "mkldnn": int(settings.mkldnn), "ir_optim": int(settings.ir_optim)}

    def convert(self, stems: Sequence[str], opset: int, describe: Sequence[str] = ()) -> List[str]:
        return [f"{stem}{self.suffix}" for stem in stems]


PADDLE_INFERENCE_ENGINE = PaddleInference("paddle_inference", ".pdmodel")
