"""What does checking the Constraint cost per BlazeFace candidate at 640 input?

python bench/constraint_cost.py [-c configs/demo/blazeface_demo.yml] [--table configs/latency_855.txt]
                                [--candidates 10] [--repeats 3]

Ours: `Constraint.measure` on the candidate's dygraph model = ONE shape-only static trace, giving both the
table latency (latency_855.txt keys) and the FLOPs (paddle.flops's rules applied to the traced layer calls,
latency/flops.py) + params; the latency and the FLOPs parts are also timed alone, and paddle.flops itself
(a real forward: what measure used before) is timed and checked equal. The model is built beforehand, as
the search builds it anyway to train it; the time with the build is reported too.
Baseline, measured in the same run on the same candidates: what the original example did per candidate,
as close as paddle 2.6 allows: build the candidate's full static training program (ppdet 2.5 has no
static-graph BlazeFace and its SSDLoss cannot be built under `program_guard` (`x[i] = v` is refused in
static mode), so the model + SSDLoss forward goes through `paddle.jit.to_static`, then RMSProp's
`minimize` appends backward and optimizer ops), then price that program with the same table and count
its FLOPs with PaddleSlim's static `flops(program)`.
Prints one JSON object and writes bench/results/constraint_cost.json.

One-shot pricing (`--subnets N`, alone: the numbers above are kept from their run and the new keys merged in):
N random subnets of the BlazeFace supernet (`--oneshot-config`, default configs/blazeface_bignas.yml at 640)
priced on table latency, FLOPs and params by the cached pricer (ppnas/oneshot/pricing.py, from a cold cache, then
again warm), timed as thread CPU time, and the first `--check` of them priced again by the full trace
(`Constraint.measure` of the whole plain model) and compared: FLOPs and params exactly, latency within 1e-9 relative.

python bench/constraint_cost.py --subnets 10000 --check 200
"""

import ppnas  # noqa: F401  # isort: skip  # before paddle and paddleslim, see ppnas/__init__.py
import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import paddle
from common import machine
from paddleslim.analysis import flops as static_flops

from latency.engine import cpu_model
from latency.estimate import estimate_latency, estimate_ops
from latency.flops import count_flops
from latency.opkeys import program_ops
from ppnas.candidates import load_candidates
from ppnas.cli import run_main
from ppnas.config import load_config
from ppnas.constraint import Constraint, Measurement
from ppnas.oneshot.pricing import subnet_pricer
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.supernet import build_supernet
from ppnas.tasks.detection import build_blazeface, with_search_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
TABLE = os.path.join(ROOT, "configs", "latency_855.txt")  # the shipped Snapdragon 855 table
SIZE = 640
MAX_BOXES = 8


class TrainLoss(paddle.nn.Layer):
    """The training forward of a ppdet BlazeFace: image and ground truth in, SSD loss out."""

    def __init__(self, model: paddle.nn.Layer) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: paddle.Tensor, gt_bbox: paddle.Tensor, gt_class: paddle.Tensor) -> paddle.Tensor:
        return self.model({"image": image, "gt_bbox": gt_bbox, "gt_class": gt_class})["loss"]


def static_training_program(structure: Mapping[str, Any], cfg: Mapping[str, Any]) -> paddle.static.Program:
    model = build_blazeface(structure, cfg)
    model.train()
    spec = [
        paddle.static.InputSpec([1, 3, SIZE, SIZE], "float32", "image"),
        paddle.static.InputSpec([1, MAX_BOXES, 4], "float32", "gt_bbox"),
        paddle.static.InputSpec([1, MAX_BOXES], "int32", "gt_class"),
    ]
    concrete = paddle.jit.to_static(TrainLoss(model).forward, input_spec=spec, full_graph=True).concrete_program
    paddle.enable_static()
    try:
        with paddle.static.program_guard(concrete.main_program, concrete.startup_program):
            with paddle.utils.unique_name.guard(concrete.name_generator):
                paddle.optimizer.RMSProp(learning_rate=0.001).minimize(concrete.outputs[0])
    finally:
        paddle.disable_static()
    return concrete.main_program


def timed(fn: Callable[..., Any], *args: Any) -> Tuple[float, Any]:
    """(milliseconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - start) * 1e3, result


def median_ms(repeats: int, fn: Callable[..., Any], *args: Any) -> float:
    return statistics.median(timed(fn, *args)[0] for _ in range(repeats))


def paddle_flops(layer: paddle.nn.Layer, shape: Any) -> int:
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per layer type
        return paddle.flops(layer, list(shape))


def original_example(structure: Mapping[str, Any], cfg: Mapping[str, Any], table: Any) -> Tuple[float, float]:
    """(table latency, FLOPs) the way the original example got them: from the static training program."""
    program = static_training_program(structure, cfg)
    return estimate_ops(program_ops(program), table).total, static_flops(program)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=os.path.join(ROOT, "configs", "demo", "blazeface_demo.yml"))
    parser.add_argument("--table", default=TABLE, help="latency table with the candidates' keys (default: %(default)s)")
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timings of ours per candidate (median kept)")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--subnets", type=int, default=0, help="one-shot pricing of this many subnets, alone")
    parser.add_argument("--check", type=int, default=200, help="of them, compared with the full trace")
    parser.add_argument("--oneshot-config", default=os.path.join(ROOT, "configs", "blazeface_bignas.yml"))
    parser.add_argument("--missing-keys", default="error", help="the table's missing-key policy (error | nearest)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    constraint = Constraint(
        "latency", min_constraint=18000, max_constraint=57489, table_file=args.table, missing_keys=args.missing_keys
    )
    path = os.path.join(RESULTS, "constraint_cost.json")
    if args.subnets:
        output = {}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                output = json.load(f)
        output.update(price_subnets(args, constraint))
    else:
        output = measure(args, constraint)
    os.makedirs(RESULTS, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(output, f, indent=1)
    json.dump(output, sys.stdout)
    print()
    return 0


def measure(args: argparse.Namespace, constraint: Constraint) -> Dict[str, Any]:
    paddle.set_device("cpu")
    cfg = with_search_defaults(load_config(args.config))
    source = load_candidates(args.config)
    source.set_input_size(SIZE)
    table = constraint.table
    shape = source.input_shape
    source.measurable(source.init_tokens)  # first-use costs (imports, kernels) are not per candidate
    constraint.measure(source.measurable(source.init_tokens), shape)

    ours, ours_latency, ours_flops, ours_with_build, baseline, forward_flops = [], [], [], [], [], []
    agree = flops_agree = True
    for tokens in source.sample_tokens(args.candidates, args.seed):
        build_ms, layer = timed(source.measurable, tokens)
        ours.append(median_ms(args.repeats, constraint.measure, layer, shape))
        ours_with_build.append(ours[-1] + build_ms)
        ours_latency.append(median_ms(args.repeats, estimate_latency, layer, shape, table))
        ours_flops.append(median_ms(args.repeats, count_flops, layer, shape))
        forward_ms, flops = timed(paddle_flops, layer, shape)
        forward_flops.append(forward_ms)
        flops_agree = flops_agree and flops == constraint.measure(layer, shape).flops
        baseline_ms, (latency, _) = timed(original_example, source.decode(tokens), cfg, table)
        baseline.append(baseline_ms)
        agree = agree and abs(latency - constraint.measure(layer, shape).latency) < 1e-6
    ours_ms = statistics.median(ours)
    baseline_ms = statistics.median(baseline)
    return {
        "bench": "constraint_cost",
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
        "paddle": paddle.__version__,
        "input_shape": shape,
        "table": os.path.basename(args.table),
        "candidates": len(ours),
        "median_ms": ours_ms,
        "median_ms_latency_only": statistics.median(ours_latency),
        "median_ms_flops_only": statistics.median(ours_flops),
        "median_ms_with_model_build": statistics.median(ours_with_build),
        "median_ms_paddle_flops": statistics.median(forward_flops),
        "baseline_median_ms": baseline_ms,
        "speedup": baseline_ms / ours_ms,
        "speedup_with_model_build": baseline_ms / statistics.median(ours_with_build),
        "same_latency_as_baseline": agree,
        "same_flops_as_paddle_flops": flops_agree,
        "ours_ms": ours,
        "baseline_ms": baseline,
    }


def same(cached: Measurement, full: Measurement) -> bool:
    return (
        cached.flops == full.flops
        and cached.params == full.params
        and abs(cached.latency - full.latency) <= 1e-9 * abs(full.latency)
    )


def price_subnets(args: argparse.Namespace, constraint: Constraint) -> Dict[str, Any]:
    """The one-shot pricing section (see the module docstring)."""
    paddle.set_device("cpu")
    cfg = load_oneshot_config(args.oneshot_config)
    supernet = build_supernet(cfg)
    pricer = subnet_pricer(supernet, constraint, cfg)
    space = supernet.space
    rng = random.Random(args.seed)
    subnets = [space.decode([rng.randrange(n) for n in space.range_table()]) for _ in range(args.subnets)]
    pricer.measure_full(subnets[0])  # first-use costs (imports, kernels), not the cache's
    start = time.thread_time()
    cached = [pricer.measure(subnet) for subnet in subnets]
    cached_s = time.thread_time() - start
    start = time.thread_time()
    for subnet in subnets:  # again, every part cached: the rate of a long search or sample_flops after warm-up
        pricer.measure(subnet)
    warm_s = time.thread_time() - start
    checked = subnets[: args.check]
    start = time.thread_time()
    full = [pricer.measure_full(subnet) for subnet in checked]
    full_s = time.thread_time() - start
    return {
        "oneshot_config": os.path.relpath(args.oneshot_config, ROOT),
        "oneshot_input_sizes": sorted({tuple(s.image_size) for s in subnets}),
        "oneshot_missing_keys": args.missing_keys,
        "subnets_priced": len(subnets),
        "seconds_cached": cached_s,
        "subnets_per_second_cached": len(subnets) / cached_s,
        "subnets_per_second_cached_warm": len(subnets) / warm_s,
        "distinct_parts_traced": len(pricer.parts),
        "cached_checked": len(checked),
        "cached_equals_trace": all(same(c, f) for c, f in zip(cached, full)),
        "subnets_per_second_full_trace": len(checked) / full_s,
        "oneshot_clock": "thread CPU time (time.thread_time)",
        "oneshot_machine": machine(),
    }


if __name__ == "__main__":
    run_main(main)
