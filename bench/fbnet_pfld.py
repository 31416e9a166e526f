"""FBNet on PFLD (demo data): the searched subnet against the fixed baseline, accuracy and measured latency.

python bench/fbnet_pfld.py [--epochs 20] [--samples 24] [--fit 6] [--work output/bench_fbnet_pfld]

1. a latency table for this machine, built like tools/build_latency_table.py does (1 thread, Paddle
   Inference) over sampled subnets of configs/demo/pfld_fbnet_demo.yml that cover every candidate, then
   calibrated (`a * sum + b`, Theil-Sen, as bench/latency_accuracy.py) on `--fit` fully measured subnets;
2. the LUT from that table and the demo search on the demo data (test list for NME only);
3. the searched subnet and the baseline (Supernet.baseline: PFLD's MobileNetV2-style blocks) each trained
   from scratch for `--epochs` epochs, same seed, same data (and the subnet also retrained from the
   supernet's weights, the tool's own path, for as many epochs);
4. both exported (paddle.jit.save) and timed end to end with Paddle Inference, 1 thread, warm-up, median
   of 25 runs, min over 5 interleaved passes, in the same passes as the calibration subnets, whose fit is
   redone on that measurement (a fit from minutes earlier on this shared machine was off by 20-30%); the
   LUT's calibrated prediction of the subnet (not one of the fit models) against its measurement.
Writes bench/results/fbnet_pfld.json (with the machine). Resumable: a finished search or training is reused.
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import os
import time
from typing import Any, Dict, List

import paddle
from common import RESULTS, machine, save_result
from latency_accuracy import fit_line, spread

from latency.builder import build_table, collect_ops, measure_models_us
from latency.engine import EngineSettings, export_model
from latency.estimate import estimate_latency
from ppnas.candidates import load_candidates
from ppnas.config import load_config, merge, parse_overrides
from ppnas.demo.landmarks import make_landmark_demo
from ppnas.fbnet.derive import STRUCTURE_FILE, load_subnet
from ppnas.fbnet.lut import ensure_lut
from ppnas.fbnet.search import CHECKPOINT, SUBNET_WEIGHTS, run_search
from ppnas.fbnet.settings import fbnet_config
from ppnas.fbnet.supernet import LandmarkForward, LandmarkModel
from ppnas.fbnet.train import retrain
from ppnas.tasks.landmarks import load_landmark_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "configs", "demo", "pfld_fbnet_demo.yml")
E2E = EngineSettings(threads=1, repeats=25, passes=5)  # end to end: warm-up, median of 25, min of 5 passes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs of subnet and baseline")
    parser.add_argument("--samples", type=int, default=24, help="subnets whose ops the table covers")
    parser.add_argument("--fit", type=int, default=6, help="fully measured subnets the calibration is fitted on")
    parser.add_argument("--work", default=os.path.join(ROOT, "output", "bench_fbnet_pfld"))
    parser.add_argument("--table", default=os.path.join(RESULTS, "latency_table_pfld112.txt"))
    parser.add_argument("-o", "--opt", nargs="*", default=[], help="extra overrides of the demo config")
    return parser.parse_args()


def build_calibrated_table(args: argparse.Namespace, overrides: List[str]) -> Dict[str, Any]:
    """The table (built or extended), calibrated on `--fit` exported subnets; their dirs and raw sums are
    returned so that the end of the run measures them again beside the subnet and the baseline."""
    source = load_candidates(DEMO, overrides)
    tokens = source.sample_tokens(args.samples, seed=1)
    models = [source.measurable(t) for t in tokens]
    shape = source.input_shape
    started = time.time()
    settings = EngineSettings(threads=1, repeats=15, passes=5)
    table = build_table(collect_ops(models, shape), args.table, settings, sweeps=2)
    raw = [estimate_latency(m, shape, table).raw_total for m in models]
    fit_idx = spread(raw, args.fit)
    folder = os.path.join(args.work, "calibration")
    dirs = [export_model(models[i], shape, f"{folder}/{i}") for i in fit_idx]
    measured = measure_models_us(dirs, shape, E2E)
    calibrate(table, [raw[i] for i in fit_idx], measured)
    return {"table": table, "fit_dirs": dirs, "fit_raw": [raw[i] for i in fit_idx], "seconds": time.time() - started}


def calibrate(table: Any, raw: List[float], measured: List[float]) -> List[float]:
    slope, offset = fit_line(raw, measured)
    table.settings.update({"calib_a": f"{slope:.6g}", "calib_b": f"{offset:.6g}", "calib_models": str(len(raw))})
    table.save()
    return [slope, offset]


def main() -> Dict[str, Any]:
    args = parse_args()
    args.work, args.table = os.path.abspath(args.work), os.path.abspath(args.table)  # the config's folder is not ours
    paddle.set_device("cpu")
    started = time.time()
    data_dir = os.path.join(args.work, "data")
    if not os.path.isfile(os.path.join(data_dir, "test_data", "list.txt")):
        make_landmark_demo(data_dir)
    overrides = [f"Data.dataset_dir={data_dir}", f"save_dir={args.work}/search", *args.opt]
    table_info = build_calibrated_table(args, overrides)
    cfg = fbnet_config(merge(load_config(DEMO), parse_overrides([*overrides, f"LUT.table_file={args.table}"])))
    lut, _ = ensure_lut(cfg.lut_path, cfg.spec, cfg.table_file, cfg.missing_keys, rebuild=True)
    data = load_landmark_data(cfg.raw, cfg.seed)
    search_started = time.time()
    resume = os.path.isfile(os.path.join(cfg.save_dir, CHECKPOINT))
    outcome = run_search(cfg, lut, data, resume=resume, quiet=True)
    search_seconds = time.time() - search_started
    spec = cfg.spec
    names = {"subnet": outcome.choices, "baseline": list(spec.baseline)}
    settings = {**cfg.retrain, "epochs": args.epochs}
    trained: Dict[str, Any] = {}
    for which in ("subnet", "baseline"):
        paddle.seed(cfg.seed)
        with paddle.utils.unique_name.guard():  # stable parameter names: a resumed run loads the optimizer state
            model = LandmarkModel(spec, names[which])
        trained[which] = (model, retrain(model, data, settings, f"{args.work}/{which}", resume=True, quiet=True))
    reused = load_subnet(os.path.join(cfg.save_dir, STRUCTURE_FILE), os.path.join(cfg.save_dir, SUBNET_WEIGHTS))
    reused_record = retrain(reused, data, settings, f"{args.work}/subnet_reused", resume=True, quiet=True)
    shape = [1, 3, spec.input_size, spec.input_size]
    dirs = []
    for which in ("subnet", "baseline"):
        model = trained[which][0]
        model.eval()
        dirs.append(export_model(LandmarkForward(model.backbone), shape, f"{args.work}/export_{which}"))
    # the subnet, the baseline and the calibration models timed together: one machine state for all
    fit_dirs = table_info["fit_dirs"]
    measured_us = measure_models_us(dirs + fit_dirs, shape, E2E)
    sub_ms, base_ms = measured_us[0] / 1e3, measured_us[1] / 1e3
    search_calibration = list(lut.calibration)
    slope, offset = calibrate(table_info["table"], table_info["fit_raw"], measured_us[2:])
    choices = {which: spec.choice_indexes(names[which], which) for which in names}
    predicted_sub = (slope * lut.raw_total(choices["subnet"]) + offset) * lut.ms_per_unit
    predicted_base = (slope * lut.raw_total(choices["baseline"]) + offset) * lut.ms_per_unit
    nme_sub, nme_base = trained["subnet"][1]["nme"], trained["baseline"][1]["nme"]
    return {
        "bench": "fbnet_pfld",
        "machine": {**machine(), "threads": 1},
        "config": os.path.relpath(DEMO, ROOT),
        "overrides": args.opt,
        "epochs_each": args.epochs,
        "search_epochs": cfg.search["epochs"],
        "search_warmup_epochs": cfg.search["warmup_epochs"],
        "search_seconds": round(search_seconds, 1),
        "subnet": names["subnet"],
        "baseline": names["baseline"],
        "nme_subnet": nme_sub,
        "nme_baseline": nme_base,
        "nme_ratio": nme_sub / nme_base,
        "nme_subnet_from_supernet_weights": reused_record["nme"],
        "latency_ms_subnet": sub_ms,
        "latency_ms_baseline": base_ms,
        "latency_ratio": sub_ms / base_ms,
        "lut_predicted_ms_subnet": predicted_sub,
        "lut_predicted_ms_baseline": predicted_base,
        "lut_error": abs(predicted_sub - sub_ms) / sub_ms,
        "lut_error_baseline": abs(predicted_base - base_ms) / base_ms,
        "targets": {
            "latency_ratio<=0.5": sub_ms / base_ms <= 0.5,
            "nme_subnet<=1.05*nme_baseline": nme_sub <= 1.05 * nme_base,
            "lut_error<=0.10": abs(predicted_sub - sub_ms) / sub_ms <= 0.10,
        },
        "table": {
            "table": os.path.relpath(args.table, ROOT),
            "keys": len(table_info["table"].entries),
            "fit_models": len(fit_dirs),
            "calibration": [slope, offset],
            "calibration_during_search": search_calibration,
            "lut_predicted_ms_subnet_with_search_calibration": lut.latency_ms(choices["subnet"]),
            "build_and_calibrate_seconds": round(table_info["seconds"], 1),
        },
        "seconds": round(time.time() - started, 1),
    }


if __name__ == "__main__":
    save_result("fbnet_pfld", main())
