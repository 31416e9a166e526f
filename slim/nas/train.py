"""DeepLabV3+ backbone search (PaddleSeg's slim/nas command line):

    python -u ./slim/nas/train.py --log_steps 10 --cfg configs/cityscape.yaml [--use_gpu] --use_mpio \
        SLIM.NAS_PORT 23333 SLIM.NAS_ADDRESS "" SLIM.NAS_SEARCH_STEPS 2 SLIM.NAS_START_EVAL_EPOCH -1 \
        SLIM.NAS_IS_SERVER True SLIM.NAS_SPACE_NAME "MobileNetV2SpaceSeg"

Trailing KEY VALUE pairs override the YAML (see ppnas/tasks/segmentation_config.py). The search loop, history,
resume and outputs are the shared ones of the engine (ppnas/engine/), as for the detection search.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
from typing import List, Optional

import paddle

from ppnas.cli import run_main
from ppnas.device import select_device
from ppnas.engine.options import SearchOptions, client_name
from ppnas.errors import ConfigError
from ppnas.observers import add_progress_options
from ppnas.sanas.search import run_sanas
from ppnas.tasks.segmentation import DeepLabTask
from ppnas.tasks.segmentation_config import load_seg_config

MPIO_WORKERS = 2  # data-loader processes with --use_mpio; more gain nothing on a 2-core machine


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="DeepLabV3+ backbone search with PaddleSeg", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cfg", required=True, help="PaddleSeg config with a SLIM block")
    parser.add_argument("--log_steps", type=int, default=10, help="log the training loss every N iterations")
    parser.add_argument("--use_gpu", action="store_true", help="train on the GPU (falls back to CPU without one)")
    parser.add_argument("--use_mpio", action="store_true", help=f"load data with {MPIO_WORKERS} worker processes")
    parser.add_argument("--num_workers", type=int, default=None, help="data-loader workers (overrides --use_mpio)")
    parser.add_argument(
        "--do_eval",
        action="store_true",
        help="accepted for PaddleSeg command lines; the search always evaluates (the reward is the mIoU)",
    )
    parser.add_argument("--save_dir", default="output/deeplabv3p_nas", help="where the search writes its outputs")
    parser.add_argument("-r", "--resume", default=None, metavar="DIR", help="save_dir of a search to resume")
    add_progress_options(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE pairs overriding the config")
    return parser.parse_args(argv)


def pick_device(use_gpu: bool) -> str:
    """The GPU when asked for and present; otherwise say why and train on the CPU."""
    try:
        return select_device(use_gpu)
    except ConfigError:
        print(
            "--use_gpu: this Paddle build has no usable GPU (CPU-only paddlepaddle or no CUDA device); "
            "training on the CPU. Install paddlepaddle-gpu==2.6.2 on a CUDA machine to use the GPU.",
            flush=True,
        )
        return select_device(False)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    seg = load_seg_config(args.cfg, args.opts)
    constraint = seg.constraint()
    if args.log_steps < 1:
        raise ConfigError(f"--log_steps must be at least 1, got {args.log_steps}")
    num_workers = args.num_workers if args.num_workers is not None else (MPIO_WORKERS if args.use_mpio else 0)
    if num_workers < 0:
        raise ConfigError(f"--num_workers must be 0 or more, got {num_workers}")
    pick_device(args.use_gpu)
    paddle.disable_static()
    task = DeepLabTask(seg, num_workers=num_workers, log_steps=args.log_steps, quiet=args.quiet)
    slim = seg.slim
    options = SearchOptions(
        space_name=slim["NAS_SPACE_NAME"],
        search_steps=slim["NAS_SEARCH_STEPS"],
        save_dir=args.save_dir,
        config_path=args.cfg,
        kind=task.kind,
        is_server=slim["NAS_IS_SERVER"],
        server_ip=slim["NAS_ADDRESS"],
        server_port=slim["NAS_PORT"],
        server_key=slim["NAS_KEY"],
        client_retry_seconds=float(slim["NAS_CLIENT_RETRY_SECONDS"]),
        seed=slim["NAS_SEED"],
        resume_dir=args.resume,
        client_name=client_name(slim["NAS_IS_SERVER"]),
        quiet=args.quiet,
        use_vdl=args.use_vdl,
        vdl_log_dir=args.vdl_log_dir,
    )
    run_sanas(task, options, constraint)
    return 0


if __name__ == "__main__":
    run_main(main)
