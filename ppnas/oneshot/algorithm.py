"""BigNAS's training rule and BN calibration over any supernet (United-Perception's `bignas` semantics).

One optimizer step per batch: the subnets of `sample_strategy` (the sandwich rule, default
[max, random, random, min]) run in turn on the same batch, each at its own input size (or, with
`share_interpolation`, all at one size drawn for the iteration), their gradients accumulate, then one step.
Every subnet learns from the labels with the task's loss; with `distill_weight` > 0 the others also learn from
the max subnet's detached outputs at the same input size (in-place distillation; the adapter's distillation
loss: detection KL of class scores + smooth-L1 of boxes, segmentation per-pixel KL).
"""

import random
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import paddle

from ppnas.errors import ConfigError
from ppnas.oneshot.dynamic.ops import BatchStatistics, DynamicBatchNorm2D

SAMPLE_KINDS = ("max", "min", "random")


def check_strategy(strategy: Sequence[str], distill_weight: float) -> List[str]:
    strategy = [str(s) for s in strategy]
    unknown = [s for s in strategy if s not in SAMPLE_KINDS]
    if not strategy or unknown:
        raise ConfigError(f"sample_strategy must be a list of {', '.join(SAMPLE_KINDS)}, got {strategy}")
    if distill_weight > 0 and strategy[0] != "max":
        raise ConfigError(f"in-place distillation needs 'max' first in sample_strategy (the teacher), got {strategy}")
    return strategy


def sample_tokens(
    space: Any, kind: str, rng: random.Random, window: Any = None, size: Optional[Sequence[int]] = None
) -> List[int]:
    """The tokens of one member of the sandwich; a random one from `window` (a WindowSampler) when given, priced
    at `size` (the iteration's shared size) or its own. max and min stay the space's bounds either way."""
    if kind == "max":
        return space.max_tokens()
    if kind == "min":
        return space.min_tokens()
    if window is not None:
        return window.draw(rng, size)
    return [rng.randrange(n) for n in space.range_table()]


@dataclass
class StepResult:
    losses: Dict[str, List[float]] = field(default_factory=dict)  # per sampled kind, in order
    tokens: List[List[int]] = field(default_factory=list)

    def mean(self, kind: str) -> float:
        values = self.losses.get(kind) or [float("nan")]
        return sum(values) / len(values)


@dataclass
class Sandwich:
    """How an iteration samples and teaches (the one-shot keys of the same names)."""

    strategy: Sequence[str]
    distill_weight: float
    interpolation: str = "bilinear"
    share_interpolation: bool = False
    window: Any = None  # a WindowSampler (sandwich_sampling: window): random members inside the Constraint


def _teacher_at(model: Any, adapter: Any, batch: Mapping[str, Any], size: Tuple[int, ...], mode: str) -> Any:
    """The max subnet's detached outputs at another input size (a student that runs at that size learns from it)."""
    student = model.subnet
    top = model.space.decode(model.space.max_tokens())
    top.image_size = list(size)
    model.set_subnet(top)
    with paddle.no_grad():
        teacher = adapter.teacher(adapter.outputs(model, adapter.resize(batch, size, mode)))
    model.set_subnet(student)
    return teacher


def sandwich_step(
    supernet: paddle.nn.Layer,
    adapter: Any,
    batch: Mapping[str, Any],
    optimizer: paddle.optimizer.Optimizer,
    rule: Sandwich,
    rng: random.Random,
) -> StepResult:
    """Run every subnet of the rule on `batch`, accumulate their gradients, take one optimizer step."""
    model = getattr(supernet, "_layers", supernet)  # paddle.DataParallel keeps the layer in _layers
    sizes = model.space.image_size_list
    shared = sizes[rng.randrange(len(sizes))] if rule.share_interpolation else None
    result = StepResult()
    teachers: Dict[Tuple[int, ...], Any] = {}
    for kind in rule.strategy:
        tokens = sample_tokens(model.space, kind, rng, rule.window, shared)
        subnet = model.space.decode(tokens)
        if shared is not None:
            subnet.image_size = list(shared)
        model.set_subnet(subnet)
        size = tuple(subnet.image_size)
        data = adapter.resize(batch, size, rule.interpolation)
        outputs = adapter.outputs(model, data)
        loss = adapter.loss(model, data, outputs)
        if kind == "max" and not teachers:
            teachers[size] = adapter.teacher(outputs)
        elif rule.distill_weight > 0 and teachers:
            if size not in teachers:
                teachers[size] = _teacher_at(model, adapter, batch, size, rule.interpolation)
            loss = loss + rule.distill_weight * adapter.distill(outputs, teachers[size])
        value = float(loss)
        if value != value or value in (float("inf"), float("-inf")):
            raise FloatingPointError(f"the {kind} subnet's loss is {value}")
        loss.backward()
        result.losses.setdefault(kind, []).append(value)
        result.tokens.append(tokens)
    optimizer.step()
    optimizer.clear_grad()
    if isinstance(optimizer._learning_rate, paddle.optimizer.lr.LRScheduler):
        optimizer._learning_rate.step()
    return result


def dynamic_norms(supernet: paddle.nn.Layer) -> List[DynamicBatchNorm2D]:
    return [layer for layer in supernet.sublayers() if isinstance(layer, DynamicBatchNorm2D)]


@paddle.no_grad()
def calibrate_bn(
    supernet: paddle.nn.Layer, adapter: Any, batches: Iterable[Mapping[str, Any]], mode: str, resize: bool = True
) -> int:
    """Set the active subnet's BN statistics to the average of the batch means and biased variances over
    `batches` (United-Perception's calib_bn), each batch at the subnet's input size (`resize`) or its own. Only the
    active channels of the BNs the subnet runs change; weights do not. Returns the number of batches."""
    norms = dynamic_norms(supernet)
    for norm in norms:
        norm.calibration = BatchStatistics()
    supernet.train()
    used = 0
    try:
        for batch in batches:
            adapter.outputs(supernet, adapter.resize(batch, supernet.subnet.image_size, mode) if resize else batch)
            used += 1
        if used == 0:
            raise ConfigError("BN calibration got no batch: the train set is smaller than one batch")
        for norm in norms:
            if norm.calibration.batches:
                norm.write_statistics(*norm.calibration.average())
    finally:
        for norm in norms:
            norm.calibration = None
    return used
