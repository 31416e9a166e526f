"""The segmentation search's config: a PaddleSeg YAML plus a `SLIM:` block, and `KEY VALUE` overrides.

The YAML is read by PaddleSeg's own `Config` (so `_base_` works as in PaddleSeg). Trailing command-line
pairs override it with the semantics of the original PaddleSeg NAS example (../shared/notes/SEG.md):
values are Python literals ("23333" -> int, "True" -> bool, "-1" -> int, otherwise the string as given),
an odd count is an error and so is a key that is not in the config, the SLIM defaults, or OPTIONAL_KEYS.
Dataset paths (dataset_root, train_path, val_path, test_path) resolve against the config file's folder when
written there and against the working directory when typed on the command line (ppnas.config.resolve_path).
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import ast
import copy
import difflib
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from ppnas.config import CONFIG_DIR_KEY, command_line_value, resolve_path
from ppnas.constraint import Constraint
from ppnas.demo import demo_command
from ppnas.errors import ConfigError, DataError

SLIM_KEY = "SLIM"
SLIM_DEFAULTS: Dict[str, Any] = {
    "NAS_PORT": 23333,
    "NAS_ADDRESS": "",
    "NAS_SEARCH_STEPS": 100,
    "NAS_START_EVAL_EPOCH": 0,
    "NAS_IS_SERVER": True,
    "NAS_SPACE_NAME": "",
    "NAS_KEY": None,
    "NAS_SEED": None,
    "NAS_CLIENT_RETRY_SECONDS": 60.0,
    "NAS_CONSTRAINT_TYPE": "flops",
    "NAS_CONSTRAINT_MAX": None,
    "NAS_CONSTRAINT_MIN": None,
    "NAS_CONSTRAINT_TABLE": None,
    "NAS_CONSTRAINT_MISSING": "error",
}
# Top-level keys PaddleSeg (or the search) reads that a config may leave out but an override may set.
OPTIONAL_KEYS = ("batch_size", "iters", "epochs")
DATASET_BLOCKS = ("train_dataset", "val_dataset", "test_dataset")
DATASET_PATH_KEYS = ("dataset_root", "train_path", "val_path", "test_path")
_SLIM_TYPES: Dict[str, Tuple[type, ...]] = {
    "NAS_PORT": (int,),
    "NAS_ADDRESS": (str,),
    "NAS_SEARCH_STEPS": (int,),
    "NAS_START_EVAL_EPOCH": (int,),
    "NAS_IS_SERVER": (bool,),
    "NAS_SPACE_NAME": (str,),
    "NAS_KEY": (str, type(None)),
    "NAS_SEED": (int, type(None)),
    "NAS_CLIENT_RETRY_SECONDS": (int, float),
    "NAS_CONSTRAINT_TYPE": (str,),
    "NAS_CONSTRAINT_MAX": (int, float, type(None)),
    "NAS_CONSTRAINT_MIN": (int, float, type(None)),
    "NAS_CONSTRAINT_TABLE": (str, type(None)),
    "NAS_CONSTRAINT_MISSING": (str,),
}


@dataclass
class SegConfig:
    """A loaded search config: the PaddleSeg part (no SLIM block) and the SLIM keys (defaults filled)."""

    paddleseg: Dict[str, Any]
    slim: Dict[str, Any]
    config_dir: str
    path: Optional[str] = None

    @property
    def epochs(self) -> Optional[int]:
        return self.paddleseg.get("epochs")

    def constraint(self) -> Constraint:
        """The constraint the NAS_CONSTRAINT_* keys describe (a table path resolves like dataset paths)."""
        s = self.slim
        table = resolve_path({CONFIG_DIR_KEY: self.config_dir}, s["NAS_CONSTRAINT_TABLE"])
        try:
            return Constraint(
                ctype=s["NAS_CONSTRAINT_TYPE"],
                min_constraint=s["NAS_CONSTRAINT_MIN"],
                max_constraint=s["NAS_CONSTRAINT_MAX"],
                table_file=table,
                missing_keys=s["NAS_CONSTRAINT_MISSING"],
            )
        except ConfigError as err:
            raise ConfigError(f"SLIM.NAS_CONSTRAINT_* keys: {err}") from None


def parse_value(text: str) -> Any:
    """A Python literal when `text` is one ("23333", "True", "-1", "[1, 2]"), else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_override_pairs(items: Sequence[str]) -> List[Tuple[str, Any]]:
    """`["SLIM.NAS_PORT", "23333", ...]` -> [("SLIM.NAS_PORT", 23333), ...]."""
    items = list(items)
    for key in items[0::2]:
        if key.startswith("-"):
            raise ConfigError(
                f"Command line options config format error: '{key}' is among the trailing KEY VALUE pairs; "
                "put options before the pairs"
            )
    if len(items) % 2:
        raise ConfigError(
            f"Command line options config format error: KEY VALUE pairs expected, got {len(items)} items; "
            f"the key '{items[-1]}' has no value"
        )
    return [(key, command_line_value(parse_value(value))) for key, value in zip(items[0::2], items[1::2])]


def _known_keys(cfg: Mapping[str, Any], prefix: str = "") -> List[str]:
    keys = []
    for key, value in cfg.items():
        if key == CONFIG_DIR_KEY:
            continue
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, Mapping):
            keys += _known_keys(value, dotted + ".")
    return keys


def apply_overrides(cfg: Dict[str, Any], pairs: Sequence[Tuple[str, Any]]) -> Dict[str, Any]:
    """Set each dotted key of `pairs` in `cfg` (in place); a key must already exist (or be optional)."""
    known = set(_known_keys(cfg)) | set(OPTIONAL_KEYS)
    for key, value in pairs:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"Non-existent config key: {key}{hint}")
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return cfg


def _check_slim(slim: Mapping[str, Any]) -> None:
    for key, value in slim.items():
        types = _SLIM_TYPES[key]
        if isinstance(value, bool) and bool not in types:
            value_ok = False
        else:
            value_ok = isinstance(value, types)
        if not value_ok:
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"SLIM.{key} must be {names}, got {value!r}")
    if slim["NAS_SEARCH_STEPS"] < 1:
        raise ConfigError(f"SLIM.NAS_SEARCH_STEPS must be at least 1, got {slim['NAS_SEARCH_STEPS']}")
    if not 0 <= slim["NAS_PORT"] <= 65535:
        raise ConfigError(f"SLIM.NAS_PORT must be a port number in [0, 65535], got {slim['NAS_PORT']}")
    if not slim["NAS_SPACE_NAME"]:
        raise ConfigError('SLIM.NAS_SPACE_NAME is empty: set it, e.g. SLIM.NAS_SPACE_NAME "MobileNetV2SpaceSeg"')


def _check_schedule(cfg: Mapping[str, Any]) -> None:
    for key in ("epochs", "iters", "batch_size"):
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    if not cfg.get("epochs") and not cfg.get("iters"):
        raise ConfigError("the config sets neither epochs nor iters: set one (each candidate trains that long)")


def resolve_dataset_paths(cfg: Dict[str, Any], config_dir: str) -> None:
    """Make the datasets' relative paths absolute (in place): from `config_dir`, or from the working directory
    when typed on the command line (ppnas.config.resolve_path)."""
    where = {CONFIG_DIR_KEY: config_dir}
    for block in DATASET_BLOCKS:
        dataset = cfg.get(block)
        if isinstance(dataset, dict):
            for key in DATASET_PATH_KEYS:
                if isinstance(dataset.get(key), str):
                    dataset[key] = resolve_path(where, dataset[key])


CITYSCAPES_HINT = (
    "get Cityscapes from https://www.cityscapes-dataset.com (leftImg8bit_trainvaltest.zip and "
    "gtFine_trainvaltest.zip, unzipped there, then cityscapesscripts' createTrainIdLabelImgs for the "
    "*_gtFine_labelTrainIds.png), or try the demo: `{demo}` with configs/demo/cityscape_demo.yaml"
)


def check_datasets(cfg: Mapping[str, Any], where: str = "config") -> None:
    """Stop with the path the config expects and how to get the data, before PaddleSeg reads it (its own
    messages name no path for Cityscapes and would be the first thing a new user sees)."""
    for block in ("train_dataset", "val_dataset"):
        dataset = cfg.get(block)
        if not isinstance(dataset, Mapping) or not isinstance(dataset.get("dataset_root"), str):
            continue
        root = dataset["dataset_root"]
        if dataset.get("type") == "Cityscapes":
            missing = [
                p for p in (root, *(os.path.join(root, d) for d in ("leftImg8bit", "gtFine"))) if not os.path.isdir(p)
            ]
            if missing:
                hint = CITYSCAPES_HINT.format(demo=demo_command("cityscapes", "data/demo_cityscapes"))
                raise DataError(
                    f"{where}: {block}.dataset_root expects Cityscapes in {root}, but {missing[0]} is missing; {hint}"
                )
            continue
        mode = dataset.get("mode", "train")
        list_file = dataset.get(f"{mode}_path")
        for key, path in (("dataset_root", root), (f"{mode}_path", list_file)):
            if isinstance(path, str) and not os.path.exists(path):
                raise DataError(
                    f"{where}: {block}.{key} not found: {path}; generate the demo set with "
                    f"`{demo_command('cityscapes', root)}`, or point {block} at your data"
                )


def split_config(cfg: Mapping[str, Any], overrides: Sequence[str] = (), path: Optional[str] = None) -> SegConfig:
    """A config dict (SLIM block included) + override pairs -> SegConfig, checked and with paths resolved."""
    cfg = copy.deepcopy(dict(cfg))
    config_dir = cfg.pop(CONFIG_DIR_KEY, None) or (os.path.dirname(os.path.abspath(path)) if path else os.getcwd())
    slim_block = cfg.get(SLIM_KEY) or {}
    if not isinstance(slim_block, Mapping):
        raise ConfigError(f"{SLIM_KEY} must be a mapping of {', '.join(SLIM_DEFAULTS)}")
    for key in slim_block:
        if key not in SLIM_DEFAULTS:
            close = difflib.get_close_matches(str(key), list(SLIM_DEFAULTS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"Non-existent config key: {SLIM_KEY}.{key}{hint}")
    cfg[SLIM_KEY] = {**SLIM_DEFAULTS, **slim_block}
    apply_overrides(cfg, parse_override_pairs(overrides))
    slim = cfg.pop(SLIM_KEY)
    _check_slim(slim)
    _check_schedule(cfg)
    resolve_dataset_paths(cfg, config_dir)
    return SegConfig(paddleseg=cfg, slim=slim, config_dir=config_dir, path=path)


def read_paddleseg_yaml(path: str) -> Dict[str, Any]:
    """The dict PaddleSeg's `Config` makes of `path` (its `_base_` chain merged)."""
    from paddleseg.cvlibs import Config

    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        return copy.deepcopy(Config(path).dic)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise ConfigError(f"YAML syntax error at {where}: {getattr(err, 'problem', err)}") from None
    except (RuntimeError, ValueError, FileNotFoundError, TypeError, AttributeError) as err:
        raise ConfigError(f"{path}: PaddleSeg cannot read this config: {err}") from None


def load_seg_config(path: str, overrides: Sequence[str] = ()) -> SegConfig:
    return split_config(read_paddleseg_yaml(path), overrides, path=os.path.abspath(path))


def paddleseg_config(dic: Mapping[str, Any]) -> Any:
    """A fresh PaddleSeg `Config` of `dic` (it pops keys as it builds objects: make one per use)."""
    from paddleseg.cvlibs import Config

    import search_space  # noqa: F401  # registers MobileNetV2SegBackbone in PaddleSeg's BACKBONES, which dic names

    with tempfile.TemporaryDirectory(prefix="ppnas_seg_") as folder:
        path = os.path.join(folder, "config.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(copy.deepcopy(dict(dic)), f, sort_keys=False)
        try:
            cfg = Config(path)
            cfg.check_sync_info()  # num_classes and in_channels shared by model and datasets, as PaddleSeg does
        except (RuntimeError, ValueError, KeyError) as err:
            raise ConfigError(f"PaddleSeg rejects the config: {err}") from None
    return cfg


def iters_for(cfg: Mapping[str, Any], iters_per_epoch: int) -> Tuple[int, int]:
    """(epochs, total iterations): `epochs` wins when set; `iters` alone ends inside the last epoch."""
    if cfg.get("epochs"):
        return int(cfg["epochs"]), int(cfg["epochs"]) * iters_per_epoch
    iters = int(cfg["iters"])
    return math.ceil(iters / iters_per_epoch), iters


def config_with_model(config_path: str, fragment_path: str) -> Dict[str, Any]:
    """The PaddleSeg dict of `config_path` (SLIM dropped, dataset paths resolved) with the fragment's model."""
    dic = read_paddleseg_yaml(config_path)
    dic.pop(SLIM_KEY, None)
    resolve_dataset_paths(dic, os.path.dirname(os.path.abspath(config_path)))
    if not os.path.isfile(fragment_path):
        raise ConfigError(f"model fragment not found: {fragment_path}")
    with open(fragment_path, encoding="utf-8") as f:
        fragment = yaml.safe_load(f) or {}
    if not isinstance(fragment.get("model"), dict) or "backbone" not in fragment["model"]:
        raise ConfigError(f"{fragment_path} has no model: block with a backbone (write it with the search)")
    base = {k: v for k, v in (dic.get("model") or {}).items() if k not in ("backbone", "backbone_indices")}
    dic["model"] = {**base, **fragment["model"]}
    return dic
