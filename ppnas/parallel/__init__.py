"""Data-parallel training under `python -m paddle.distributed.launch`, the way PaddleDetection/PaddleSeg do it.

One process per device (GPU, or CPU with gloo). Every rank trains the same model on its shard of the data
(`paddle.DataParallel` averages the gradients); rank 0 alone talks to the controller and writes records,
checkpoints and reports. Without launch (one process) every function here is a no-op, so a search runs the
same code on one CPU, one GPU or many. Multi-machine runs use launch's own `--ips`; nothing here replaces it.

A rank that dies: launch stops the others and names it (with its log). Our side never waits forever: a failed
collective raises ParallelError (gloo on CPU fails a collective after a fixed 30 s, NCCL after
PADDLE_PG_TIMEOUT), and `on_main` keeps the other ranks' collectives alive while rank 0 waits on the
controller for longer than that.
"""

import pickle
import threading
import time
from typing import Any, Callable, List, Optional, TypeVar

import paddle
import paddle.distributed as dist

from ppnas.errors import ParallelError

T = TypeVar("T")

KEEPALIVE_SECONDS = 10.0  # well under gloo's fixed 30 s collective timeout
# launch polls its ranks every second and reports the first failed one in rank order: a survivor waits this
# long before it fails too, so that launch names the rank that died (and stops the survivors itself)
LOST_RANK_GRACE_SECONDS = 5.0
_STILL_WORKING = "ppnas: rank 0 is still working"

_initialised = False


def world_size() -> int:
    """Processes started by paddle.distributed.launch (1 without it)."""
    return dist.ParallelEnv().world_size


def rank() -> int:
    return dist.ParallelEnv().rank


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
    """`paddle.DataParallel(model)` when there are several ranks (it starts every rank from rank 0's
    weights), the model itself otherwise. Train through the wrapper; optimise and save `model`."""
    if world_size() <= 1:
        return model
    init()
    return paddle.DataParallel(model)


def shard_sampler(dataset: Any, batch_size: int, shuffle: bool, drop_last: bool) -> paddle.io.DistributedBatchSampler:
    """This rank's batches (the whole dataset with one rank). Call `set_epoch(epoch)` before each epoch:
    the shuffle is seeded by the epoch, the same on every rank and in every run, and ranks share no sample."""
    return paddle.io.DistributedBatchSampler(
        dataset, batch_size=batch_size, num_replicas=world_size(), rank=rank(), shuffle=shuffle, drop_last=drop_last
    )


def _lost(what: str, err: BaseException) -> ParallelError:
    time.sleep(LOST_RANK_GRACE_SECONDS)
    return ParallelError(
        f"rank {rank()}: the data-parallel group broke while {what} ({str(err).strip().splitlines()[0]}): "
        "another rank died or stopped answering; paddle.distributed.launch names it and its log "
        "(workerlog.N in --log_dir). Resume the search with -r SAVE_DIR"
    )


def broadcast(obj: Any, src: int = 0, what: str = "exchanging a message") -> Any:
    """`obj` as rank `src` has it, on every rank (tokens, rewards, decisions)."""
    if world_size() <= 1:
        return obj
    init()
    holder: List[Optional[Any]] = [obj]
    try:
        dist.broadcast_object_list(holder, src=src)
    except RuntimeError as err:  # gloo / NCCL report a dead peer or a timeout this way
        raise _lost(what, err) from None
    return holder[0]


def mean(value: float, what: str = "averaging the loss") -> float:
    """The mean of `value` over the ranks: a decision taken on it (a NaN loss) is the same on every rank."""
    if world_size() <= 1:
        return value
    init()
    total = paddle.to_tensor([value], dtype="float64")
    try:
        dist.all_reduce(total)
    except RuntimeError as err:
        raise _lost(what, err) from None
    return float(total.numpy()[0]) / world_size()


def average_gradients(parameters: List[paddle.Tensor], what: str = "averaging the gradients") -> None:
    """Give each parameter's gradient its mean over the ranks, for parameters stepped outside
    paddle.DataParallel (FBNet's architecture parameters): the same step on every rank keeps them equal."""
    if world_size() <= 1:
        return
    init()
    try:
        for parameter in parameters:
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)  # in place: the sum over the ranks
                parameter.grad.set_value(parameter.grad / world_size())
    except RuntimeError as err:
        raise _lost(what, err) from None


def sync_buffers(model: paddle.nn.Layer) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics). DataParallel keeps the weights equal, but each
    rank's batch statistics are its own (CPU has no sync_batch_norm kernel), so without this the ranks would
    evaluate different models."""
    if world_size() <= 1:
        return
    init()
    try:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
    except RuntimeError as err:
        raise _lost("sharing the BatchNorm statistics", err) from None


def on_main(fn: Callable[[], T], what: str, keepalive: bool = True) -> T:
    """`fn()` run on rank 0 alone; its result, or the exception it raised, on every rank.

    With `keepalive` fn runs in a thread (use it for pure-Python work that can wait, e.g. a remote
    controller), and rank 0 tells the others every KEEPALIVE_SECONDS that it is still working, so their
    broadcast does not time out. Without it fn runs in this thread (Paddle work, such as measuring a model)
    and must finish within the collective timeout.
    """
    if world_size() <= 1:
        return fn()
    if not is_main():
        outcome = broadcast(None, what=what)
        while outcome == _STILL_WORKING:
            outcome = broadcast(None, what=what)
        kind, value = outcome
        if kind == "error":
            raise value
        return value
    try:
        result = _run_keeping_alive(fn, what) if keepalive else fn()
    except Exception as err:
        broadcast(("error", _portable(err)), what=what)
        raise
    broadcast(("ok", result), what=what)
    return result


def _run_keeping_alive(fn: Callable[[], T], what: str) -> T:
    outcome: List[Any] = []

    def work() -> None:
        try:
            outcome.append(("ok", fn()))
        except BaseException as err:  # handed to the caller's thread
            outcome.append(("error", err))

    worker = threading.Thread(target=work, name="ppnas-rank0", daemon=True)
    worker.start()
    while True:
        worker.join(KEEPALIVE_SECONDS)
        if not worker.is_alive():
            break
        broadcast(_STILL_WORKING, what=what)
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def _portable(err: Exception) -> Exception:
    """The exception itself when it survives pickling (PpnasError, SearchFinished), else its text."""
    try:
        return pickle.loads(pickle.dumps(err))
    except Exception:
        return ParallelError(f"rank 0: {type(err).__name__}: {err}")
