"""One subnet of the trained supernet (`--phase evaluate_subnet` / `finetune_subnet`): its measurement, its
inherited AP, optionally its AP after finetuning, and its export (fragment + weights) under save_dir."""

import copy
import os
from typing import Any, Dict, List, Mapping

from ppnas.constraint import Constraint
from ppnas.engine.seeding import seed_everything
from ppnas.oneshot.evaluate import SupernetEvaluator
from ppnas.oneshot.settings import check_subnet_tokens
from ppnas.tasks.detection import BlazeFaceTask


def finetune_config(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The search config for training one subnet: finetune_iters iterations at finetune_lr_scale x the LR."""
    out = copy.deepcopy(dict(cfg))
    out["max_iters"] = int(cfg["finetune_iters"])
    lr = out.setdefault("LearningRate", {})
    lr["base_lr"] = float(lr.get("base_lr", 0.01)) * float(cfg["finetune_lr_scale"])
    return out


def measured_subnet(task: BlazeFaceTask, constraint: Constraint, tokens: List[int]) -> Dict[str, Any]:
    """What the Constraint sees of the subnet, and whether its window admits it."""
    measurement = constraint.measure(task.measurable(task.build(tokens)), task.input_shape)
    return {
        "tokens": tokens,
        "structure": task.decode(tokens),
        "flops": measurement.flops,
        "params": measurement.params,
        "latency_ms": measurement.latency_ms,
        "inside_window": constraint.admits(measurement),
    }


def evaluate_subnet(cfg: Mapping[str, Any], constraint: Constraint, finetune: bool) -> Dict[str, Any]:
    """AP@0.5 of `subnet_tokens` with inherited weights (and after finetuning), exported under save_dir."""
    evaluator = SupernetEvaluator.from_checkpoint(cfg, "finetune_subnet" if finetune else "evaluate_subnet")
    task = evaluator.task
    tokens = check_subnet_tokens(cfg["subnet_tokens"], task.space)
    model = evaluator.inherit(task.build(tokens), task.decode(tokens))
    result = {**measured_subnet(task, constraint, tokens), "inherited_ap": task.evaluate(model)}
    name = "subnet_" + "_".join(map(str, tokens))
    if finetune:
        tuning = BlazeFaceTask(finetune_config(cfg))
        seed_everything(int(cfg["seed"]))
        result["finetuned_ap"] = tuning.train_and_evaluate(model)
        result["finetune_iters"] = tuning.max_iters
        name += "_finetuned"
    result["exported"] = task.export(tokens, model, os.path.join(cfg["save_dir"], name))
    return result
