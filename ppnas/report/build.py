"""`tools/report.py SAVE_DIR`: the report that fits the folder.

A folder whose history holds candidates (SANAS, the one-shot search, a controller server) gets the token
search's report; one whose history holds FBNet epochs gets the FBNet report. A folder without anything to
report says which kind of folder it is and what to run.
"""

import os
from typing import Any, Dict, Optional

from ppnas.engine.meta import read_meta
from ppnas.errors import ConfigError, PpnasError
from ppnas.history import HISTORY_FILE, History, record_kind
from ppnas.report.fbnet import LUT_JSON, write_fbnet_report
from ppnas.report.search import write_search_report

SUPERNET_STATE = os.path.join("supernet", "state.json")  # a one-shot run's trained supernet


def _nothing_yet(save_dir: str) -> PpnasError:
    """What the folder holds instead of a history, and what to run."""
    meta = read_meta(save_dir) or {}
    config = meta.get("config") or "CONFIG"
    if os.path.isfile(os.path.join(save_dir, SUPERNET_STATE)):
        return PpnasError(
            f"{save_dir} holds a trained one-shot supernet but no search yet: nothing to report; run "
            f"python tools/bignas.py -c {config} --phase search (with -o save_dir={save_dir})"
        )
    if os.path.isfile(os.path.join(save_dir, LUT_JSON)):
        return PpnasError(
            f"{save_dir} holds an FBNet lookup table but no search yet: nothing to report; run "
            f"python tools/fbnet.py -c {config} --phase search"
        )
    return PpnasError(f"no {HISTORY_FILE} in {save_dir}: give the save_dir of a search (nothing to report)")


def write_report(save_dir: str, out_dir: Optional[str] = None, top: int = 5) -> Dict[str, Any]:
    """The report of the search in `save_dir` (into `out_dir`, default save_dir; `top`: candidates listed)."""
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    path = os.path.join(save_dir, HISTORY_FILE)
    if not os.path.isfile(path):
        raise _nothing_yet(save_dir)
    kinds = {record_kind(r) for r in History(path).read()}
    if "epoch" in kinds:
        return write_fbnet_report(save_dir, History(path).read(), read_meta(save_dir), out_dir)
    return write_search_report(save_dir, out_dir, top)
