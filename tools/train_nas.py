"""BlazeFace NAS: python tools/train_nas.py -c configs/blazeface.yml [-o key=value ...] [-r SAVE_DIR]"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
from typing import List, Optional

import paddle

from ppnas.cli import run_main
from ppnas.config import add_override_option, load_config, merge, parse_overrides
from ppnas.constraint import Constraint
from ppnas.device import select_device
from ppnas.engine.options import search_options
from ppnas.observers import add_progress_options
from ppnas.sanas.search import run_sanas
from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="search config (PaddleDetection-style YAML)")
    add_override_option(parser)
    parser.add_argument("-r", "--resume_checkpoint", default=None, help="save_dir of a search to resume")
    add_progress_options(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cfg = with_search_defaults(merge(load_config(args.config), parse_overrides(args.opt)))
    select_device(bool(cfg["use_gpu"]))
    constraint = Constraint.from_config(cfg.get("Constraint"), cfg)
    task = BlazeFaceTask(cfg)
    options = search_options(cfg, args.config, task.kind, args, resume_dir=args.resume_checkpoint)
    paddle.disable_static()
    run_sanas(task, options, constraint)
    return 0


if __name__ == "__main__":
    run_main(main)
