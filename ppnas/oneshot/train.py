"""THE supernet training loop (`--phase train_supnet`) of any registered supernet: sandwich steps, checkpoints,
resume.

  for iteration in range(start, max_iters):
      seed everything with (seed, iteration)           the batch's transforms, the sampled subnets and sizes
      data = batch `iteration % len` of epoch `iteration // len` (the epoch's order is seeded too)
      sandwich_step(...)                                max / random / random / min, one optimizer step
      every checkpoint_every iterations and at the end: supernet + optimizer + state, atomically

Because everything an iteration draws is seeded by its number, `-r` restarts from the last checkpoint and
gives the same weights as a run that was never killed. Batches are read in this thread (the task's transforms,
called directly): paddle's DataLoader prefetches in a thread of its own, whose draws from the global RNGs would
not follow the per-iteration seeds.
"""

import random
import time
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from ppnas import parallel
from ppnas.engine.seeding import seed_everything
from ppnas.interrupts import resume_hint
from ppnas.observers import Progress, ScalarLog, scalar_log_dir
from ppnas.oneshot.adapters import adapter_for
from ppnas.oneshot.algorithm import Sandwich, sandwich_step
from ppnas.oneshot.checkpoint import Checkpoint, trained_for
from ppnas.oneshot.space import ElasticSpace
from ppnas.oneshot.supernet import build_supernet
from ppnas.oneshot.window import window_sampler
from ppnas.storage import refuse_existing


def _state(cfg: Mapping[str, Any], space: ElasticSpace, iteration: int, train_seconds: float) -> Dict[str, Any]:
    return {
        "iteration": iteration,
        "train_seconds": train_seconds,  # wall time of training so far, over every resumed run
        "max_iters": int(cfg["max_iters"]),
        **trained_for(cfg, space),
        "sample_strategy": list(cfg["sample_strategy"]),
        "sandwich_sampling": cfg["sandwich_sampling"],
        "time": time.time(),
    }


def sandwich_rule(cfg: Mapping[str, Any]) -> Sandwich:
    return Sandwich(
        strategy=cfg["sample_strategy"],
        distill_weight=float(cfg["distill_weight"]),
        interpolation=str(cfg["interpolation_type"]),
        share_interpolation=bool(cfg["share_interpolation"]),
        window=window_sampler(cfg),
    )


def epoch_batches(sampler: Any, seed: int, epoch: int) -> List[List[int]]:
    """The index batches of one epoch, in an order fixed by (seed, epoch)."""
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(seed + epoch)
    np.random.seed((seed + epoch) % 2**32)  # paddle's RandomSampler permutes with the global numpy RNG
    return [list(b) for b in sampler]


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
    with resume_hint(cfg["save_dir"]):
        return _train(cfg, resume, quiet, use_vdl, vdl_log_dir)


def _train(cfg: Mapping[str, Any], resume: bool, quiet: bool, use_vdl: bool, vdl_log_dir: Optional[str]) -> str:
    adapter = adapter_for(cfg)
    rule, seed = sandwich_rule(cfg), int(cfg["seed"])
    max_iters, every = int(cfg["max_iters"]), max(1, int(cfg["checkpoint_every"]))
    seed_everything(seed)  # the initial weights
    supernet = build_supernet(cfg)
    loader = adapter.train_loader(parallel.shard_sampler)
    model = parallel.wrap(supernet)
    optimizer = adapter.optimizer(supernet, len(loader))
    checkpoint = Checkpoint.of(cfg)
    state = checkpoint.state()
    start, seconds_before, run_start = 0, 0.0, time.time()
    if resume:
        state = checkpoint.load_weights(supernet, cfg, "train_supnet -r")
        checkpoint.load_optimizer(optimizer, supernet)
        start, seconds_before = int(state["iteration"]), float(state.get("train_seconds", 0.0))
        print(f"resuming train_supnet in {checkpoint.dir} at iteration {start}/{max_iters}")
    else:
        trained = f"a supernet trained to iteration {state['iteration']}" if state else "a supernet"
        refuse_existing(checkpoint.dir, trained, state is not None, save_dir=cfg["save_dir"])
    scalars = ScalarLog(scalar_log_dir(cfg["save_dir"], vdl_log_dir), "train_supnet") if use_vdl else None
    bar = Progress(max_iters, "train_supnet", "it", initial=start, quiet=quiet or not parallel.is_main())
    model.train()
    batches: List[List[int]] = []
    for iteration in range(start, max_iters):
        epoch, position = divmod(iteration, len(loader))
        if position == 0 or not batches:
            batches = epoch_batches(loader.batch_sampler, seed, epoch)
        rng = seed_iteration(seed, iteration)
        result = sandwich_step(model, adapter, adapter.fetch(loader, batches[position]), optimizer, rule, rng)
        losses = {kind: result.mean(kind) for kind in result.losses}
        bar.update(1, **{kind: f"{value:.3f}" for kind, value in losses.items()})
        if scalars is not None and parallel.is_main():
            scalars.log(
                iteration + 1,
                {**{f"train_supnet/loss_{k}": v for k, v in losses.items()}, "train_supnet/lr": optimizer.get_lr()},
            )
        done = iteration + 1
        if parallel.is_main() and (done % every == 0 or done == max_iters):
            checkpoint.save(
                supernet, optimizer, _state(cfg, supernet.space, done, seconds_before + time.time() - run_start)
            )
    bar.close()
    if scalars is not None:
        scalars.close()
    return checkpoint.dir
