"""How well does a table built on this machine predict the end-to-end latency of real candidates?

python bench/latency_accuracy.py [-c configs/demo/blazeface_demo.yml] [--input-size 320] [--candidates 30]
    [--fit 6] [--mkldnn] [--table bench/results/latency_table_demo.txt]

1. samples fit + candidates architectures of the config's space;
2. builds (or extends) a table for their ops with tools/build_latency_table's code (1 thread);
3. measures every model end to end with Paddle Inference under the same settings (exported with
   paddle.jit.save, all predictors timed in interleaved passes right after the table is built, min of
   medians, thread CPU time);
4. fits the calibration `a * table_sum + b` (Theil-Sen) on the `fit` models (spread over the estimate
   range), stores it in the table header, and judges raw and calibrated estimates on the other candidates.
Baseline measured in the same run: a table-free fit `latency = d * FLOPs + e` on the same fit models.
Prints one JSON object and writes bench/results/latency_accuracy.json.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

import numpy as np
import paddle

from latency.builder import build_table, collect_ops, measure_models_us
from latency.engine import EngineSettings, cpu_model, export_model
from latency.estimate import estimate_latency
from latency.flops import count_flops
from ppnas.candidates import load_candidates

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=os.path.join(ROOT, "configs", "demo", "blazeface_demo.yml"))
    parser.add_argument("--input-size", type=int, default=320)
    parser.add_argument("--candidates", type=int, default=30, help="held-out candidates judged")
    parser.add_argument("--fit", type=int, default=8, help="fully measured models the calibration is fitted on")
    parser.add_argument("--mkldnn", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--passes", type=int, default=5, help="interleaved end-to-end passes (min of medians)")
    parser.add_argument("--op-passes", type=int, default=5, help="interleaved medians per table key (min kept)")
    parser.add_argument("--sweeps", type=int, default=3, help="sweeps over all table keys (min kept)")
    parser.add_argument("--table", default=None, help="table to build/extend (default in bench/results)")
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
    return sorted({order[round(i * (len(order) - 1) / max(count - 1, 1))] for i in range(count)})


def main() -> Dict[str, Any]:
    args = parse_args()
    paddle.set_device("cpu")
    started = time.time()
    settings = EngineSettings(threads=1, mkldnn=args.mkldnn, repeats=15, passes=args.op_passes)
    source = load_candidates(args.config)
    source.set_input_size(args.input_size)
    table_path = args.table or os.path.join(
        RESULTS, f"latency_table_demo{args.input_size}{'_mkldnn' if args.mkldnn else ''}.txt"
    )
    tokens = source.sample_tokens(args.fit + args.candidates, args.seed)
    models = [source.measurable(t) for t in tokens]

    e2e = EngineSettings(threads=1, mkldnn=args.mkldnn, repeats=25, passes=args.passes)
    with tempfile.TemporaryDirectory(prefix="ppnas_e2e_") as folder:
        # export first: the table is built right before the end-to-end passes, so both see the same machine
        model_dirs = [export_model(m, source.input_shape, f"{folder}/{i}") for i, m in enumerate(models)]
        build_start = time.time()
        table = build_table(collect_ops(models, source.input_shape), table_path, settings, sweeps=args.sweeps)
        build_seconds = time.time() - build_start
        measured = measure_models_us(model_dirs, source.input_shape, e2e)
    for name in ("calib_a", "calib_b", "calib_models"):  # a calibration from an earlier run: judge the raw sum
        table.settings.pop(name, None)
    raw = [estimate_latency(m, source.input_shape, table).total for m in models]
    flops = [count_flops(m, source.input_shape) for m in models]

    fit_idx = spread(raw, args.fit)
    held = [i for i in range(len(models)) if i not in fit_idx]
    slope, offset = fit_line([raw[i] for i in fit_idx], [measured[i] for i in fit_idx])
    table.settings.update({"calib_a": f"{slope:.6g}", "calib_b": f"{offset:.6g}", "calib_models": str(args.fit)})
    table.save()
    d, e = fit_line([flops[i] for i in fit_idx], [measured[i] for i in fit_idx])

    def pick(values: Sequence[float]) -> List[float]:
        return [values[i] for i in held]

    calibrated = [slope * r + offset for r in raw]
    flops_fit = [d * f + e for f in flops]
    raw_stats = error_stats(pick(raw), pick(measured))
    cal_stats = error_stats(pick(calibrated), pick(measured))
    result = {
        "bench": "latency_accuracy",
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": settings.threads,
        "engine": table.engine,
        "settings": {k: table.settings[k] for k in ("device", "threads", "mkldnn", "ir_optim", "prefix", "timer")},
        "space": source.space_name,
        "config": os.path.relpath(args.config, ROOT),
        "input_shape": source.input_shape,
        "table": os.path.relpath(table_path, ROOT),
        "table_keys": len(table.entries),
        "table_build_seconds": round(build_seconds, 1),
        "fit_models": len(fit_idx),
        "candidates": len(held),
        "within_10pct": cal_stats["within_10pct"],
        "median_abs_error_pct": cal_stats["median_abs_error_pct"],
        "raw": raw_stats,
        "calibrated": cal_stats,
        "calibration": {"a": slope, "b_us": offset},
        "baseline_flops_fit": error_stats(pick(flops_fit), pick(measured)),
        "measured_ms": {
            "min": min(measured) / 1e3,
            "median": statistics.median(measured) / 1e3,
            "max": max(measured) / 1e3,
        },
        "per_candidate": [
            {
                "tokens": tokens[i],
                "measured_us": measured[i],
                "raw_us": raw[i],
                "calibrated_us": calibrated[i],
                "fit": i in fit_idx,
            }
            for i in range(len(models))
        ],
        "seconds": round(time.time() - started, 1),
    }
    return result


if __name__ == "__main__":
    output = main()
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latency_accuracy.json"), "w", encoding="utf-8") as f:
        json.dump(output, f, indent=1)
    json.dump({k: v for k, v in output.items() if k != "per_candidate"}, sys.stdout)
    print()
