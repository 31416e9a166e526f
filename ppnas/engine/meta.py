"""`<save_dir>/search_meta.json`: what defines a search (checked on -r) and what its report needs to know.

The `search` block holds what makes a search this search (space and its options, range table, init tokens,
annealing settings, constraint type, window and table content, input shape); resuming with any of it changed
would mix two searches, so `check_same_search` refuses it and names each difference (docs/search.md).
"""

import importlib
import inspect
import json
import logging
import os
from dataclasses import asdict
from typing import Any, Dict, Optional, Sequence

from paddleslim.nas.search_space.search_space_base import SearchSpaceBase

from ppnas.constraint import CTYPES, Constraint
from ppnas.engine.options import SearchOptions
from ppnas.errors import ConfigError
from ppnas.storage import atomic_write_json, content_hash

_logger = logging.getLogger(__name__)

META_FILE = "search_meta.json"
ADDED_LATER = ("sampler", "traverse_stride")  # not checked against a search recorded before they were
MAY_CHANGE = (
    "search_steps and training settings (max_iters, datasets, readers, optimizer, learning rate, seed, "
    "max_rejects, max_failures, device)"
)


def read_meta(save_dir: str) -> Optional[Dict[str, Any]]:
    """`<save_dir>/search_meta.json`, or None when the runner wrote none."""
    path = os.path.join(save_dir, META_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno} is not valid JSON ({err.msg}): fix or delete the file") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(meta).__name__}")
    ctype = meta.get("ctype")
    if ctype is not None and ctype not in CTYPES:
        raise ConfigError(f"{path}: ctype must be one of {', '.join(CTYPES)}, got {ctype!r}")
    for key in ("min_constraint", "max_constraint"):
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{path}: {key} must be a number or null, got {value!r}")
    meta["_path"] = path
    return meta


def search_definition(
    options: SearchOptions, constraint: Constraint, space: Any, input_shape: Sequence[int]
) -> Dict[str, Any]:
    """What makes a search this search: resuming it with any of these changed would mix two searches.

    `space` is the search space instance (the task's, or one a controller server builds); `input_shape` the
    image the constraint measures.
    """
    base = inspect.signature(SearchSpaceBase.__init__).parameters
    own = [name for name in inspect.signature(type(space).__init__).parameters if name not in base]
    table = f"sha256 {content_hash(constraint.table_file)}" if constraint.table_file else None
    definition = {
        "kind": options.kind,
        "search_space": options.space_name,
        **{name: getattr(space, name) for name in own if hasattr(space, name)},  # kernel_choices, output_stride
        "range_table": space.range_table(),
        "init_tokens": options.init_tokens or space.init_tokens(),
        "init_temperature": options.init_temperature,
        "reduce_rate": options.reduce_rate,
        "Constraint.ctype": constraint.ctype,
        "Constraint.min_constraint": constraint.min_constraint,
        "Constraint.max_constraint": constraint.max_constraint,
        "Constraint.table_file (content)": table,
        "input_shape": list(input_shape),
    }
    if options.sampler != "sanas":  # the one-shot search's random and traverse modes
        definition["sampler"] = options.sampler
        if options.sampler == "traverse":
            definition["traverse_stride"] = options.traverse_stride
    return json.loads(json.dumps(definition, default=str))  # as search_meta.json gives it back


def _recorded_definition(meta: Dict[str, Any]) -> Dict[str, Any]:
    """The definition a save_dir recorded; from the fields of a search_meta.json written before there was one."""
    if "search" in meta:
        return meta["search"]
    options = meta.get("options", {})
    older = {
        "kind": meta.get("kind"),
        "search_space": meta.get("space"),
        "init_tokens": options.get("init_tokens"),  # None: the space's own, which that file does not say
        "init_temperature": options.get("init_temperature"),
        "reduce_rate": options.get("reduce_rate"),
        "Constraint.ctype": meta.get("ctype"),
        "Constraint.min_constraint": meta.get("min_constraint"),
        "Constraint.max_constraint": meta.get("max_constraint"),
        "input_shape": meta.get("input_shape"),
    }
    return {key: value for key, value in older.items() if value is not None}


def check_same_search(save_dir: str, definition: Dict[str, Any]) -> None:
    """-r continues the search recorded in save_dir, or stops with one line naming every difference."""
    path = os.path.join(save_dir, META_FILE)
    if not os.path.isfile(path):
        _logger.warning("%s has no %s: cannot check that the config defines the same search", save_dir, META_FILE)
        return
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    recorded = _recorded_definition(meta)
    keys = {**recorded, **definition} if "search" in meta else recorded  # an older file: what it recorded
    keys = {key: None for key in keys if key in recorded or key not in ADDED_LATER}
    differences = [
        f"{key} is {json.dumps(definition.get(key))} in the config, {json.dumps(recorded.get(key))} in the search"
        for key in keys
        if recorded.get(key) != definition.get(key)
    ]
    if differences:
        raise ConfigError(
            f"-r {save_dir} holds another search (see {path}): {'; '.join(differences)}. Only {MAY_CHANGE} may "
            f"change on resume: set the keys above back, or start a new search with another save_dir"
        )


def write_meta(
    options: SearchOptions,
    constraint: Constraint,
    task_module: str,
    input_shape: Sequence[int],
    definition: Dict[str, Any],
    weights: bool = True,
) -> None:
    """`<save_dir>/search_meta.json`, what the report needs to know of the search (see ppnas/report/).

    Written by the searching process, and by a controller server that trains nothing itself (it names the
    task's module, whose fragment writer and training hint the report uses, without building the task, and
    `weights` False: it saves no model, so the report gives no export command).
    """
    module = importlib.import_module(task_module)
    export_hint = getattr(module, "EXPORT_HINT", "") if weights else ""
    meta: Dict[str, Any] = {
        "kind": options.kind,
        "space": options.space_name,
        "config": os.path.abspath(options.config_path),
        "ctype": constraint.ctype,
        "min_constraint": constraint.min_constraint,
        "max_constraint": constraint.max_constraint,
        "unit": constraint.window_text().split("]")[-1].strip(),
        "input_shape": list(input_shape),
        "fragment_writer": f"{module.__name__}:write_fragment",
        "full_train_hint": getattr(module, "FULL_TRAIN_HINT", "").replace("{config}", options.config_path),
        "export_hint": export_hint.replace("{config}", options.config_path).replace("{save_dir}", options.save_dir),
        "options": asdict(options),
        "search": definition,
    }
    atomic_write_json(os.path.join(options.save_dir, META_FILE), meta)


def write_run_meta(save_dir: str, kind: str, strategy: str, config_path: str, export_hint: str) -> str:
    """search_meta.json of a run that is not a token search (FBNet): what `tools/report.py` needs to name its
    task, strategy, config and export command."""
    meta = {
        "kind": kind,
        "strategy": strategy,
        "config": os.path.abspath(config_path),
        "export_hint": export_hint.replace("{config}", config_path),
    }
    return atomic_write_json(os.path.join(save_dir, META_FILE), meta)
