"""What the search and the retraining share: one pass of training over a loader, and a checkpoint that is one
file written atomically (a killed run resumes from the last completed epoch).

`retrain` trains the derived subnet (weights reused from the supernet) on the whole train list, evaluates
NME on the test list after each epoch, and resumes from its checkpoint.
"""

import os
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional

import paddle

from ppnas import parallel
from ppnas.errors import ConfigError
from ppnas.history import History, RetrainRecord
from ppnas.observers import progress
from ppnas.storage import atomic_paddle_save, refuse_existing
from ppnas.tasks.landmarks import LandmarkData, evaluate_nme, pfld_loss

CHECKPOINT_SUFFIX = ".pdstate"

# loss of a batch (images, landmarks, angles) -> scalar tensor
BatchLoss = Callable[[paddle.Tensor, paddle.Tensor, paddle.Tensor], paddle.Tensor]


def train_pass(
    batches: paddle.io.DataLoader,  # of (images, landmarks, angles)
    loss_fn: BatchLoss,
    optimizer: paddle.optimizer.Optimizer,
    model: paddle.nn.Layer,
    desc: str,
    quiet: bool,
) -> float:
    """One pass: loss, backward, `optimizer.step()`, then every gradient of `model` cleared (an
    architecture step must not leave weight gradients for the next weight step); returns the mean loss."""
    total, count = 0.0, 0
    for images, landmarks, angles in progress(batches, len(batches), desc, "batch", quiet or not parallel.is_main()):
        loss = loss_fn(images, landmarks, angles)
        if not paddle.isfinite(loss).item():
            raise FloatingPointError(f"{desc}: the loss is {loss.item()} (lower the learning rate)")
        loss.backward()
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
    ckpt_path = os.path.join(save_dir, "retrain" + CHECKPOINT_SUFFIX)
    if not resume:
        refuse_existing(save_dir, "a retrained subnet", os.path.isfile(ckpt_path))
    history = History.in_dir(save_dir)
    wrapped = parallel.wrap(model)
    optimizer = paddle.optimizer.Adam(
        learning_rate=float(settings["lr"]), parameters=model.parameters(), weight_decay=float(settings["weight_decay"])
    )
    start, last = 0, None
    state = load_checkpoint(ckpt_path) if resume else None
    if state is not None:
        model.set_state_dict(state["model"])
        optimizer.set_state_dict(state["optimizer"])
        start, last = int(state["epoch"]), state["record"]
        record_once(history, last)

    def loss_fn(images: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor) -> paddle.Tensor:
        landmarks, angles = wrapped(images)
        return pfld_loss(landmarks, angles, landmarks_gt, angles_gt)[0]

    for epoch in range(start, int(settings["epochs"])):
        started = time.time()
        paddle.seed(seed + epoch)
        model.train()
        loss = train_pass(
            data.loader(data.full_train, True, epoch), loss_fn, optimizer, model, f"retrain {epoch + 1}", quiet
        )
        model.eval()
        nme = evaluate_nme(lambda x: model(x)[0], data.loader(data.test, False))
        record = asdict(RetrainRecord(epoch + 1, loss, nme, time.time() - started, choices=list(model.choices)))
        save_checkpoint(
            ckpt_path,
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "record": record},
        )
        record_once(history, record)
        last = record
        if not quiet and parallel.is_main():
            print(f"retrain epoch {epoch + 1}/{settings['epochs']}: loss {loss:.4f}, test NME {nme:.4f}", flush=True)
    if last is None:
        raise ConfigError("Retrain.epochs is 0: nothing to retrain")
    return last
