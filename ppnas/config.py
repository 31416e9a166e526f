"""YAML configs with PaddleDetection-style `_BASE_` inheritance, `-o key=value` overrides and key checks.

A loaded config is a plain dict. The path rule, the same in every tool (docs/config_keys.md): a relative path
written in a YAML file is relative to that file, a relative path typed on the command line (`-o`, or
PaddleSeg's trailing `KEY VALUE` pairs) is relative to the working directory. The folder of the top-level
file is kept under CONFIG_DIR_KEY, and a value typed on the command line is a CommandLineText, so that
`resolve_path` knows which folder a path is relative to. Output folders (`save_dir`) are the exception: they
are relative to the working directory wherever they are written, as in PaddleDetection and PaddleSeg.
"""

import argparse
import difflib
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional

import yaml

from ppnas.errors import ConfigError

BASE_KEY = "_BASE_"
CONFIG_DIR_KEY = "_config_dir_"
TAG_KEY = "name"  # `TrainDataset: !WIDERFaceDataSet {...}` loads as {"name": "WIDERFaceDataSet", ...}


class CommandLineText(str):
    """A text value typed on the command line: as a path, it is relative to the working directory."""


for _dumper in (yaml.SafeDumper, yaml.Dumper):  # a config holding one dumps as plain text
    yaml.add_representer(CommandLineText, lambda dumper, text: dumper.represent_str(str(text)), Dumper=_dumper)


def command_line_value(value: Any) -> Any:
    """`value` as parsed from the command line, its text marked as typed there (see `resolve_path`), also inside a
    list (`-o "tables=[a.txt, b.txt]"`)."""
    if isinstance(value, list):
        return [command_line_value(item) for item in value]
    return CommandLineText(value) if isinstance(value, str) else value


class _TaggedLoader(yaml.SafeLoader):
    """SafeLoader that also reads PaddleDetection's `!ClassName` tags (as a `name` key)."""


def _construct_tagged(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Dict[str, Any]:
    value = loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode) else {}
    return {TAG_KEY: tag_suffix, **value}


_TaggedLoader.add_multi_constructor("!", _construct_tagged)


def _read_yaml(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.load(f, Loader=_TaggedLoader)  # noqa: S506  # SafeLoader + !Tag mappings
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else path
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"YAML syntax error at {where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def merge(base: Dict[str, Any], override: Mapping[str, Any]) -> Dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_config(path: str, _seen: Optional[List[str]] = None) -> Dict[str, Any]:
    """Load `path`, merging its `_BASE_` files first (a string or a list, relative to the file)."""
    path = os.path.abspath(path)
    seen = list(_seen or [])
    if path in seen:
        raise ConfigError(f"_BASE_ cycle: {' -> '.join(seen + [path])}")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    merged: Dict[str, Any] = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        base_cfg = load_config(base_path, seen + [path])
        base_cfg.pop(CONFIG_DIR_KEY, None)
        merged = merge(merged, base_cfg)
    merged = merge(merged, data)
    merged[CONFIG_DIR_KEY] = os.path.dirname(path)
    return merged


def add_override_option(parser: argparse.ArgumentParser, example: str = "key=value a.b=value") -> None:
    """`-o key=value ...`, repeatable: `-o a=1 -o b=2` applies both (argparse's default would keep the last)."""
    parser.add_argument(
        "-o", "--opt", nargs="+", action="extend", default=[], help=f"override config keys: -o {example} (repeatable)"
    )


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """`["a.b=1", "c=[1, 2]"]` -> nested dict; values are parsed as YAML scalars/lists."""
    result: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' has no '=': write -o key=value, e.g. -o search_steps=10")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        try:
            value = number_or_text(yaml.safe_load(raw)) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        value = command_line_value(value)
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


def override_pairs(items: Iterable[str], example: str = "SLIM.NAS_PORT=0") -> List[str]:
    """`-o KEY=VALUE ...` as PaddleSeg's trailing `KEY VALUE` list (for the segmentation config's own parser)."""
    pairs: List[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' has no '=': write -o KEY=VALUE, e.g. -o {example}")
        pairs += [key.strip(), value]
    return pairs


def config_kind(cfg: Mapping[str, Any]) -> str:
    """Which search a loaded config describes: "segmentation" (PaddleSeg-style: a SLIM block or PaddleSeg's
    lowercase `_base_`), "fbnet" (a Supernet block), else "detection"."""
    if "SLIM" in cfg or "_base_" in cfg:
        return "segmentation"
    if "Supernet" in cfg:
        return "fbnet"
    return "detection"


def number_or_text(value: Any) -> Any:
    """YAML 1.1 reads `1.5e7` (no dot or sign in the exponent) as text; users mean a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def check_keys(cfg: Mapping[str, Any], valid: Iterable[str], where: str = "config") -> None:
    """Reject keys not in `valid`, naming the closest valid key and listing them all."""
    valid_set = set(valid) | {CONFIG_DIR_KEY}
    for key in cfg:
        if key in valid_set:
            continue
        names = sorted(k for k in valid_set if k != CONFIG_DIR_KEY)
        close = difflib.get_close_matches(str(key), names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown key '{key}' in {where}{hint}; valid keys: {', '.join(names)}")


def resolve_path(cfg: Mapping[str, Any], path: Optional[str]) -> Optional[str]:
    """A path of a config made absolute: against the config file's folder when it was written in the file,
    against the working directory when it was typed on the command line (a CommandLineText); `~` expanded."""
    if path is None or path == "":
        return path
    base = os.getcwd() if isinstance(path, CommandLineText) else cfg.get(CONFIG_DIR_KEY, os.getcwd())
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, path))
