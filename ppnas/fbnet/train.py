"""What the search and the retraining share: the weights' optimizer and its learning-rate schedule, one pass of
training over a loader, and a checkpoint that is one file written atomically (a killed run resumes from the
last completed epoch).

`retrain` trains a model (the derived subnet with the supernet's weights, or any model of the same interface
from scratch: a baseline) on the whole train list, evaluates NME on the test list after each epoch, and
resumes from its checkpoint.
"""

import math
import os
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import paddle

from ppnas import parallel
from ppnas.errors import ConfigError
from ppnas.history import History, RetrainRecord
from ppnas.observers import progress
from ppnas.storage import atomic_paddle_save, refuse_existing
from ppnas.tasks.landmarks import LandmarkData, evaluate_nme, pfld_loss

CHECKPOINT_SUFFIX = ".pdstate"
RETRAIN_CHECKPOINT = "retrain" + CHECKPOINT_SUFFIX

# loss of a batch (images, landmarks, angles) -> scalar tensor
BatchLoss = Callable[[paddle.Tensor, paddle.Tensor, paddle.Tensor], paddle.Tensor]


def weight_optimizer(
    settings: Dict[str, Any], parameters: Sequence[paddle.Tensor]
) -> Tuple[paddle.optimizer.Optimizer, paddle.optimizer.lr.LRScheduler]:
    """The weights' optimizer of a Search or Retrain block and its schedule, stepped once per epoch:
    `optimizer` (adam | rmsprop) at `lr`, annealed over `epochs` by a cosine to 0 (`lr_schedule: cosine`,
    NNI's schedule) or held (`constant`). The rate is a closed form of the epoch (paddle's own cosine decay is
    recursive in the last rate), so `schedule.step(epoch)` puts a resumed or lengthened run on its curve."""
    epochs = max(int(settings["epochs"]), 1)
    if settings["lr_schedule"] == "cosine":
        factor = lambda epoch: 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs))  # noqa: E731
    else:
        factor = lambda epoch: 1.0  # noqa: E731
    schedule = paddle.optimizer.lr.LambdaDecay(float(settings["lr"]), factor)
    make = paddle.optimizer.Adam if settings["optimizer"] == "adam" else paddle.optimizer.RMSProp
    optimizer = make(learning_rate=schedule, parameters=list(parameters), weight_decay=float(settings["weight_decay"]))
    return optimizer, schedule


def train_pass(
    batches: paddle.io.DataLoader,  # of (images, landmarks, angles)
    loss_fn: BatchLoss,
    optimizer: paddle.optimizer.Optimizer,
    model: paddle.nn.Layer,
    desc: str,
    quiet: bool,
    before_step: Optional[Callable[[], None]] = None,
) -> float:
    """One pass: loss, backward, `before_step()` (if given), `optimizer.step()`, then every gradient of `model`
    cleared (an architecture step must not leave weight gradients for the next weight step); returns the
    mean loss."""
    total, count = 0.0, 0
    for images, landmarks, angles in progress(batches, len(batches), desc, "batch", quiet or not parallel.is_main()):
        loss = loss_fn(images, landmarks, angles)
        if not paddle.isfinite(loss).item():
            raise FloatingPointError(f"{desc}: the loss is {loss.item()} (lower the learning rate)")
        loss.backward()
        if before_step is not None:
            before_step()
        optimizer.step()
        model.clear_gradients()
        total, count = total + float(loss), count + 1
    return total / max(count, 1)


def save_checkpoint(path: str, state: Dict[str, Any]) -> None:
    """`state` (tensors, state dicts, plain values) into one file, replaced atomically; rank 0 only."""
    if parallel.is_main():
        atomic_paddle_save(state, path)


def load_checkpoint(path: str) -> Optional[Dict[str, Any]]:
    return paddle.load(path) if os.path.isfile(path) else None


def record_once(history: History, record: Any) -> None:
    """The epoch's line, unless the history has it (a run killed between checkpoint and line); rank 0 only."""
    if parallel.is_main():
        history.append_once(record)


def retrain(
    model: paddle.nn.Layer,
    data: LandmarkData,
    settings: Dict[str, Any],
    save_dir: str,
    resume: bool,
    quiet: bool = False,
    seed: int = 0,
) -> Dict[str, Any]:
    """Train `model` (a LandmarkModel) `settings['epochs']` epochs; returns the last record (as a dict)."""
    # fresh optimizer-accumulator names in every run: a checkpoint's optimizer state loads by name
    with paddle.utils.unique_name.guard():
        return _retrain(model, data, settings, save_dir, resume, quiet, seed)


def _retrain(
    model: paddle.nn.Layer,
    data: LandmarkData,
    settings: Dict[str, Any],
    save_dir: str,
    resume: bool,
    quiet: bool,
    seed: int,
) -> Dict[str, Any]:
    ckpt_path = os.path.join(save_dir, RETRAIN_CHECKPOINT)
    if not resume:
        refuse_existing(save_dir, "a retrained subnet", os.path.isfile(ckpt_path))
    history = History.in_dir(save_dir)
    wrapped = parallel.wrap(model)
    optimizer, schedule = weight_optimizer(settings, model.parameters())
    start, last = 0, None
    state = load_checkpoint(ckpt_path) if resume else None
    if state is not None:
        model.set_state_dict(state["model"])
        optimizer.set_state_dict(state["optimizer"])
        start, last = int(state["epoch"]), state["record"]
        schedule.step(start)
        record_once(history, last)

    def loss_fn(images: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor) -> paddle.Tensor:
        landmarks, angles = wrapped(images)
        return pfld_loss(landmarks, angles, landmarks_gt, angles_gt)[0]

    for epoch in range(start, int(settings["epochs"])):
        started = time.time()
        paddle.seed(seed + epoch)
        model.train()
        lr = optimizer.get_lr()
        loss = train_pass(
            data.loader(data.full_train, True, epoch), loss_fn, optimizer, model, f"retrain {epoch + 1}", quiet
        )
        schedule.step()
        model.eval()
        parallel.sync_buffers(model)  # every rank evaluates rank 0's model
        nme = evaluate_nme(lambda x: model(x)[0], data.loader(data.test, False), data.nme_norm)
        record = asdict(
            RetrainRecord(
                epoch=epoch + 1,
                loss=loss,
                nme=nme,
                nme_norm=data.nme_norm,
                seconds=time.time() - started,
                lr=lr,
                choices=list(model.choices),
            )
        )
        save_checkpoint(
            ckpt_path,
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "record": record},
        )
        record_once(history, record)
        last = record
        if not quiet and parallel.is_main():
            print(
                f"retrain epoch {epoch + 1}/{settings['epochs']}: loss {loss:.4f}, "
                f"test NME {nme:.4f} ({data.nme_norm})",
                flush=True,
            )
    if last is None:
        raise ConfigError("Retrain.epochs is 0: nothing to retrain")
    return last
