"""FBNet search for PFLD 106-point landmarks:
python tools/fbnet.py -c configs/pfld_fbnet.yml --phase build_lut|search|retrain|export|baseline [-o key=value ...]
                     [-r SAVE_DIR]

build_lut  price every candidate of every searched layer (LUT.table_file, or FLOPs) -> <save_dir>/lut.json
search     warm-up, then alternating weight / architecture epochs -> subnet.yml, subnet_init.pdparams
retrain    the derived subnet from the supernet's weights, on the whole train list -> subnet_final.pdparams
export     Paddle Inference model of the retrained subnet (checked against dygraph) -> <save_dir>/inference/
baseline   the config's `baseline` (mobilenetv3_pfld) from scratch, trained like retrain, timed -> <save_dir>/baseline/
-r SAVE_DIR resumes a killed search, retraining or baseline training in SAVE_DIR from its last finished epoch.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import os
import shutil
from dataclasses import asdict
from typing import Any, Dict, List, Optional

import paddle

from latency.builder import measure_models_us
from latency.engine import EngineSettings
from ppnas import parallel
from ppnas.cli import phase_choice, run_main
from ppnas.config import add_override_option, load_config, merge, parse_overrides
from ppnas.device import select_device
from ppnas.engine.meta import write_run_meta
from ppnas.errors import ConfigError
from ppnas.fbnet.baseline import train_baseline
from ppnas.fbnet.derive import STRUCTURE_FILE, export_subnet, load_subnet
from ppnas.fbnet.lut import ensure_lut
from ppnas.fbnet.search import SUBNET_WEIGHTS, run_search
from ppnas.fbnet.settings import FBNetConfig, fbnet_config
from ppnas.fbnet.train import retrain
from ppnas.history import ExportRecord, History
from ppnas.interrupts import resume_hint
from ppnas.observers import add_progress_options, scalar_log_dir
from ppnas.tasks.landmarks import load_landmark_data

PHASES = ("build_lut", "search", "retrain", "export", "baseline")
FINAL_WEIGHTS = "subnet_final.pdparams"
INFERENCE_DIR = "inference"
EXPORT_HINT = "python tools/fbnet.py -c {config} --phase export"


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="FBNet config (YAML, _BASE_ allowed)")
    add_override_option(parser, example="Search.epochs=10")
    parser.add_argument("-r", "--resume", default=None, help="save_dir of a search or retraining to resume")
    parser.add_argument("--phase", required=True, type=phase_choice(PHASES), metavar="{" + ",".join(PHASES) + "}")
    add_progress_options(parser)
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> FBNetConfig:
    raw = merge(load_config(args.config), parse_overrides(args.opt))
    if args.resume:
        raw["save_dir"] = args.resume
    return fbnet_config(raw)


def phase_build_lut(cfg: FBNetConfig) -> Dict[str, Any]:
    lut, action = ensure_lut(cfg.lut_path, cfg.spec, cfg.table_file, cfg.missing_keys, rebuild=True)
    cheapest, dearest = lut.bounds()
    return {
        "lut": cfg.lut_path,
        "action": action,
        "metric": lut.metric,
        "unit": lut.unit,
        "cheapest": cheapest,
        "dearest": dearest,
        "fixed": lut.fixed,
        "calibrated": lut.calibration is not None,
    }


def phase_search(cfg: FBNetConfig, args: argparse.Namespace) -> Dict[str, Any]:
    data = load_landmark_data(cfg.raw, cfg.seed)
    lut, _ = ensure_lut(cfg.lut_path, cfg.spec, cfg.table_file, cfg.missing_keys, rebuild=False)
    vdl_dir = scalar_log_dir(cfg.save_dir, args.vdl_log_dir) if args.use_vdl else None
    if parallel.is_main():
        os.makedirs(cfg.save_dir, exist_ok=True)
        write_run_meta(cfg.save_dir, "landmarks", "fbnet", args.config, EXPORT_HINT)
    outcome = run_search(cfg, lut, data, resume=bool(args.resume), quiet=args.quiet, vdl_dir=vdl_dir)
    last = outcome.records[-1] if outcome.records else {}
    return {
        "choices": outcome.choices,
        "structure": outcome.structure_path,
        "weights": outcome.weights_path,
        "nme": last.get("nme"),
        "nme_norm": last.get("nme_norm"),
        "probabilities": outcome.probabilities,
        "predicted": last.get("predicted"),
        "unit": last.get("lut_unit"),
        "predicted_ms": last.get("predicted_ms"),
        "png": outcome.png,
    }


def _need(path: str, phase: str) -> str:
    if not os.path.isfile(path):
        raise ConfigError(f"{path} not found: run --phase {phase} first")
    return path


def phase_retrain(cfg: FBNetConfig, args: argparse.Namespace) -> Dict[str, Any]:
    structure = _need(os.path.join(cfg.save_dir, STRUCTURE_FILE), "search")
    model = load_subnet(structure, _need(os.path.join(cfg.save_dir, SUBNET_WEIGHTS), "search"))
    data = load_landmark_data(cfg.raw, cfg.seed)
    record = retrain(model, data, cfg.retrain, cfg.save_dir, bool(args.resume), args.quiet, cfg.seed)
    weights = os.path.join(cfg.save_dir, FINAL_WEIGHTS)
    if parallel.is_main():
        paddle.save(model.state_dict(), weights)
    return {"weights": weights, "epochs": record["epoch"], "nme": record["nme"], "choices": model.choices}


def phase_export(cfg: FBNetConfig) -> Dict[str, Any]:
    structure = _need(os.path.join(cfg.save_dir, STRUCTURE_FILE), "search")
    weights = _need(os.path.join(cfg.save_dir, FINAL_WEIGHTS), "retrain")
    data = load_landmark_data(cfg.raw, cfg.seed)
    image = data.test[0][0][None]
    out_dir = os.path.join(cfg.save_dir, INFERENCE_DIR)
    diff = export_subnet(structure, weights, out_dir, image)
    shutil.copy(structure, os.path.join(out_dir, STRUCTURE_FILE))
    size = cfg.spec.input_size
    measured_us = measure_models_us([out_dir], [1, 3, size, size], EngineSettings(threads=1, repeats=25))[0]
    record = ExportRecord(inference_model=out_dir, max_abs_diff=diff, latency_ms_measured=measured_us / 1e3, threads=1)
    History.in_dir(cfg.save_dir).append_dict(asdict(record))
    return {**asdict(record), "structure": os.path.join(out_dir, STRUCTURE_FILE)}


def phase_baseline(cfg: FBNetConfig, args: argparse.Namespace) -> Dict[str, Any]:
    data = load_landmark_data(cfg.raw, cfg.seed)
    resume = bool(args.resume)
    return train_baseline(cfg.baseline, cfg.spec, data, cfg.retrain, cfg.save_dir, resume, args.quiet, cfg.seed)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cfg = load(args)
    select_device(cfg.use_gpu)
    if args.phase == "build_lut":
        summary = phase_build_lut(cfg)
    elif args.phase in ("search", "retrain", "baseline"):
        with resume_hint(cfg.save_dir):
            phase = {"search": phase_search, "retrain": phase_retrain, "baseline": phase_baseline}[args.phase]
            summary = phase(cfg, args)
    else:
        summary = phase_export(cfg)
    print(json.dumps({"phase": args.phase, **summary}))
    return 0


if __name__ == "__main__":
    run_main(main)
