"""The supernet training loop (`--phase train_supnet`): sandwich steps, checkpoints, resume.

  for iteration in range(start, max_iters):
      seed everything with (seed, iteration)           the batch's transforms and the sampled subnets
      data = batch `iteration % len` of epoch `iteration // len` (the epoch's order is seeded too)
      sandwich_step(...)                                max / random / random / min, one optimizer step
      every checkpoint_every iterations and at the end: supernet + optimizer + state, atomically

Because everything an iteration draws is seeded by its number, `-r` restarts from the last checkpoint and
gives the same weights as a run that was never killed. Batches are read in this thread (ppdet's sample and
batch transforms, called directly): paddle's DataLoader prefetches in a thread of its own, whose draws from
the global RNGs would not follow the per-iteration seeds.
"""

import json
import os
import random
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle
from tqdm import tqdm
from visualdl import LogWriter

from ppnas import parallel
from ppnas.config import load_config, merge, parse_overrides
from ppnas.errors import ConfigError
from ppnas.observers import VDL_DIR
from ppnas.oneshot.algorithm import check_strategy, sandwich_step
from ppnas.oneshot.supernet import BlazeFaceSupernet
from ppnas.sanas.search import seed_everything
from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults

SUPERNET_DIR = "supernet"
WEIGHTS = "supernet.pdparams"
OPTIMIZER = "supernet.pdopt"
STATE = "state.json"  # written last: a checkpoint exists once this names its iteration

BIGNAS_KEYS: Dict[str, Any] = {
    "sample_strategy": ["max", "random", "random", "min"],
    "distill_weight": 1.0,
    "checkpoint_every": 50,
    "calib_batches": 10,
    "search_mode": "random",  # random | traverse | sanas
    "subnet_count": 500,
    "traverse_stride": 2,
    "flops_samples": 10000,
    "subnet_tokens": None,
    "finetune_iters": 200,
    "finetune_lr_scale": 0.1,
}


def load_bignas_config(path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The detection config's keys and checks, plus the one-shot strategy's keys."""
    cfg = with_search_defaults(merge(load_config(path), parse_overrides(overrides)), extra_keys=BIGNAS_KEYS)
    check_strategy(cfg["sample_strategy"], float(cfg["distill_weight"]))
    if cfg["seed"] is None:
        cfg["seed"] = 0  # the loop seeds every iteration from it; a run must be repeatable to be resumable
    return cfg


class Checkpoint:
    """`<save_dir>/supernet/`: weights, optimizer (with its LR schedule) and state.json."""

    def __init__(self, save_dir: str) -> None:
        self.dir = os.path.join(save_dir, SUPERNET_DIR)

    def state(self) -> Optional[Dict[str, Any]]:
        path = os.path.join(self.dir, STATE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def save(self, supernet: BlazeFaceSupernet, optimizer: paddle.optimizer.Optimizer, state: Dict[str, Any]) -> None:
        os.makedirs(self.dir, exist_ok=True)
        for name, obj in ((WEIGHTS, supernet.state_dict()), (OPTIMIZER, portable_optimizer_state(optimizer, supernet))):
            paddle.save(obj, os.path.join(self.dir, name + ".tmp"))
            os.replace(os.path.join(self.dir, name + ".tmp"), os.path.join(self.dir, name))
        with open(os.path.join(self.dir, STATE + ".tmp"), "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
        os.replace(os.path.join(self.dir, STATE + ".tmp"), os.path.join(self.dir, STATE))

    def check_space(self, state: Mapping[str, Any], cfg: Mapping[str, Any]) -> None:
        for key in ("search_space", "kernel_choices"):
            if state.get(key) != cfg[key]:
                raise ConfigError(
                    f"the supernet checkpoint in {self.dir} was trained with {key} {state.get(key)}, "
                    f"this config has {cfg[key]}: use the same {key} or another save_dir"
                )

    def load_weights(self, supernet: BlazeFaceSupernet, cfg: Mapping[str, Any], phase: str) -> Dict[str, Any]:
        state = self.state()
        if state is None:
            raise ConfigError(
                f"--phase {phase} needs a trained supernet and {self.dir} holds none: "
                f"run --phase train_supnet first (same config and save_dir)"
            )
        self.check_space(state, cfg)
        supernet.set_state_dict(paddle.load(os.path.join(self.dir, WEIGHTS)))
        return state


def _accumulator_names(supernet: BlazeFaceSupernet) -> List[Tuple[str, str]]:
    """(paddle's generated parameter name, its state-dict key), longest generated name first."""
    named = [(p.name, key) for key, p in supernet.named_parameters()]
    return sorted(named, key=lambda pair: -len(pair[0]))


def portable_optimizer_state(optimizer: paddle.optimizer.Optimizer, supernet: BlazeFaceSupernet) -> Dict[str, Any]:
    """The optimizer's state keyed by parameter keys: paddle names accumulators after generated parameter
    names (`conv2d_390.w_0_moment1_0`), which differ in another process or another model instance."""
    out = {}
    for key, value in optimizer.state_dict().items():
        for generated, structured in _accumulator_names(supernet):
            if key.startswith(generated + "_"):
                key = f"{structured}/{key[len(generated) + 1 :]}"
                break
        out[key] = value
    return out


def restore_optimizer_state(
    optimizer: paddle.optimizer.Optimizer, supernet: BlazeFaceSupernet, state: Mapping[str, Any]
) -> None:
    generated = {structured: name for name, structured in _accumulator_names(supernet)}
    renamed = {}
    for key, value in state.items():
        structured, _, suffix = key.rpartition("/")
        renamed[f"{generated[structured]}_{suffix}" if structured in generated else key] = value
    optimizer.set_state_dict(renamed)


def _state(cfg: Mapping[str, Any], iteration: int, train_seconds: float) -> Dict[str, Any]:
    return {
        "iteration": iteration,
        "train_seconds": train_seconds,  # wall time of training so far, over every resumed run
        "max_iters": int(cfg["max_iters"]),
        "search_space": cfg["search_space"],
        "kernel_choices": list(cfg["kernel_choices"]),
        "sample_strategy": list(cfg["sample_strategy"]),
        "time": time.time(),
    }


def epoch_batches(sampler: Any, seed: int, epoch: int) -> List[List[int]]:
    """The index batches of one epoch, in an order fixed by (seed, epoch)."""
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(seed + epoch)
    np.random.seed((seed + epoch) % 2**32)  # paddle's RandomSampler permutes with the global numpy RNG
    return [list(b) for b in sampler]


def fetch(loader: paddle.io.DataLoader, indices: Sequence[int]) -> Dict[str, paddle.Tensor]:
    """One batch through the loader's ppdet transforms, in this thread."""
    batch = loader.collate_fn([loader.dataset[i] for i in indices])
    return {k: paddle.to_tensor(np.asarray(v)) for k, v in batch.items()}


def seed_iteration(seed: int, iteration: int) -> random.Random:
    """Seed the global RNGs for this iteration's transforms; the subnets come from the returned RNG."""
    seed_everything(seed * 1_000_003 + iteration)
    return random.Random(seed * 1_000_003 + iteration)


def train_supernet(
    cfg: Mapping[str, Any],
    resume: bool = False,
    quiet: bool = False,
    use_vdl: bool = False,
    vdl_log_dir: Optional[str] = None,
) -> str:
    """Train (or resume) the supernet to `max_iters` iterations; returns the checkpoint folder."""
    task = BlazeFaceTask(cfg)
    strategy = check_strategy(cfg["sample_strategy"], float(cfg["distill_weight"]))
    distill_weight, seed = float(cfg["distill_weight"]), int(cfg["seed"])
    max_iters, every = int(cfg["max_iters"]), max(1, int(cfg["checkpoint_every"]))
    seed_everything(seed)  # the initial weights
    supernet = BlazeFaceSupernet(task.space, cfg)
    loader = task.train_loader(parallel.shard_sampler)
    model = parallel.wrap(supernet)
    optimizer = task.optimizer(supernet, len(loader))
    checkpoint = Checkpoint(cfg["save_dir"])
    state = checkpoint.state()
    start, seconds_before, run_start = 0, 0.0, time.time()
    if resume:
        checkpoint.load_weights(supernet, cfg, "train_supnet -r")
        restore_optimizer_state(optimizer, supernet, paddle.load(os.path.join(checkpoint.dir, OPTIMIZER)))
        start, seconds_before = int(state["iteration"]), float(state.get("train_seconds", 0.0))
        print(f"resuming train_supnet in {checkpoint.dir} at iteration {start}/{max_iters}")
    elif state is not None:
        raise ConfigError(
            f"{checkpoint.dir} already holds a supernet trained to iteration {state['iteration']}: "
            f"resume it with -r {cfg['save_dir']}, or set another save_dir"
        )
    writer = None
    if use_vdl and parallel.is_main():
        writer = LogWriter(logdir=vdl_log_dir or os.path.join(cfg["save_dir"], VDL_DIR, "train_supnet"))
    bar = tqdm(total=max_iters, initial=start, desc="train_supnet", unit="it", disable=quiet)
    model.train()
    batches: List[List[int]] = []
    for iteration in range(start, max_iters):
        epoch, position = divmod(iteration, len(loader))
        if position == 0 or not batches:
            batches = epoch_batches(loader.batch_sampler, seed, epoch)
        rng = seed_iteration(seed, iteration)
        result = sandwich_step(model, fetch(loader, batches[position]), optimizer, strategy, rng, distill_weight)
        bar.update(1)
        bar.set_postfix({kind: f"{result.mean(kind):.3f}" for kind in result.losses}, refresh=False)
        if writer is not None:
            for kind in result.losses:
                writer.add_scalar(f"train_supnet/loss_{kind}", result.mean(kind), iteration + 1)
            writer.add_scalar("train_supnet/lr", optimizer.get_lr(), iteration + 1)
        done = iteration + 1
        if parallel.is_main() and (done % every == 0 or done == max_iters):
            checkpoint.save(supernet, optimizer, _state(cfg, done, seconds_before + time.time() - run_start))
    bar.close()
    if writer is not None:
        writer.close()
    return checkpoint.dir
