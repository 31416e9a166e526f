"""BigNAS's training rule and BN calibration over the supernet (United-Perception's `bignas` semantics).

One optimizer step per batch: the subnets of `sample_strategy` (the sandwich rule, default
[max, random, random, min]) run in turn on the same batch, their gradients accumulate, then one step.
Every subnet learns from the ground truth with PaddleDetection's SSD loss; with `distill_weight` > 0 the
others also learn from the max subnet's detached outputs (in-place distillation: KL divergence of the
class scores plus smooth-L1 to the box regressions).
"""

import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import paddle
import paddle.nn.functional as F

from ppnas.errors import ConfigError
from ppnas.oneshot.supernet import BlazeFaceSupernet, SlicedBatchNorm, max_tokens, min_tokens

SAMPLE_KINDS = ("max", "min", "random")


def check_strategy(strategy: Sequence[str], distill_weight: float) -> List[str]:
    strategy = [str(s) for s in strategy]
    unknown = [s for s in strategy if s not in SAMPLE_KINDS]
    if not strategy or unknown:
        raise ConfigError(f"sample_strategy must be a list of {', '.join(SAMPLE_KINDS)}, got {strategy}")
    if distill_weight > 0 and strategy[0] != "max":
        raise ConfigError(f"in-place distillation needs 'max' first in sample_strategy (the teacher), got {strategy}")
    return strategy


def sample_tokens(space: Any, kind: str, rng: random.Random) -> List[int]:
    if kind == "max":
        return max_tokens(space)
    if kind == "min":
        return min_tokens(space)
    return [rng.randrange(n) for n in space.range_table()]


def distill_loss(
    student: Tuple[paddle.Tensor, paddle.Tensor], teacher: Tuple[paddle.Tensor, paddle.Tensor]
) -> paddle.Tensor:
    """KL(teacher || student) of the class scores, averaged over anchors, plus smooth-L1 of the boxes."""
    boxes, scores = student
    teacher_boxes, teacher_scores = teacher
    kl = F.kl_div(F.log_softmax(scores, axis=-1), F.softmax(teacher_scores, axis=-1), reduction="none")
    return kl.sum(axis=-1).mean() + F.smooth_l1_loss(boxes, teacher_boxes)


@dataclass
class StepResult:
    losses: Dict[str, List[float]] = field(default_factory=dict)  # per sampled kind, in order
    tokens: List[List[int]] = field(default_factory=list)

    def mean(self, kind: str) -> float:
        values = self.losses.get(kind) or [float("nan")]
        return sum(values) / len(values)


def sandwich_step(
    supernet: BlazeFaceSupernet,
    data: Mapping[str, Any],
    optimizer: paddle.optimizer.Optimizer,
    strategy: Sequence[str],
    rng: random.Random,
    distill_weight: float,
) -> StepResult:
    """Run every subnet of `strategy` on `data`, accumulate their gradients, take one optimizer step."""
    model = getattr(supernet, "_layers", supernet)  # paddle.DataParallel keeps the layer in _layers
    result = StepResult()
    teacher = None
    for kind in strategy:
        tokens = sample_tokens(model.space, kind, rng)
        model.set_subnet(model.space.decode(tokens))
        boxes, scores, anchors = model.head_outputs(data["image"])
        loss = model.ssd_loss(data, boxes, scores, anchors)
        outputs = (paddle.concat(boxes, axis=1), paddle.concat(scores, axis=1))
        if kind == "max" and teacher is None:
            teacher = tuple(o.detach() for o in outputs)
        elif distill_weight > 0 and teacher is not None:
            loss = loss + distill_weight * distill_loss(outputs, teacher)
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


def _sliced_norms(supernet: BlazeFaceSupernet) -> List[SlicedBatchNorm]:
    return [layer for layer in supernet.sublayers() if isinstance(layer, SlicedBatchNorm)]


@paddle.no_grad()
def calibrate_bn(supernet: BlazeFaceSupernet, loader: Any, batches: int) -> int:
    """Set the active subnet's BN statistics to the average batch mean and variance over `batches` batches.

    Only the active channels change (the first c of each BN); weights do not. Returns the batches used.
    """
    norms = _sliced_norms(supernet)
    for norm in norms:
        norm.calibration = []
    supernet.train()
    used = 0
    try:
        while used < batches:
            for data in loader:
                supernet.head_outputs(data["image"])
                used += 1
                if used >= batches:
                    break
            if used == 0:
                raise ConfigError("BN calibration got no batch: the train set is smaller than one batch")
        for norm in norms:
            if norm.calibration:
                means, variances = zip(*norm.calibration)
                norm.write_statistics(paddle.stack(means).mean(axis=0), paddle.stack(variances).mean(axis=0))
    finally:
        for norm in norms:
            norm.calibration = None
    return used
