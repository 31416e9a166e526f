"""The one-shot config: the detection search's keys and checks, plus the strategy's own keys."""

from typing import Any, Dict, List, Sequence

from ppnas.config import load_config, merge, parse_overrides, resolve_path
from ppnas.errors import ConfigError
from ppnas.oneshot.algorithm import check_strategy
from ppnas.tasks.detection import with_search_defaults

SEARCH_MODES = ("random", "traverse", "sanas")  # the samplers of ppnas/samplers/ a supernet search can use
BIGNAS_KEYS: Dict[str, Any] = {
    "sample_strategy": ["max", "random", "random", "min"],
    "distill_weight": 1.0,
    "checkpoint_every": 50,
    "calib_batches": 10,
    "search_mode": "random",  # random | traverse | sanas (ppnas/samplers/)
    "subnet_count": 500,
    "traverse_stride": 2,
    "flops_samples": 10000,
    "subnet_tokens": None,
    "finetune_iters": 200,
    "finetune_lr_scale": 0.1,
    "supernet_dir": None,  # None: <save_dir>/supernet; else the supernet trained there (any phase after training)
}


def load_bignas_config(path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The detection config's keys and checks, plus the one-shot strategy's keys, each checked once here."""
    cfg = with_search_defaults(merge(load_config(path), parse_overrides(overrides)), extra_keys=BIGNAS_KEYS)
    cfg["sample_strategy"] = check_strategy(cfg["sample_strategy"], float(cfg["distill_weight"]))
    if cfg["search_mode"] not in SEARCH_MODES:
        raise ConfigError(f"search_mode must be one of {', '.join(SEARCH_MODES)}, got {cfg['search_mode']!r}")
    if cfg["seed"] is None:
        cfg["seed"] = 0  # the loop seeds every iteration from it; a run must be repeatable to be resumable
    cfg["supernet_dir"] = resolve_path(cfg, cfg["supernet_dir"]) or None
    return cfg


def check_subnet_tokens(value: Any, space: Any) -> List[int]:
    """`subnet_tokens` as given on the command line (`2,1,3,8,2,1,2,1,0` or a YAML list), checked."""
    if value is None or value == "":
        raise ConfigError("this phase needs a subnet: -o subnet_tokens=2,1,3,8,2,1,2,1,0 (9 tokens)")
    items = value if isinstance(value, (list, tuple)) else str(value).replace("[", "").replace("]", "").split(",")
    try:
        tokens = [int(str(t).strip()) for t in items]
    except ValueError:
        raise ConfigError(f"subnet_tokens must be integers separated by commas, got {value!r}") from None
    space.decode(tokens)  # the space's own check: length and ranges, one line
    return tokens
