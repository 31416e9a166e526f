"""How well does a table built on this machine predict the end-to-end latency of real candidates, per engine?

python bench/latency_accuracy.py [--engines paddle_inference onnxruntime mnn] [--spaces ...] [--candidates 30]
    [--fit 8] [--rounds 3] [--work output/bench_latency_accuracy]

For each engine (paddle_inference, onnxruntime, mnn) and space (BlazeFace 3x3 and 5x5 at 160 px, the
MobileNetV2 DeepLabV3+ backbone space at 128 px, the FBNet PFLD space with its mixed block kinds at 112 px):
1. samples fit + candidates architectures (seeded) and exports each whole model (paddle.jit.save, then the
   engine's format);
2. measures every model end to end with the engine (1 thread, thread CPU time, min over interleaved passes
   of medians, fresh sessions) in `--rounds` rounds, one before the table is built and the others after it,
   minutes apart: their spread is the noise of the reference itself; the reference is their minimum;
3. builds a table for their ops with tools/build_latency_table.py's code (same engine, same thread count),
   committed as bench/results/latency_tables/<engine>_<space>.txt with its settings in the header;
4. fits the calibration `a * table_sum + b` (Theil-Sen) on `fit` models spread over the estimate range and
   judges it on the others; the baseline, in the same run, is a line `d * FLOPs + e` fitted on the same
   models. The fit is repeated on other random fit sets (`fit_seeds`) to show how much the choice matters.
Every piece is cached (exported models in --work, tables and measurements in bench/results/): a killed run
resumes. Writes bench/results/latency_accuracy.json; keys results[engine][space].within_10pct, ...
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import os
import random
import resource
import statistics
import time
from typing import Any, Dict, List, Sequence

import numpy as np
import paddle
from common import RESULTS, machine, save_result

from latency.builder import build_table, measure_models_us
from latency.engine import EngineSettings, export_model
from latency.engines import engine_names
from latency.estimate import estimate_ops
from latency.flops import count_flops
from latency.opkeys import trace_ops
from ppnas.candidates import load_candidates
from ppnas.storage import atomic_write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs", "demo")
# space -> (config, overrides, input size)
SPACES = {
    "blazeface_3x3": ("blazeface_demo.yml", ["kernel_choices=[3]"], 160),
    "blazeface_5x5": ("blazeface_demo.yml", ["kernel_choices=[3,5]"], 160),
    "mobilenetv2_seg": ("cityscape_demo.yaml", [], 128),
    "fbnet_pfld": ("pfld_fbnet_demo.yml", [], 112),
}
TABLES = os.path.join(RESULTS, "latency_tables")
MEASURED = os.path.join(RESULTS, "latency_accuracy_measured")
FIT_SEEDS = 5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=engine_names(), choices=engine_names())
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--candidates", type=int, default=30, help="held-out candidates judged")
    parser.add_argument("--fit", type=int, default=8, help="fully measured models the calibration is fitted on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--passes", type=int, default=5, help="interleaved end-to-end passes (min of medians)")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end rounds, minutes apart (min kept)")
    parser.add_argument("--op-passes", type=int, default=3, help="interleaved medians per table key (min kept)")
    parser.add_argument("--sweeps", type=int, default=3, help="sweeps over all table keys (min kept)")
    parser.add_argument("--work", default=os.path.join(ROOT, "output", "bench_latency_accuracy"))
    return parser.parse_args()


def error_stats(estimates: Sequence[float], measured: Sequence[float]) -> Dict[str, float]:
    errors = [100.0 * (e - m) / m for e, m in zip(estimates, measured)]
    return {
        "within_10pct": sum(abs(e) <= 10.0 for e in errors) / len(errors),
        "median_abs_error_pct": statistics.median(abs(e) for e in errors),
        "mean_error_pct": statistics.fmean(errors),
        "max_abs_error_pct": max(abs(e) for e in errors),
        "rank_correlation": spearman(estimates, measured),
    }


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def fit_line(x: Sequence[float], y: Sequence[float]) -> List[float]:
    """Theil-Sen line: median of pairwise slopes, then median offset; one odd model cannot tilt it."""
    pairs = [(y[j] - y[i]) / (x[j] - x[i]) for i in range(len(x)) for j in range(i + 1, len(x)) if x[j] != x[i]]
    slope = statistics.median(pairs)
    return [float(slope), float(statistics.median(b - slope * a for a, b in zip(x, y)))]


def spread(values: Sequence[float], count: int) -> List[int]:
    """Indexes of `count` values spread evenly over their range (the calibration sees small and large)."""
    order = list(np.argsort(values))
    return sorted({int(order[round(i * (len(order) - 1) / max(count - 1, 1))]) for i in range(count)})


def judge(
    raw: Sequence[float], flops: Sequence[float], measured: Sequence[float], fit_idx: List[int]
) -> Dict[str, Any]:
    """Calibrated table and FLOPs line, both fitted on `fit_idx`, judged on the other models."""
    held = [i for i in range(len(raw)) if i not in fit_idx]
    slope, offset = fit_line([raw[i] for i in fit_idx], [measured[i] for i in fit_idx])
    d, e = fit_line([flops[i] for i in fit_idx], [measured[i] for i in fit_idx])
    truth = [measured[i] for i in held]
    return {
        "calibration": {"a": slope, "b_us": offset},
        "raw": error_stats([raw[i] for i in held], truth),
        "calibrated": error_stats([slope * raw[i] + offset for i in held], truth),
        "flops_line": error_stats([d * flops[i] + e for i in held], truth),
        "held": held,
    }


def cpu_now() -> float:
    """CPU seconds of this process and of its finished children (the converters run in child processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def load_cache(name: str) -> Dict[str, Any]:
    """What is measured of one engine and space: end-to-end rounds and the CPU each piece cost."""
    path = os.path.join(MEASURED, f"{name}.json")
    cache: Dict[str, Any] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            cache = json.load(f)
    return {"rounds": [], "round_cpu_seconds": [], "table_build_cpu_seconds": None, **cache}


def save_cache(name: str, cache: Dict[str, Any]) -> None:
    atomic_write_json(os.path.join(MEASURED, f"{name}.json"), cache)


def measure_rounds(
    name: str, count: int, dirs: List[str], shape: List[int], settings: EngineSettings
) -> List[List[float]]:
    """`count` rounds of end-to-end measurements of every model, cached per engine and space (resumable)."""
    cache = load_cache(name)
    while len(cache["rounds"]) < count:
        started = cpu_now()
        cache["rounds"].append(measure_models_us(dirs, shape, settings))
        cache["round_cpu_seconds"].append(round(cpu_now() - started, 1))
        cache.update(settings=settings.header(), models=[os.path.relpath(d, ROOT) for d in dirs])
        save_cache(name, cache)
    return cache["rounds"]


def run_space(engine: str, space: str, args: argparse.Namespace) -> Dict[str, Any]:
    config, overrides, size = SPACES[space]
    source = load_candidates(os.path.join(CONFIGS, config), overrides)
    source.set_input_size(size)
    tokens = source.sample_tokens(args.fit + args.candidates, args.seed)
    models = [source.measurable(t) for t in tokens]
    shape = source.input_shape
    # traced before the export: paddle.jit.save turns a layer's forward into a static function for good
    traces = [trace_ops(m, shape) for m in models]
    flops = [count_flops(m, shape) for m in models]
    ops = {r.key: r.spec for ops_ in traces for r in ops_ if r.key is not None}
    folder = os.path.join(args.work, space)
    dirs = []
    for i, model in enumerate(models):  # exported once per space, converted once per engine
        model_dir = os.path.join(folder, str(i))
        if not os.path.exists(os.path.join(model_dir, "model.pdmodel")):
            export_model(model, shape, model_dir)
        dirs.append(model_dir)
    name = f"{engine}_{space}"
    e2e = EngineSettings(engine=engine, threads=1, repeats=15, passes=args.passes)
    measure_rounds(name, 1, dirs, shape, e2e)
    table_path = os.path.join(TABLES, f"{name}.txt")
    settings = EngineSettings(engine=engine, threads=1, repeats=15, passes=args.op_passes)
    build_start = cpu_now()
    fresh = not os.path.exists(table_path)  # a resumed build's CPU is not known whole
    table = build_table(ops, table_path, settings, sweeps=args.sweeps, table_info={"space": space})
    cache = load_cache(name)
    if cache["table_build_cpu_seconds"] is None and fresh:
        cache["table_build_cpu_seconds"] = round(cpu_now() - build_start, 1)
        save_cache(name, cache)
    rounds = measure_rounds(name, args.rounds, dirs, shape, e2e)  # the later rounds minutes after the first
    measured = [min(values) for values in zip(*rounds)]
    noise = [100.0 * (max(values) - min(values)) / min(values) for values in zip(*rounds)]
    for name_ in ("calib_a", "calib_b", "calib_models"):  # judge the raw sum, not a stored calibration
        table.settings.pop(name_, None)
    raw = [estimate_ops(t, table).total for t in traces]
    main_fit = judge(raw, flops, measured, spread(raw, args.fit))
    slope, offset = main_fit["calibration"]["a"], main_fit["calibration"]["b_us"]
    table.settings.update({"calib_a": f"{slope:.6g}", "calib_b": f"{offset:.6g}", "calib_models": str(args.fit)})
    table.save()
    rng = random.Random(args.seed)
    others = [judge(raw, flops, measured, sorted(rng.sample(range(len(raw)), args.fit))) for _ in range(FIT_SEEDS)]
    cal, base = main_fit["calibrated"], main_fit["flops_line"]
    return {
        "within_10pct": cal["within_10pct"],
        "median_abs_error_pct": cal["median_abs_error_pct"],
        "max_abs_error_pct": cal["max_abs_error_pct"],
        "rank_correlation": cal["rank_correlation"],
        "flops_within_10pct": base["within_10pct"],
        "flops_median_abs_error_pct": base["median_abs_error_pct"],
        "flops_max_abs_error_pct": base["max_abs_error_pct"],
        "flops_rank_correlation": base["rank_correlation"],
        "raw": main_fit["raw"],
        "calibration": main_fit["calibration"],
        "fit_seeds": {
            "within_10pct": [o["calibrated"]["within_10pct"] for o in others],
            "median_abs_error_pct": [o["calibrated"]["median_abs_error_pct"] for o in others],
            "flops_median_abs_error_pct": [o["flops_line"]["median_abs_error_pct"] for o in others],
        },
        "reference_noise_pct": {"median": statistics.median(noise), "max": max(noise)},
        "input_shape": shape,
        "table": os.path.relpath(table_path, ROOT),
        "table_keys": len(table.entries),
        # CPU of this engine and space, children (converters) included; None: spent in an earlier, killed run
        "table_build_cpu_seconds": load_cache(name)["table_build_cpu_seconds"],
        "end_to_end_cpu_seconds": load_cache(name)["round_cpu_seconds"] or None,
        "fit_models": args.fit,
        "candidates": len(main_fit["held"]),
        "measured_ms": {
            "min": min(measured) / 1e3,
            "median": statistics.median(measured) / 1e3,
            "max": max(measured) / 1e3,
        },
        "per_candidate": [
            {"tokens": t, "measured_us": m, "raw_us": r, "flops": f, "fit": i not in main_fit["held"]}
            for i, (t, m, r, f) in enumerate(zip(tokens, measured, raw, flops))
        ],
    }


def main() -> Dict[str, Any]:
    args = parse_args()
    paddle.set_device("cpu")
    os.makedirs(MEASURED, exist_ok=True)
    started, load_at_start = time.time(), round(os.getloadavg()[0], 2)
    results: Dict[str, Dict[str, Any]] = {}
    for space in args.spaces:
        for engine in args.engines:
            print(f"== {engine} / {space}", flush=True)
            results.setdefault(engine, {})[space] = run_space(engine, space, args)
            summary = {k: v for k, v in results[engine][space].items() if k not in ("per_candidate", "fit_seeds")}
            print(json.dumps(summary), flush=True)
    return {
        "bench": "latency_accuracy",
        "machine": machine(),
        "load_average_1m_at_start": load_at_start,
        "threads": 1,
        "command": "python bench/latency_accuracy.py",
        "settings": {
            k: getattr(args, k) for k in ("candidates", "fit", "seed", "passes", "rounds", "op_passes", "sweeps")
        },
        "results": results,
        "seconds": round(time.time() - started, 1),
    }


if __name__ == "__main__":
    save_result("latency_accuracy", main())
