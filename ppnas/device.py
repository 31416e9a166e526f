"""CPU or GPU: one code path, the device is the only difference."""

import logging

import paddle

from ppnas.errors import ConfigError

_logger = logging.getLogger(__name__)


def select_device(use_gpu: bool) -> str:
    """`paddle.set_device('gpu')` when asked and available (paddlepaddle-gpu==2.6.2), else a clear error."""
    if not use_gpu:
        paddle.set_device("cpu")
        return "cpu"
    if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        raise ConfigError(
            "use_gpu is set but this Paddle has no usable GPU: install paddlepaddle-gpu==2.6.2 on a CUDA machine, "
            "or set use_gpu: false (-o use_gpu=false)"
        )
    paddle.set_device("gpu")
    return "gpu"
