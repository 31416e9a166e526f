"""Data-parallel training under `python -m paddle.distributed.launch`, the way PaddleDetection/PaddleSeg do it.

One process per device (GPU, or CPU with gloo). Every rank trains the same model on its shard of the data
(`paddle.DataParallel` averages the gradients); rank 0 alone talks to the controller and writes records,
checkpoints and reports. Without launch (one process) every function here is a no-op, so a search runs the
same code on one CPU, one GPU or many. Multi-machine runs use launch's own `--ips`; nothing here replaces it.
"""

import os
from typing import Any, List, Optional

import paddle
import paddle.distributed as dist

_initialised = False


def world_size() -> int:
    """Processes started by paddle.distributed.launch (1 without it)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def rank() -> int:
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def is_main() -> bool:
    """Rank 0: the one process that talks to the controller and writes files."""
    return rank() == 0


def init() -> None:
    """Join the process group once when launched with more than one process."""
    global _initialised
    if world_size() > 1 and not _initialised:
        dist.init_parallel_env()
        _initialised = True


def wrap(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """`paddle.DataParallel(model)` when there are several ranks, the model itself otherwise."""
    if world_size() <= 1:
        return model
    init()
    return paddle.DataParallel(model)


def shard_sampler(dataset: Any, batch_size: int, shuffle: bool, drop_last: bool) -> paddle.io.BatchSampler:
    """Each rank's share of every epoch (`DistributedBatchSampler`; the whole dataset with one rank)."""
    if world_size() <= 1:
        return paddle.io.BatchSampler(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    return paddle.io.DistributedBatchSampler(
        dataset, batch_size=batch_size, num_replicas=world_size(), rank=rank(), shuffle=shuffle, drop_last=drop_last
    )


def broadcast(obj: Any, src: int = 0) -> Any:
    """`obj` as rank `src` has it, on every rank (tokens, rewards, decisions)."""
    if world_size() <= 1:
        return obj
    init()
    holder: List[Optional[Any]] = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
