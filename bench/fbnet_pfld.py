"""FBNet on PFLD (demo data): the searched subnet against MobileNet-V3 PFLD (NNI's baseline) and against PFLD itself
(the in-supernet baseline), each trained from scratch by the same code with several seeds, all timed end to end here.

python bench/fbnet_pfld.py [--train 640] [--test 200] [--epochs 60] [--seeds 3] [--check-epochs 120]
                           [--search-epochs 30] [--warmup 10] [--target 0.3] [--bound 0.4]

1. the demo set (the generator, any size) and a latency table for this machine, built like
   tools/build_latency_table.py (1 thread, Paddle Inference) over subnets of configs/demo/pfld_fbnet_demo.yml
   that cover every candidate, calibrated (`a * sum + b`, Theil-Sen) on `--fit` fully measured subnets;
2. MobileNet-V3 PFLD timed end to end; the search's `target_latency` is `--target` times that, its hard bound
   `max_latency` `--bound` times that (both in the table's us, calibrated);
3. the search (target mode), then the derived subnet, `baseline: mobilenetv3_pfld` and the in-supernet
   baseline (`Supernet.baseline`, PFLD's own blocks) each trained from scratch (the same kind of start) for
   `--epochs` epochs with the same cosine-annealed optimizer, `--seeds` seeds each (seed: weights, data order,
   augmentations; the data and the test list are the same), test NME after every epoch; then seed 0 of the
   subnet and of MobileNet-V3 PFLD once more at `--check-epochs`, to see whether a longer schedule changes
   the comparison;
4. the three exported (paddle.jit.save) and timed end to end with Paddle Inference, 1 thread, in the same
   interleaved passes as the calibration subnets, whose fit is redone on that measurement; the LUT's
   prediction of the subnet (not a fit model) against its measurement is `lut_error`.
Writes bench/results/fbnet_pfld.json (with the machine) and fbnet_pfld_curves.png (test NME per epoch, seed
mean and spread, of the three models). Resumable: the table, the search and every training are cached under
--work and a killed run continues where it stopped; `cpu_seconds` counts the process CPU time of this run.
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Sequence, Tuple

import paddle
from common import RESULTS, machine, save_result
from latency_accuracy import fit_line, spread
from matplotlib.figure import Figure

from latency.builder import build_table, collect_ops, measure_models_us
from latency.engine import EngineSettings, export_model
from latency.estimate import estimate_latency
from ppnas.candidates import load_candidates
from ppnas.config import load_config, merge, parse_overrides
from ppnas.demo.landmarks import make_landmark_demo
from ppnas.fbnet.baseline import build_baseline
from ppnas.fbnet.lut import LookupTable, ensure_lut
from ppnas.fbnet.search import CHECKPOINT, run_search
from ppnas.fbnet.settings import FBNetConfig, fbnet_config
from ppnas.fbnet.supernet import LandmarkForward, LandmarkModel
from ppnas.fbnet.train import retrain
from ppnas.history import History
from ppnas.report.figures.style import FIGURE_INCHES, save_figure
from ppnas.storage import atomic_write_json, text_hash
from ppnas.tasks.landmarks import load_landmark_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "configs", "demo", "pfld_fbnet_demo.yml")
E2E = EngineSettings(threads=1, repeats=25, passes=5)  # end to end: warm-up, median of 25, min of 5 passes
MODELS = ("subnet", "mobilenetv3_pfld", "in_supernet")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=640, help="demo train images (the test list is --test)")
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=60, help="training epochs of every model, from scratch")
    parser.add_argument("--seeds", type=int, default=3, help="trainings of every model")
    parser.add_argument("--check-epochs", type=int, default=120, help="seed 0 again at this schedule (0: skip)")
    parser.add_argument("--search-epochs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10, help="search epochs that train the weights only")
    parser.add_argument("--target", type=float, default=0.3, help="target_latency, x MobileNet-V3 PFLD's")
    parser.add_argument("--bound", type=float, default=0.4, help="max_latency, x MobileNet-V3 PFLD's")
    parser.add_argument("--samples", type=int, default=24, help="subnets whose ops the table covers")
    parser.add_argument("--fit", type=int, default=6, help="fully measured subnets the calibration is fitted on")
    parser.add_argument("--work", default=os.path.join(ROOT, "output", "bench_fbnet_pfld"))
    parser.add_argument("--table", default=os.path.join(RESULTS, "latency_table_pfld112.txt"))
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="extra overrides of the demo config")
    return parser.parse_args()


def calibration_models(args: argparse.Namespace, overrides: List[str]) -> Dict[str, Any]:
    """The table (built or extended) and `--fit` exported subnets spread over its range, with their raw sums:
    the calibration is fitted on their end-to-end times, measured in the same passes as the compared models."""
    source = load_candidates(DEMO, overrides)
    models = [source.measurable(t) for t in source.sample_tokens(args.samples, seed=1)]
    shape = source.input_shape
    table = build_table(collect_ops(models, shape), args.table, EngineSettings(threads=1, repeats=15, passes=5))
    raw = [estimate_latency(m, shape, table).raw_total for m in models]
    fit = spread(raw, args.fit)
    dirs = [export_model(models[i], shape, f"{args.work}/calibration/{i}") for i in fit]
    return {"table": table, "dirs": dirs, "raw": [raw[i] for i in fit]}


def search_setup(args: argparse.Namespace, calibration: Dict[str, Any], mnv3_dir: str, shape: List[int]) -> Dict:
    """MobileNet-V3 PFLD's end-to-end time and the table's calibration, measured in the same passes before the
    search and written into the table (the LUT the search prices with); cached so that a resumed run searches
    with the same numbers."""
    path = os.path.join(args.work, "search_setup.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    measured = measure_models_us([mnv3_dir, *calibration["dirs"]], shape, E2E)
    slope, offset = fit_line(calibration["raw"], measured[1:])
    table = calibration["table"]
    table.settings.update(
        {"calib_a": f"{slope:.6g}", "calib_b": f"{offset:.6g}", "calib_models": str(len(measured) - 1)}
    )
    table.save()
    setup = {"mobilenetv3_us": measured[0], "calibration": [slope, offset], "load_average_1m": os.getloadavg()[0]}
    atomic_write_json(path, setup)
    return setup


def log(line: str) -> None:
    """Progress on stderr (stdout carries the result's JSON); every stage's epochs are in its history.jsonl."""
    print(f"[fbnet_pfld {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def build_model(which: str, cfg: FBNetConfig, choices: Sequence[str], seed: int) -> paddle.nn.Layer:
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():  # stable parameter names: a resumed run loads the optimizer state
        if which == cfg.baseline:
            return build_baseline(which, cfg.spec)
        return LandmarkModel(cfg.spec, choices)


def train_one(
    args: argparse.Namespace, cfg: FBNetConfig, names: Dict[str, List[str]], which: str, seed: int, epochs: int
) -> Tuple[paddle.nn.Layer, Dict[str, Any], List[float]]:
    """`which` trained from scratch for `epochs` with `seed` (cached in its folder): model, last record, curve."""
    structure = text_hash(",".join(names[which]))[:10]  # a new search's subnet is another model
    folder = f"{args.work}/train_n{args.train}_e{epochs}/{which}_{structure}/seed{seed}"
    model = build_model(which, cfg, names[which], seed)
    data = load_landmark_data(cfg.raw, seed)
    record = retrain(model, data, {**cfg.retrain, "epochs": epochs}, folder, resume=True, quiet=True, seed=seed)
    log(f"{which} seed {seed}: {record['epoch']} epochs, test NME {record['nme']:.4f} ({record['nme_norm']})")
    return model, record, [r["nme"] for r in History.in_dir(folder).of_kind("retrain")]


def train_all(args: argparse.Namespace, cfg: FBNetConfig, names: Dict[str, List[str]]) -> Dict[str, Any]:
    """Every model x seed trained from scratch: final NMEs, curves, one model per kind (for timing)."""
    out: Dict[str, Any] = {which: {"nme": [], "curves": [], "model": None} for which in MODELS}
    for seed in range(args.seeds):
        for which in MODELS:
            model, record, curve = train_one(args, cfg, names, which, seed, args.epochs)
            out[which]["nme"].append(record["nme"])
            out[which]["curves"].append(curve)
            out[which]["model"] = out[which]["model"] or model
            out[which]["nme_norm"] = record["nme_norm"]
    return out


def longer_schedule(args: argparse.Namespace, cfg: FBNetConfig, names: Dict[str, List[str]]) -> Dict[str, Any]:
    """Seed 0 of the subnet and MobileNet-V3 PFLD again at --check-epochs: does a longer schedule change the
    comparison (MobileNet-V3 PFLD's NME was still falling slowly at the end of the pilot's schedules)?"""
    nme = {which: train_one(args, cfg, names, which, 0, args.check_epochs)[1]["nme"] for which in MODELS[:2]}
    return {
        "epochs": args.check_epochs,
        "seed": 0,
        "nme": nme,
        "nme_ratio_vs_mobilenetv3": nme["subnet"] / nme[MODELS[1]],
    }


def curves_figure(trained: Dict[str, Any], path: str) -> str:
    """Test NME per epoch of every model: the seed mean, and the band between the best and worst seed."""
    figure = Figure(figsize=FIGURE_INCHES)
    ax = figure.add_subplot(1, 1, 1)
    for which, color in zip(MODELS, ("tab:green", "tab:red", "tab:blue")):
        curves = trained[which]["curves"]
        epochs = range(1, len(curves[0]) + 1)
        columns = list(zip(*curves))
        ax.plot(epochs, [statistics.mean(c) for c in columns], color=color, label=f"{which} (mean of {len(curves)})")
        ax.fill_between(epochs, [min(c) for c in columns], [max(c) for c in columns], color=color, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (cosine-annealed learning rate, from scratch)")
    ax.set_ylabel(f"test NME ({trained['subnet']['nme_norm']} normaliser, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("FBNet PFLD benchmark: test NME while training, seed mean and min-max band")
    return save_figure(figure, path)


def search(args: argparse.Namespace, cfg: FBNetConfig, lut: LookupTable) -> Dict[str, Any]:
    data = load_landmark_data(cfg.raw, cfg.seed)
    resume = os.path.isfile(os.path.join(cfg.save_dir, CHECKPOINT))
    log(f"search in {cfg.save_dir} ({'resumed' if resume else 'new'}): progress in its history.jsonl")
    outcome = run_search(cfg, lut, data, resume=resume, quiet=True)
    epochs = outcome.records
    log(f"search derived {', '.join(outcome.choices)}")
    return {
        "choices": outcome.choices,
        "expected_latency_ms_first_last": [epochs[0]["expected_latency"], epochs[-1]["expected_latency"]],
        "expected_searched_ms_first_last": [epochs[0]["expected_searched"], epochs[-1]["expected_searched"]],
        "derived_per_epoch_ms": [r["predicted_ms"] for r in epochs],
        "search_nme_last": epochs[-1]["nme"],
        "seconds_per_epoch_wall": statistics.mean(r["seconds"] for r in epochs),
    }


def summary(values: Sequence[float]) -> Dict[str, float]:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def main() -> Dict[str, Any]:
    args = parse_args()
    args.work, args.table = os.path.abspath(args.work), os.path.abspath(args.table)  # the config's folder is not ours
    paddle.set_device("cpu")
    started = time.process_time()
    data_dir = os.path.join(args.work, f"data_{args.train}_{args.test}")
    if not os.path.isfile(os.path.join(data_dir, "test_data", "list.txt")):
        make_landmark_demo(data_dir, train=args.train, test=args.test)
    overrides = [f"Data.dataset_dir={data_dir}", *args.opt]
    calibration = calibration_models(args, overrides)
    base = fbnet_config(merge(load_config(DEMO), parse_overrides(overrides)))
    shape = [1, 3, base.spec.input_size, base.spec.input_size]
    mnv3 = LandmarkForward(build_baseline("mobilenetv3_pfld", base.spec).backbone)
    setup = search_setup(args, calibration, export_model(mnv3, shape, f"{args.work}/mnv3"), shape)
    mnv3_us = setup["mobilenetv3_us"]
    log(f"table calibrated {setup['calibration']}, MobileNet-V3 PFLD {mnv3_us / 1e3:.2f} ms")
    search_dir = f"{args.work}/search_n{args.train}_e{args.search_epochs}_w{args.warmup}_t{args.target}_b{args.bound}"
    search_overrides = [
        f"save_dir={search_dir}",
        f"LUT.table_file={args.table}",
        f"Search.epochs={args.search_epochs}",
        f"Search.warmup_epochs={args.warmup}",
        "Search.mode=target",
        f"Search.target_latency={args.target * mnv3_us:.1f}",
        f"Search.max_latency={args.bound * mnv3_us:.1f}",
    ]
    cfg = fbnet_config(merge(load_config(DEMO), parse_overrides([*overrides, *search_overrides])))
    lut, _ = ensure_lut(cfg.lut_path, cfg.spec, cfg.table_file, cfg.missing_keys, rebuild=True)
    search_started = time.process_time()
    searched = search(args, cfg, lut)
    search_cpu = time.process_time() - search_started
    names = {"subnet": searched["choices"], "in_supernet": list(cfg.spec.baseline), "mobilenetv3_pfld": []}
    trained = train_all(args, cfg, names)
    curves_png = curves_figure(trained, str(RESULTS / "fbnet_pfld_curves.png"))
    longer = longer_schedule(args, cfg, names) if args.check_epochs else None
    dirs = []
    for which in MODELS:
        model = trained[which]["model"]
        model.eval()
        dirs.append(export_model(LandmarkForward(model.backbone), shape, f"{args.work}/export_{which}"))
    # the compared models and the calibration subnets timed together: one machine state for all
    measured_us = measure_models_us(dirs + calibration["dirs"], shape, E2E)
    ms = {which: us / 1e3 for which, us in zip(MODELS, measured_us)}
    slope, offset = fit_line(calibration["raw"], measured_us[len(MODELS) :])  # refit on this measurement
    predicted = {
        which: (slope * lut.raw_total(cfg.spec.choice_indexes(names[which], which)) + offset) * lut.ms_per_unit
        for which in ("subnet", "in_supernet")
    }
    nme = {which: summary(trained[which]["nme"]) for which in MODELS}
    lut_error = abs(predicted["subnet"] - ms["subnet"]) / ms["subnet"]
    result = {
        "bench": "fbnet_pfld",
        "machine": {**machine(), "threads": 1},
        "config": os.path.relpath(DEMO, ROOT),
        "overrides": [*args.opt, *search_overrides[1:]],
        "data": {"train": args.train, "test": args.test, "generator": "ppnas.demo.landmarks (seed 0)"},
        "seeds": args.seeds,
        "epochs_each": args.epochs,
        "nme_norm": trained["subnet"]["nme_norm"],
        "search": {**searched, "epochs": args.search_epochs, "warmup_epochs": args.warmup, "cpu_seconds": search_cpu},
        "models": {
            which: {
                "choices": names[which] or [which],
                "latency_ms": ms[which],
                "nme": nme[which],
                "nme_per_seed": trained[which]["nme"],
            }
            for which in MODELS
        },
        "latency_ratio_vs_mobilenetv3": ms["subnet"] / ms["mobilenetv3_pfld"],
        "nme_ratio_vs_mobilenetv3": nme["subnet"]["mean"] / nme["mobilenetv3_pfld"]["mean"],
        "latency_ratio": ms["subnet"] / ms["in_supernet"],
        "nme_ratio": nme["subnet"]["mean"] / nme["in_supernet"]["mean"],
        "lut_error": lut_error,
        "longer_schedule_check": longer,
        "lut_error_in_supernet": abs(predicted["in_supernet"] - ms["in_supernet"]) / ms["in_supernet"],
        "lut_predicted_ms": predicted,
        "targets": {
            "latency_ratio_vs_mobilenetv3<=0.5": ms["subnet"] / ms["mobilenetv3_pfld"] <= 0.5,
            "nme_ratio_vs_mobilenetv3<=1.05": nme["subnet"]["mean"] / nme["mobilenetv3_pfld"]["mean"] <= 1.05,
            "lut_error<=0.10": lut_error <= 0.10,
        },
        "table": {
            "table": os.path.relpath(args.table, ROOT),
            "keys": len(calibration["table"].entries),
            "fit_models": len(calibration["dirs"]),
            "calibration": [slope, offset],
            "calibration_during_search": setup["calibration"],
        },
        "mobilenetv3_ms_before_search": mnv3_us / 1e3,
        "load_average_1m_before_search": setup["load_average_1m"],
        "curves_png": os.path.relpath(curves_png, ROOT),
        "cpu_seconds": round(time.process_time() - started, 1),
    }
    return result


if __name__ == "__main__":
    save_result("fbnet_pfld", main())
