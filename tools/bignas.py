"""One-shot (BigNAS) search for BlazeFace: python tools/bignas.py -c configs/blazeface_bignas.yml --phase PHASE

Phases: train_supnet (train the weight-sharing supernet; -r SAVE_DIR resumes it), sample_flops (FLOPs and
latency distribution of random subnets), search (rank subnets under the Constraint by inherited AP and export
the best), evaluate_subnet and finetune_subnet (one subnet: -o subnet_tokens=2,1,3,8,2,1,2,1,0).
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

import paddle

from ppnas import parallel
from ppnas.cli import run_main
from ppnas.config import add_override_option
from ppnas.constraint import Constraint
from ppnas.device import select_device
from ppnas.errors import ConfigError
from ppnas.history import History
from ppnas.observers import add_progress_options
from ppnas.oneshot.export import finetune_config
from ppnas.oneshot.search import (
    SupernetEvaluator,
    SupernetTask,
    check_subnet_tokens,
    sample_flops,
    sampling_controller,
)
from ppnas.oneshot.train import load_bignas_config, train_supernet
from ppnas.sanas.runner import run_task, search_options
from ppnas.sanas.search import seed_everything
from ppnas.tasks.detection import BlazeFaceTask

PHASES = ("train_supnet", "sample_flops", "search", "evaluate_subnet", "finetune_subnet")


class PhaseError(ConfigError):
    """An unknown --phase."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage; a bad phase is one line, exit 2
        if "--phase" in message:
            raise PhaseError(f"unknown --phase; choose one of {', '.join(PHASES)}")
        super().error(message)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="one-shot config (PaddleDetection-style YAML)")
    add_override_option(parser)
    parser.add_argument("-r", "--resume", default=None, help="save_dir of a run to resume (train_supnet, search)")
    parser.add_argument("--phase", required=True, choices=PHASES)
    add_progress_options(parser)
    return parser.parse_args(argv)


def _subnet_report(evaluator: SupernetEvaluator, constraint: Constraint, tokens: List[int]) -> Dict[str, Any]:
    task = evaluator.task
    measurement = constraint.measure(task.measurable(task.build(tokens)), task.input_shape)
    return {
        "tokens": tokens,
        "structure": task.decode(tokens),
        "flops": measurement.flops,
        "params": measurement.params,
        "latency_ms": measurement.latency_ms,
        "inside_window": constraint.admits(measurement),
    }


def evaluate_subnet(cfg: Dict[str, Any], constraint: Constraint, finetune: bool) -> Dict[str, Any]:
    """AP@0.5 of one subnet with inherited weights (and after finetuning), exported under save_dir."""
    evaluator = SupernetEvaluator.from_checkpoint(cfg, "finetune_subnet" if finetune else "evaluate_subnet")
    tokens = check_subnet_tokens(cfg["subnet_tokens"], evaluator.task.space)
    task = evaluator.task
    model = evaluator.inherit(task.build(tokens), task.decode(tokens))
    result = {**_subnet_report(evaluator, constraint, tokens), "inherited_ap": task.evaluate(model)}
    name = "subnet_" + "_".join(map(str, tokens))
    if finetune:
        tuning = BlazeFaceTask(finetune_config(cfg))
        seed_everything(int(cfg["seed"]))
        result["finetuned_ap"] = tuning.train_and_evaluate(model)
        result["finetune_iters"] = tuning.max_iters
        name += "_finetuned"
    result["exported"] = task.export(tokens, model, os.path.join(cfg["save_dir"], name))
    return result


def search(cfg: Dict[str, Any], constraint: Constraint, args: argparse.Namespace) -> None:
    task = SupernetTask(SupernetEvaluator.from_checkpoint(cfg, "search"))
    options = search_options(
        cfg, args.config, task.kind, args, search_steps=int(cfg["subnet_count"]), resume_dir=args.resume
    )
    controller = sampling_controller(cfg, task.space.range_table(), History.in_dir(cfg["save_dir"]))
    run_task(task, options, constraint, controller=controller)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    overrides = list(args.opt) + ([f"save_dir={args.resume}"] if args.resume else [])
    cfg = load_bignas_config(args.config, overrides)
    select_device(bool(cfg["use_gpu"]))
    constraint = Constraint.from_config(cfg.get("Constraint"), cfg)
    paddle.disable_static()
    if args.phase == "train_supnet":
        path = train_supernet(
            cfg, resume=bool(args.resume), quiet=args.quiet, use_vdl=args.use_vdl, vdl_log_dir=args.vdl_log_dir
        )
        print(f"supernet checkpoint: {path}")
    elif args.phase == "sample_flops":
        summary = sample_flops(cfg, constraint, quiet=args.quiet)
        print(json.dumps(summary, indent=2))
    elif args.phase == "search":
        search(cfg, constraint, args)
    elif parallel.is_main():
        result = evaluate_subnet(cfg, constraint, finetune=args.phase == "finetune_subnet")
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    run_main(main)
