"""The engines a table is timed with: one small adapter each (export one op model, time one op model).

Every adapter writes op models from the same saved one-op Paddle programs (latency/opprograms.py) and is
timed by the same code, `time_ops.py` (also the device timer shipped in each export folder). An adapter
says which file its models are (`suffix`), how a saved Paddle model becomes one (`convert`), what the timer
needs to open one (`options`) and which packages it needs (`check_available`).
"""

import contextlib
from typing import Dict, Iterator, List

from latency.engines.base import Engine
from latency.engines.mnn_adapter import MNN_ENGINE
from latency.engines.onnxruntime_adapter import ONNXRUNTIME_ENGINE
from latency.engines.paddle_inference_adapter import PADDLE_INFERENCE_ENGINE
from latency.engines.time_ops import TimingError
from ppnas.errors import ConfigError, TableError

ENGINES: Dict[str, Engine] = {e.name: e for e in (PADDLE_INFERENCE_ENGINE, ONNXRUNTIME_ENGINE, MNN_ENGINE)}


def engine_names() -> List[str]:
    return list(ENGINES)


def get_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise ConfigError(f"unknown latency engine '{name}'; known: {', '.join(ENGINES)}")
    return ENGINES[name]


@contextlib.contextmanager
def timer_errors() -> Iterator[None]:
    """The device timer's errors (it cannot import ppnas) as the project's TableError."""
    try:
        yield
    except TimingError as err:
        raise TableError(str(err)) from None
