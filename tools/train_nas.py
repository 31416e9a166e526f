"""BlazeFace NAS: python tools/train_nas.py -c configs/blazeface.yml [-o key=value ...] [-r SAVE_DIR]"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import os
import socket
from typing import List, Optional

import paddle

from ppnas.cli import run_main
from ppnas.config import add_override_option, load_config, merge, parse_overrides
from ppnas.constraint import Constraint
from ppnas.device import select_device
from ppnas.observers import add_progress_options
from ppnas.sanas.runner import run_task, search_options
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
    options = search_options(
        cfg,
        args.config,
        task.kind,
        args,
        is_server=bool(cfg["is_server"]),
        server_ip=cfg["server_ip"] or "",
        server_port=int(cfg["server_port"]),
        server_key=cfg["server_key"],
        client_retry_seconds=float(cfg["client_retry_seconds"]),
        resume_dir=args.resume_checkpoint,
        client_name="local" if cfg["is_server"] else f"{socket.gethostname()}-{os.getpid()}",
    )
    paddle.disable_static()
    run_task(task, options, constraint)
    return 0


if __name__ == "__main__":
    run_main(main)
