"""Build a latency table on this machine for a search space:
python tools/build_latency_table.py -c CONFIG --out FILE [--samples N] [--threads K] [--device cpu|gpu]
[--mkldnn/--no-mkldnn] [--input-size N] [--repeats R] [--passes P] [--sweeps S] [--seed S] [-o key=value ...]

Samples N architectures of the config's space (the init tokens first), collects the distinct keys of every
op they run, times each key alone with Paddle Inference, and appends it to FILE as soon as it is measured:
rerunning with the same FILE keeps what is there and measures only the keys it lacks.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import logging
from typing import List, Optional

import paddle
from tqdm import tqdm

from latency.builder import build_table, collect_ops
from latency.engine import EngineSettings
from ppnas.candidates import load_candidates
from ppnas.cli import run_main
from ppnas.config import add_override_option
from ppnas.device import select_device

_logger = logging.getLogger("build_latency_table")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="search config (detection YAML or PaddleSeg + SLIM)")
    parser.add_argument("--out", required=True, help="table file to write or extend")
    parser.add_argument("--samples", type=int, default=50, help="architectures sampled from the space")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--threads", type=int, default=1, help="CPU math threads (1: thread CPU time is the clock)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--mkldnn", action=argparse.BooleanOptionalAction, default=False, help="oneDNN on CPU")
    parser.add_argument("--input-size", type=int, help="square input size (default: the config's)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per median")
    parser.add_argument("--passes", type=int, default=3, help="interleaved medians per key; the min is kept")
    parser.add_argument("--sweeps", type=int, default=2, help="times the whole list is timed; the min is kept")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_override_option(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    select_device(args.device == "gpu")
    settings = EngineSettings(
        device=args.device,
        threads=args.threads,
        mkldnn=args.mkldnn,
        warmup=args.warmup,
        repeats=args.repeats,
        passes=args.passes,
    )
    source = load_candidates(args.config, args.opt)
    if args.input_size is not None:
        source.set_input_size(args.input_size)
    tokens = source.sample_tokens(args.samples, args.seed)
    models = (source.measurable(t) for t in tqdm(tokens, desc="tracing", unit="arch", disable=args.quiet))
    ops = collect_ops(models, source.input_shape)
    paddle.disable_static()
    table = build_table(ops, args.out, settings, progress=not args.quiet, sweeps=args.sweeps)
    summary = {
        "table": args.out,
        "space": source.space_name,
        "input_shape": source.input_shape,
        "architectures": len(tokens),
        "keys": len(ops),
        "entries": len(table.entries),
        "kinds": table.kinds,
        "settings": table.settings,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    run_main(main)
