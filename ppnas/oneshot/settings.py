"""The one-shot config: a detection config (PaddleDetection-style YAML, the one-shot keys at its top level) or a
segmentation config (a PaddleSeg YAML, the one-shot keys as SLIM.BIGNAS_*), read into one dict with the same
keys (ppnas/oneshot/keys.py), each checked once here.
"""

import copy
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from ppnas.config import (
    CONFIG_DIR_KEY,
    config_kind,
    load_config,
    merge,
    override_pairs,
    parse_overrides,
    resolve_path,
)
from ppnas.constraint import Constraint
from ppnas.engine.options import SEARCH_DEFAULTS
from ppnas.errors import ConfigError
from ppnas.oneshot.algorithm import check_strategy
from ppnas.oneshot.keys import ONESHOT_KEYS, SEG_ONLY_KEYS, slim_key
from ppnas.oneshot.space import ElasticSpace
from ppnas.oneshot.supernet import import_custom, supernet_class
from ppnas.units import parse_count

SEARCH_MODES = ("random", "traverse", "sanas", "nsga2", "tpe")  # samplers of a supernet search (nsga2, tpe: Optuna's)
TABLE_MODES = ("random", "nsga2", "tpe")  # the samplers of a front search (`tables`: ppnas/oneshot/fronts.py)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")  # paddle.nn.functional.interpolate's 2-D modes
SANDWICH_SAMPLINGS = ("uniform", "window")  # how train_supnet draws the random members (ppnas/oneshot/window.py)
CALIB_TRANSFORMS = ("train", "eval")  # the task's reader whose transforms BN calibration's images go through
DEFAULT_SUPERNETS = {"detection": "BlazeFaceSupernet", "segmentation": "DeepLabV3PSupernet"}


def _detection(path: str, overrides: Sequence[str]) -> Dict[str, Any]:
    from ppnas.tasks.detection import with_search_defaults

    cfg = with_search_defaults(merge(load_config(path), parse_overrides(overrides)), extra_keys=ONESHOT_KEYS)
    side = int(cfg["input_size"])
    return {**cfg, "task": "detection", "input_shape": [1, 3, side, side]}


def _slim_spelling(overrides: Sequence[str]) -> List[str]:
    """`-o subnet_count=40` on a segmentation config is `SLIM.BIGNAS_SUBNET_COUNT=40`: one spelling serves both
    kinds of config on the command line (and in the report's commands)."""
    out = []
    for item in overrides:
        key, sep, value = str(item).partition("=")
        out.append(f"SLIM.{slim_key(key)}={value}" if sep and key in {**ONESHOT_KEYS, **SEG_ONLY_KEYS} else item)
    return out


def _segmentation(path: str, overrides: Sequence[str]) -> Dict[str, Any]:
    from ppnas.tasks.segmentation import crop_input_shape
    from ppnas.tasks.segmentation_config import load_seg_config

    seg = load_seg_config(path, override_pairs(_slim_spelling(overrides), example="SLIM.BIGNAS_SUBNET_COUNT=40"))
    slim = seg.slim
    cfg = {**copy.deepcopy(SEARCH_DEFAULTS), **{k: slim[slim_key(k)] for k in {**ONESHOT_KEYS, **SEG_ONLY_KEYS}}}
    cfg.update(
        task="segmentation",
        seg=seg,
        search_space=slim["NAS_SPACE_NAME"],
        seed=slim["NAS_SEED"],
        input_shape=crop_input_shape(seg.paddleseg),
        **{CONFIG_DIR_KEY: seg.config_dir},
    )
    if cfg["image_size_list"] is not None:
        raise ConfigError(
            "SLIM.BIGNAS_IMAGE_SIZE_LIST: the segmentation search scores whole val images, so it does not search the "
            "input resolution; leave it out (the training crop is the size every subnet is measured at)"
        )
    return cfg


def load_oneshot_config(path: str, overrides: Sequence[str] = (), save_dir: Optional[str] = None) -> Dict[str, Any]:
    """Either kind of config with `-o KEY=VALUE` overrides (a segmentation config: `-o SLIM.BIGNAS_X=V`), the
    one-shot keys filled and checked, the user's supernet modules imported."""
    kind = config_kind(load_config(path))
    cfg = _segmentation(path, overrides) if kind == "segmentation" else _detection(path, overrides)
    if save_dir:
        cfg["save_dir"] = save_dir
    cfg["sample_strategy"] = check_strategy(cfg["sample_strategy"], float(cfg["distill_weight"]))
    if cfg["search_mode"] not in SEARCH_MODES:
        raise ConfigError(f"search_mode must be one of {', '.join(SEARCH_MODES)}, got {cfg['search_mode']!r}")
    if cfg["tables"] not in (None, "", []) and cfg["search_mode"] not in TABLE_MODES:
        raise ConfigError(
            f"tables: a front search draws with search_mode {', '.join(TABLE_MODES)}, got {cfg['search_mode']!r}"
        )
    if cfg["sandwich_sampling"] not in SANDWICH_SAMPLINGS:
        raise ConfigError(
            f"sandwich_sampling must be one of {', '.join(SANDWICH_SAMPLINGS)}, got {cfg['sandwich_sampling']!r}"
        )
    if cfg["interpolation_type"] not in INTERPOLATIONS:
        raise ConfigError(
            f"interpolation_type must be one of {', '.join(INTERPOLATIONS)}, got {cfg['interpolation_type']!r}"
        )
    if int(cfg["calib_batches"]) < 1:
        raise ConfigError(f"calib_batches must be at least 1, got {cfg['calib_batches']}")
    if cfg["calib_transforms"] not in CALIB_TRANSFORMS:
        raise ConfigError(
            f"calib_transforms must be one of {', '.join(CALIB_TRANSFORMS)}, got {cfg['calib_transforms']!r}"
        )
    cfg["calib_file"] = resolve_path(cfg, cfg["calib_file"]) or None
    if cfg["calib_file"] is not None and not os.path.isfile(cfg["calib_file"]):
        raise ConfigError(f"calib_file not found: {cfg['calib_file']}")
    if cfg["seed"] is None:
        cfg["seed"] = 0  # the loop seeds every iteration from it; a run must be repeatable to be resumable
    cfg["supernet_dir"] = resolve_path(cfg, cfg["supernet_dir"]) or None
    cfg["supernet"] = cfg["supernet"] or DEFAULT_SUPERNETS[cfg["task"]]
    import_custom(cfg["custom_imports"], cfg[CONFIG_DIR_KEY])
    task = supernet_class(cfg["supernet"]).task
    if task != cfg["task"]:
        raise ConfigError(f"supernet {cfg['supernet']} is a {task} supernet, and this is a {cfg['task']} config")
    cfg["flops_range"] = flops_range(cfg["flops_range"])
    if cfg["baseline_flops"] is not None:
        cfg["baseline_flops"] = parse_count(cfg["baseline_flops"], "baseline_flops")
    return cfg


def flops_range(value: Any) -> Optional[List[float]]:
    """United-Perception's flops_range ['200M', '400M'] as [low, high] FLOPs."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"flops_range must be [min, max] FLOPs, e.g. ['8M', '14M'], got {value!r}")
    low, high = (parse_count(v, "flops_range") for v in value)
    if low > high:
        raise ConfigError(f"flops_range is empty: {low:g} > {high:g}")
    return [low, high]


def oneshot_constraint(cfg: Mapping[str, Any]) -> Constraint:
    """The config's Constraint (a segmentation config: SLIM.NAS_CONSTRAINT_*)."""
    if cfg["task"] == "segmentation":
        return cfg["seg"].constraint()
    return Constraint.from_config(cfg.get("Constraint"), cfg)


def check_subnet_tokens(value: Any, space: ElasticSpace) -> List[int]:
    """`subnet_tokens` as given on the command line (`2,1,3,8,2,1,2,1,0` or a YAML list), checked."""
    items = value if isinstance(value, (list, tuple)) else str(value).replace("[", "").replace("]", "").split(",")
    try:
        tokens = [int(str(t).strip()) for t in items]
    except ValueError:
        raise ConfigError(f"subnet_tokens must be integers separated by commas, got {value!r}") from None
    space.decode(tokens)  # the space's own check: length and ranges, one line
    return tokens


def _given_settings(cfg: Mapping[str, Any], value: Any) -> Dict[str, Any]:
    """subnet_settings as {subnet_settings, image_size}: from a mapping of modules (image_size beside them), its
    YAML text (a segmentation config's -o keeps it as text), or a file (as the search exports a subnet; the
    config's path rule)."""
    if isinstance(value, str):
        path = resolve_path(cfg, value)
        try:
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    value = yaml.safe_load(f)
            else:
                value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"subnet_settings: {value!r} is not valid YAML ({err})") from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"subnet_settings must map modules to their settings (or name a file of them), got {value!r}")
    if "subnet_settings" in value:
        return dict(value)
    modules = dict(value)
    return {"subnet_settings": modules, "image_size": modules.pop("image_size", None)}


def subnet_tokens_of(cfg: Mapping[str, Any], space: ElasticSpace) -> List[int]:
    """The one subnet a phase works on: `subnet_settings` (United-Perception's shape: a mapping, or a file with
    `subnet_settings` and `image_size`) or `subnet_tokens`."""
    settings, tokens = cfg["subnet_settings"], cfg["subnet_tokens"]
    if settings not in (None, ""):
        given = _given_settings(cfg, settings)
        return space.encode(given["subnet_settings"], given.get("image_size"))
    if tokens in (None, ""):
        example = ",".join(map(str, space.init_tokens()))
        raise ConfigError(
            f"this phase needs a subnet: -o subnet_tokens={example} ({len(space.range_table())} tokens), or "
            "-o subnet_settings=... (United-Perception's subnet_settings)"
        )
    return check_subnet_tokens(tokens, space)
