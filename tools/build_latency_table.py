"""Build a latency table for a search space, on this machine or on the device users ship to.

    # all three steps here (the device is this machine):
    python tools/build_latency_table.py -c CONFIG --out FILE [--engine paddle_inference|onnxruntime|mnn]
    # on the workstation: the op models of the space in the engine's format, a manifest and the device timer
    python tools/build_latency_table.py -c CONFIG --engine onnxruntime --export-ops DIR
    # on the device (numpy + the engine only):  python DIR/time_ops.py DIR --threads 1 --out timings.jsonl
    # back on the workstation: the table, engine and settings in its header
    python tools/build_latency_table.py -c CONFIG --import timings.jsonl --out FILE

Options: [--samples N] [--seed S] [--input-size N] [--threads K] [--device cpu|gpu] [--mkldnn/--no-mkldnn]
[--opset N] [--warmup W] [--repeats R] [--passes P] [--sweeps S] [--quiet] [-o key=value ...]

Samples N architectures of the config's space (the init tokens first), collects the distinct keys of every
op they run and times each key alone with the engine. Rerunning with the same --out keeps what is there and
measures only the keys it lacks; a killed run goes on where it stopped. --import takes --samples, --seed and
--input-size from the timings file unless given.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import logging
import os
from typing import Any, Dict, List, Optional

import paddle
from tqdm import tqdm

from latency.builder import build_table, collect_ops
from latency.engine import EngineSettings
from latency.engines import engine_names
from latency.opmodels import export_ops, manifest_id
from latency.timings import import_timings, read_timings
from ppnas.candidates import CandidateSource, load_candidates
from ppnas.cli import run_main
from ppnas.config import add_override_option
from ppnas.device import select_device
from ppnas.errors import ConfigError

_logger = logging.getLogger("build_latency_table")
DEFAULT_SAMPLES, DEFAULT_SEED = 50, 0


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="search config (detection, PaddleSeg + SLIM, FBNet)")
    parser.add_argument("--out", help="table file to write or extend")
    parser.add_argument("--engine", choices=engine_names(), help="engine the ops are timed with (paddle_inference)")
    parser.add_argument("--export-ops", metavar="DIR", help="write the op models, manifest and time_ops.py to DIR")
    parser.add_argument("--import", dest="import_file", metavar="FILE", help="timings file written by time_ops.py")
    parser.add_argument("--samples", type=int, help=f"architectures sampled from the space ({DEFAULT_SAMPLES})")
    parser.add_argument("--seed", type=int, help=f"sampling seed ({DEFAULT_SEED})")
    parser.add_argument("--input-size", type=int, help="square input size (default: the config's)")
    parser.add_argument("--threads", type=int, default=1, help="engine threads (1: thread CPU time is the clock)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="paddle_inference only")
    parser.add_argument("--mkldnn", action=argparse.BooleanOptionalAction, default=False, help="oneDNN (paddle)")
    parser.add_argument("--opset", type=int, default=EngineSettings.opset, help="ONNX opset (onnxruntime, mnn)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per median")
    parser.add_argument("--passes", type=int, default=3, help="interleaved medians per key; the min is kept")
    parser.add_argument("--sweeps", type=int, default=2, help="times the whole list is timed; the min is kept")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_override_option(parser)
    args = parser.parse_args(argv)
    modes = [name for name, value in (("--export-ops", args.export_ops), ("--import", args.import_file)) if value]
    if len(modes) > 1:
        raise ConfigError("--export-ops and --import are separate steps: give one of them")
    if not args.export_ops and not args.out:
        raise ConfigError("say where the table goes with --out FILE (or export op models with --export-ops DIR)")
    if args.export_ops and args.out:
        raise ConfigError("--export-ops writes op models, not a table: drop --out (--import writes the table later)")
    return args


def table_info(source: CandidateSource, samples: int, seed: int) -> Dict[str, Any]:
    """What a table is for: recorded in the manifest, so timings are imported only for the same ops."""
    return {"space": source.space_name, "input_shape": source.input_shape, "samples": samples, "seed": seed}


def sampled_ops(args: argparse.Namespace, samples: int, seed: int, input_size: Optional[int]) -> tuple:
    source = load_candidates(args.config, args.opt)
    if input_size is not None:
        source.set_input_size(input_size)
    tokens = source.sample_tokens(samples, seed)
    models = (source.measurable(t) for t in tqdm(tokens, desc="tracing", unit="arch", disable=args.quiet))
    ops = collect_ops(models, source.input_shape)
    paddle.disable_static()
    return source, ops, table_info(source, len(tokens), seed)


def import_file(args: argparse.Namespace) -> Dict[str, Any]:
    header = read_timings(args.import_file).header
    engine = header["engine"]
    if args.engine and args.engine != engine:
        raise ConfigError(f"{args.import_file} holds {engine} timings, not {args.engine}: drop --engine")
    exported = header.get("table") or {}
    samples = args.samples if args.samples is not None else exported.get("samples", DEFAULT_SAMPLES)
    seed = args.seed if args.seed is not None else exported.get("seed", DEFAULT_SEED)
    size = args.input_size or (exported.get("input_shape") or [None] * 4)[-1]
    source, ops, info = sampled_ops(args, samples, seed, size)
    settings = EngineSettings.from_header(engine, header["settings"])
    table = import_timings(args.import_file, ops, args.out, manifest_id(ops, settings, info))
    return {"table": args.out, "imported": args.import_file, "keys": len(ops), **_table_summary(table)}


def _table_summary(table: Any) -> Dict[str, Any]:
    return {"engine": table.engine, "entries": len(table.entries), "kinds": table.kinds, "settings": table.settings}


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    select_device(args.device == "gpu")
    if args.import_file:
        print(json.dumps(import_file(args)))
        return 0
    settings = EngineSettings(
        engine=args.engine or "paddle_inference",
        device=args.device,
        threads=args.threads,
        mkldnn=args.mkldnn,
        warmup=args.warmup,
        repeats=args.repeats,
        passes=args.passes,
        opset=args.opset,
    )
    samples = DEFAULT_SAMPLES if args.samples is None else args.samples
    seed = DEFAULT_SEED if args.seed is None else args.seed
    source, ops, info = sampled_ops(args, samples, seed, args.input_size)
    summary = {
        "space": source.space_name,
        "input_shape": source.input_shape,
        "architectures": info["samples"],
        "keys": len(ops),
    }
    if args.export_ops:
        manifest = export_ops(ops, args.export_ops, settings, info)
        timer = os.path.join(args.export_ops, "time_ops.py")
        command = f"python {timer} {args.export_ops} --threads {args.threads} --out timings.jsonl"
        print(
            json.dumps(
                {
                    **summary,
                    "folder": args.export_ops,
                    "engine": settings.engine,
                    "manifest_id": manifest["id"],
                    "next": command,
                }
            )
        )
        return 0
    table = build_table(ops, args.out, settings, progress=not args.quiet, sweeps=args.sweeps, table_info=info)
    print(json.dumps({**summary, "table": args.out, **_table_summary(table)}))
    return 0


if __name__ == "__main__":
    run_main(main)
