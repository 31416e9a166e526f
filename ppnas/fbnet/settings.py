"""The FBNet config: top-level keys, and the Search / Retrain / LUT blocks with their defaults.

`Data` is the landmark task's block (ppnas.tasks.landmarks.DATA_DEFAULTS), `Supernet` the supernet's
(ppnas.fbnet.supernet.SUPERNET_DEFAULTS); `baseline` names a reference model (ppnas/fbnet/baseline.py).
Relative paths resolve against the config file's folder, except `save_dir` (from the working directory, as in
the other searches) and `LUT.lut_file` (relative to save_dir).
"""

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from ppnas.config import check_keys, number_or_text, resolve_path
from ppnas.constraint import MISSING_POLICIES, Constraint
from ppnas.errors import ConfigError
from ppnas.fbnet.baseline import BASELINES
from ppnas.fbnet.supernet import SupernetSpec, supernet_spec
from ppnas.tasks.landmarks import data_settings

TOP_DEFAULTS: Dict[str, Any] = {"save_dir": "output/pfld_fbnet", "seed": 0, "use_gpu": False, "baseline": None}
TOP_KEYS = (*TOP_DEFAULTS, "Data", "Supernet", "LUT", "Search", "Retrain")
MODES = ("mul", "add", "target")
OPTIMIZERS = ("adam", "rmsprop")
LR_SCHEDULES = ("cosine", "constant")
SEARCH_DEFAULTS: Dict[str, Any] = {
    "epochs": 300,  # weight epochs in all, warm-up included
    "warmup_epochs": 50,  # weights only, before architecture epochs start
    "optimizer": "adam",  # of the weights: adam | rmsprop (NNI's example: rmsprop, lr 1e-4)
    "lr": 1e-3,
    "lr_schedule": "cosine",  # of the weights, over `epochs`: cosine | constant
    "weight_decay": 1e-6,
    "nas_lr": 0.01,  # AdamW on the architecture parameters
    "nas_weight_decay": 5e-4,
    # mul: loss * alpha * log(1 + L)^beta; add: loss + alpha * L^beta (L: the searched part, ms or MFLOPs);
    # target: loss * (1 + alpha * max(0, whole / target_latency - 1)); see docs/fbnet.md
    "mode": "mul",
    "alpha": 0.25,
    "beta": 0.6,
    "target_latency": None,  # the latency the whole model should not exceed (mode target), in the LUT's unit
    "init_temperature": 5.0,
    "anneal_rate": math.exp(-0.045),  # temperature *= anneal_rate after each architecture epoch
    "max_latency": None,  # hard bound on the derived subnet, in the LUT's unit (table unit, or FLOPs)
}
RETRAIN_DEFAULTS: Dict[str, Any] = {
    "epochs": 100,
    "optimizer": "adam",
    "lr": 1e-3,
    "lr_schedule": "cosine",
    "weight_decay": 1e-6,
}
LUT_DEFAULTS: Dict[str, Any] = {"table_file": None, "missing_keys": "error", "lut_file": "lut.json"}


@dataclass
class FBNetConfig:
    raw: Dict[str, Any]
    save_dir: str
    seed: int
    use_gpu: bool
    spec: SupernetSpec
    search: Dict[str, Any]
    retrain: Dict[str, Any]
    table_file: Optional[str]
    missing_keys: str
    lut_path: str
    constraint: Constraint  # Search.max_latency on the derived subnet, in the LUT's unit (the table's, or FLOPs)
    baseline: Optional[str]  # a reference model of ppnas/fbnet/baseline.py, trained beside the subnet


def _block(cfg: Mapping[str, Any], name: str, defaults: Mapping[str, Any]) -> Dict[str, Any]:
    block = cfg.get(name) or {}
    if not isinstance(block, Mapping):
        raise ConfigError(f"{name} must be a mapping of {', '.join(defaults)}")
    check_keys(block, defaults, where=name)
    return {**defaults, **{k: number_or_text(v) for k, v in block.items()}}


def fbnet_config(cfg: Mapping[str, Any]) -> FBNetConfig:
    """Check every block of a loaded config (ppnas.config.load_config) and fill in the defaults."""
    check_keys(cfg, TOP_KEYS, where="the FBNet config")
    search = _block(cfg, "Search", SEARCH_DEFAULTS)
    retrain = _block(cfg, "Retrain", RETRAIN_DEFAULTS)
    lut = _block(cfg, "LUT", LUT_DEFAULTS)
    data_settings(cfg.get("Data"))  # checked now: a typo fails before a LUT is built
    for block, name in ((search, "Search"), (retrain, "Retrain")):
        _one_of(block, name, "optimizer", OPTIMIZERS)
        _one_of(block, name, "lr_schedule", LR_SCHEDULES)
    _one_of(search, "Search", "mode", MODES)
    if lut["missing_keys"] not in MISSING_POLICIES:
        raise ConfigError(f"LUT.missing_keys must be one of {', '.join(MISSING_POLICIES)}, got '{lut['missing_keys']}'")
    if not 0 <= int(search["warmup_epochs"]) <= int(search["epochs"]):
        raise ConfigError("Search.warmup_epochs must be between 0 and Search.epochs")
    for key in ("max_latency", "target_latency"):
        bound = search[key]
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound <= 0):
            raise ConfigError(f"Search.{key} must be a positive number or null, got {bound!r}")
    if search["mode"] == "target" and search["target_latency"] is None:
        raise ConfigError("Search.mode target needs Search.target_latency (the whole model's, in the LUT's unit)")
    baseline = cfg.get("baseline")
    if baseline is not None and baseline not in BASELINES:
        raise ConfigError(f"baseline must be one of {', '.join(BASELINES)} or null, got {baseline!r}")
    save_dir = str(cfg.get("save_dir") or TOP_DEFAULTS["save_dir"])  # like the other searches: from the shell's folder
    table_file = resolve_path(cfg, lut["table_file"])
    constraint = Constraint(
        ctype="latency" if table_file else "flops",
        max_constraint=search["max_latency"],
        table_file=table_file,
        missing_keys=lut["missing_keys"],
    )
    return FBNetConfig(
        raw=dict(cfg),
        save_dir=save_dir,
        seed=int(cfg.get("seed", TOP_DEFAULTS["seed"])),
        use_gpu=bool(cfg.get("use_gpu", TOP_DEFAULTS["use_gpu"])),
        spec=supernet_spec(cfg.get("Supernet")),
        search=search,
        retrain=retrain,
        table_file=table_file,
        missing_keys=lut["missing_keys"],
        lut_path=os.path.join(save_dir, lut["lut_file"]),
        constraint=constraint,
        baseline=baseline,
    )


def _one_of(block: Mapping[str, Any], name: str, key: str, choices: Sequence[str]) -> None:
    if block[key] not in choices:
        raise ConfigError(f"{name}.{key} must be one of {', '.join(choices)}, got '{block[key]}'")
