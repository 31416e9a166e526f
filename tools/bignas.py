"""One-shot (BigNAS) search for BlazeFace: python tools/bignas.py -c configs/blazeface_bignas.yml --phase PHASE

Phases: train_supnet (train the weight-sharing supernet; -r SAVE_DIR resumes it), sample_flops (FLOPs and
latency distribution of random subnets), search (rank subnets under the Constraint by inherited AP and export
the best), evaluate_subnet and finetune_subnet (one subnet: -o subnet_tokens=2,1,3,8,2,1,2,1,0).
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
from ppnas.constraint import Constraint
from ppnas.device import select_device
from ppnas.observers import add_progress_options
from ppnas.oneshot.sample_flops import sample_flops
from ppnas.oneshot.search import run_supernet_search
from ppnas.oneshot.settings import load_bignas_config
from ppnas.oneshot.subnet import evaluate_subnet
from ppnas.oneshot.train import train_supernet

PHASES = ("train_supnet", "sample_flops", "search", "evaluate_subnet", "finetune_subnet")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="one-shot config (PaddleDetection-style YAML)")
    add_override_option(parser)
    parser.add_argument("-r", "--resume", default=None, help="save_dir of a run to resume (train_supnet, search)")
    parser.add_argument("--phase", required=True, type=phase_choice(PHASES), metavar="{" + ",".join(PHASES) + "}")
    add_progress_options(parser)
    return parser.parse_args(argv)


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
        run_supernet_search(cfg, constraint, args.config, args, resume_dir=args.resume)
    elif parallel.is_main():
        result = evaluate_subnet(cfg, constraint, finetune=args.phase == "finetune_subnet")
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    run_main(main)
