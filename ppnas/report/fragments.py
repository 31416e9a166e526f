"""One config fragment per top candidate under `<out_dir>/candidates/`, written by the search's own task."""

import importlib
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence

from ppnas.errors import ConfigError
from ppnas.report.selection import Record

CANDIDATES_DIR = "candidates"


def _fragment_writer(meta: Dict[str, Any]) -> Callable[[Dict[str, Any], str], Any]:
    spec = meta["fragment_writer"]
    module_name, _, function_name = str(spec).partition(":")
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(
            f"{meta['_path']}: fragment_writer {spec!r} cannot be loaded ({err}); expected 'module:function'"
        ) from None


def write_fragments(records: Sequence[Record], meta: Optional[Dict[str, Any]], out_dir: str) -> List[str]:
    """One config fragment per top candidate under `<out_dir>/candidates/`, by the runner's writer."""
    if not meta or not meta.get("fragment_writer") or not meta.get("full_train_hint"):
        return []
    writer = _fragment_writer(meta)
    folder = os.path.join(out_dir, CANDIDATES_DIR)
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):  # a previous report with a larger --top must not leave stale ranks
        if re.fullmatch(r"rank\d+_.*\.yml", old):
            os.remove(os.path.join(folder, old))
    paths = []
    for rank, record in enumerate(records, start=1):
        client = re.sub(r"[^A-Za-z0-9_.-]", "_", str(record.get("client", "local")))
        path = os.path.join(folder, f"rank{rank}_{client}_step{record.get('step')}.yml")
        writer(record.get("structure") or {}, path)
        paths.append(path)
    return paths
