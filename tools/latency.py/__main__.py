"""Price one candidate: python tools/latency.py -c CONFIG (--tokens T0,T1,... | --structure FILE.yml)
[--table FILE] [--input-size N] [-o key=value ...]

Prints one JSON object: latency_ms (from the table; null without one), flops (as paddle.flops counts them), params,
num_ops, missing_keys, substitutions, unpriced_ops. --structure takes a PaddleDetection config fragment
with a BlazeNet block (e.g. the blazeface_nas.yml a detection search writes).

Why tools/latency.py is a folder holding this __main__.py: `python tools/latency.py` runs it as a file would
run, and Python's import system finds modules in files only, so the other scripts in tools/ (whose first
sys.path entry is tools/) import the `latency` package, not this entry point, with no path manipulation.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import os
from typing import Any, Dict, List, Optional

import paddle

from latency.estimate import MISSING_POLICIES, estimate_ops
from latency.flops import trace_with_flops
from latency.table import LatencyTable
from ppnas.candidates import load_candidates
from ppnas.cli import run_main
from ppnas.config import add_override_option
from ppnas.constraint import count_params
from ppnas.errors import ConfigError, SearchSpaceError


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="search config (detection YAML or PaddleSeg + SLIM)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--tokens", help="comma-separated tokens of the config's search space")
    which.add_argument("--structure", help="PaddleDetection config fragment with a BlazeNet block")
    parser.add_argument("--table", help="latency table (default: the config's Constraint table_file)")
    parser.add_argument("--input-size", type=int, help="square input size (default: the config's)")
    parser.add_argument("--missing", choices=MISSING_POLICIES, help="missing-key policy (default: the config's)")
    add_override_option(parser)
    return parser.parse_args(argv)


def parse_tokens(text: str) -> List[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise SearchSpaceError(f"--tokens must be comma-separated integers, got '{text}'") from None


def price(args: argparse.Namespace) -> Dict[str, Any]:
    source = load_candidates(args.config, args.opt)
    if args.input_size is not None:
        source.set_input_size(args.input_size)
    if args.structure is not None:
        if source.measurable_structure is None:
            raise ConfigError("--structure takes a BlazeNet fragment and works with detection configs only")
        from ppnas.tasks.detection import structure_from_fragment

        structure = structure_from_fragment(args.structure)
        layer = source.measurable_structure(structure)
        tokens = None
    else:
        tokens = parse_tokens(args.tokens)
        structure = source.decode(tokens)
        layer = source.measurable(tokens)
    traced, flops = trace_with_flops(layer, source.input_shape)
    result: Dict[str, Any] = {
        "space": source.space_name,
        "tokens": tokens,
        "structure": structure,
        "input_shape": source.input_shape,
        "flops": flops,
        "params": count_params(layer),
        "table": None,
        "latency_ms": None,
        "num_ops": None,
        "missing_keys": [],
    }
    table_file = args.table or source.table_file
    if table_file:
        table = LatencyTable.load(table_file)
        estimate = estimate_ops(traced.ops(), table, missing=args.missing or source.missing_keys)
        result.update(estimate.as_dict())
        result["table"] = os.path.abspath(table_file)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    paddle.set_device("cpu")
    print(json.dumps(price(args), default=str))
    return 0


if __name__ == "__main__":
    run_main(main)
