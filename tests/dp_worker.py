"""Run by tests/test_data_parallel.py, once under `python -m paddle.distributed.launch --nproc_per_node 2` and once
imported into the test process: trains a real BlazeFace for `max_iters` steps with the detection task's own
loop (its reader, shard sampler, DataParallel, optimizer and SSD loss) and saves this rank's weights.

    python -m paddle.distributed.launch --nproc_per_node 2 tests/dp_worker.py CONFIG OUT_DIR
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import os
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
import paddle

from ppnas import parallel
from ppnas.config import load_config
from ppnas.errors import ControllerError
from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults

INIT_SEED = 7


def freeze_batch_norm(model: paddle.nn.Layer) -> None:
    """Normalise with the running statistics. CPU has no sync_batch_norm kernel, so each rank's batch statistics
    are its own (as in PaddleDetection on CPU): only with them frozen is a 2 x b step the same as one 2b step."""
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
            layer._use_global_stats = True


def train_weights(config: str) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """The weights before and after training."""
    task = BlazeFaceTask(with_search_defaults(load_config(config)))
    paddle.seed(INIT_SEED)
    model = task.build(task.space.init_tokens())
    freeze_batch_norm(model)
    initial = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    task._train(model, None)
    return initial, {k: v.numpy() for k, v in model.state_dict().items()}


def _server_gone() -> None:
    raise ControllerError("the server is gone")


def check_on_main() -> Dict[str, object]:
    """What a rank sees of `on_main`: a result after several keep-alives, and rank 0's error."""
    parallel.KEEPALIVE_SECONDS = 0.2
    result = parallel.on_main(lambda: time.sleep(1.0) or [3, 1, 4], "a slow controller")
    try:
        parallel.on_main(_server_gone, "a failing controller")
        error = None
    except ControllerError as err:
        error = str(err)
    return {"result": result, "error": error}


def main(argv: List[str]) -> None:
    config, out = argv
    os.makedirs(out, exist_ok=True)
    paddle.set_device("cpu")
    _, trained = train_weights(config)
    np.savez(os.path.join(out, f"rank{parallel.rank()}.npz"), **trained)
    seen = {"world_size": parallel.world_size(), **check_on_main()}
    with open(os.path.join(out, f"rank{parallel.rank()}.json"), "w", encoding="utf-8") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main(sys.argv[1:])
