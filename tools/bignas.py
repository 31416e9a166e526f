"""One-shot (BigNAS) search: python tools/bignas.py -c CONFIG --phase PHASE

CONFIG is a detection config (configs/blazeface_bignas.yml: the one-shot keys at its top level, -o key=value)
or a segmentation config (configs/demo/cityscape_bignas_demo.yaml: a PaddleSeg YAML with SLIM.BIGNAS_* keys,
-o SLIM.BIGNAS_SUBNET_COUNT=40). Phases: train_supnet (train the weight-sharing supernet; -r SAVE_DIR resumes
it), sample_flops (FLOPs and latency distribution of random subnets), search (rank subnets under the Constraint by
inherited accuracy and export the best; with search_mode nsga2 or tpe, or `tables`: one Pareto front per latency
table and the subnet to ship at each of `budgets_ms`, see docs/oneshot.md), sample_accuracy (random subnets in
flops_range, their Pareto front and the top-k at the baseline's FLOPs), evaluate_subnet and finetune_subnet (one subnet:
-o subnet_tokens=2,1,3,8,2,1,2,1,0 or United-Perception's subnet_settings).
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import sys
from typing import List, Optional

import paddle

from ppnas import parallel
from ppnas.cli import phase_choice, run_main
from ppnas.config import add_override_option
from ppnas.device import select_device
from ppnas.observers import add_progress_options
from ppnas.oneshot.fronts import is_front_search, run_front_search
from ppnas.oneshot.sample_accuracy import sample_accuracy
from ppnas.oneshot.sample_flops import sample_flops
from ppnas.oneshot.search import run_supernet_search
from ppnas.oneshot.settings import load_oneshot_config, oneshot_constraint
from ppnas.oneshot.subnet import evaluate_subnet
from ppnas.oneshot.train import train_supernet

PHASES = ("train_supnet", "sample_flops", "search", "sample_accuracy", "evaluate_subnet", "finetune_subnet")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="one-shot config (detection or segmentation YAML)")
    add_override_option(parser)
    parser.add_argument(
        "-r", "--resume", default=None, help="save_dir of a run to resume (train_supnet, search, sample_accuracy)"
    )
    parser.add_argument("--phase", required=True, type=phase_choice(PHASES), metavar="{" + ",".join(PHASES) + "}")
    add_progress_options(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cfg = load_oneshot_config(args.config, args.opt, save_dir=args.resume)
    select_device(bool(cfg["use_gpu"]))
    constraint = oneshot_constraint(cfg)
    paddle.disable_static()
    if args.phase == "train_supnet":
        path = train_supernet(
            cfg, resume=bool(args.resume), quiet=args.quiet, use_vdl=args.use_vdl, vdl_log_dir=args.vdl_log_dir
        )
        print(f"supernet checkpoint: {path}")
    elif args.phase == "sample_flops":
        summary = sample_flops(cfg, constraint, quiet=args.quiet)
        print(json.dumps(summary, indent=2))
    elif args.phase == "search" and is_front_search(cfg):
        run_front_search(cfg, constraint, args.config, args, resume_dir=args.resume)
    elif args.phase == "search":
        run_supernet_search(cfg, constraint, args.config, args, resume_dir=args.resume)
    elif args.phase == "sample_accuracy":
        summary = sample_accuracy(cfg, constraint, args.config, args, resume=bool(args.resume))
        print(json.dumps(summary, indent=2))
    elif parallel.is_main():
        result = evaluate_subnet(cfg, constraint, finetune=args.phase == "finetune_subnet")
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    run_main(main)
