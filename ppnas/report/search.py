"""The report of a token search (SANAS, the one-shot search): pareto.png, search_curve.png, report.md, the
candidates' config fragments and a table on stdout.

Reads `<save_dir>/history.jsonl` (one client or many) and, when present, `search_meta.json` (kind, space,
config, constraint window and unit, how to write a candidate's config fragment, the commands that train it
fully and export it). Without the metadata there is no window and no commands.
"""

import os
from typing import Any, Dict, List, Optional

from ppnas.engine.meta import META_FILE, read_meta
from ppnas.errors import PpnasError
from ppnas.history import HISTORY_FILE, History
from ppnas.report.figures.curve import search_curve_figure
from ppnas.report.figures.pareto import pareto_figure
from ppnas.report.figures.style import save_figure
from ppnas.report.fragments import write_fragments
from ppnas.report.markdown import CURVE_PNG, PARETO_PNG, render_markdown, status_counts
from ppnas.report.selection import (
    Record,
    Window,
    choose_axis,
    many_clients,
    pareto_front,
    rewarded,
    top_candidates,
)
from ppnas.report.tables import plain_table, table_rows

REPORT_MD = "report.md"


def load_records(save_dir: str) -> List[Record]:
    """The history's complete records; a PpnasError when there is nothing a report could show."""
    path = os.path.join(save_dir, HISTORY_FILE)
    if not os.path.isfile(path):
        raise PpnasError(f"no {HISTORY_FILE} in {save_dir}: give the save_dir of a search (nothing to report)")
    records = History(path).read()
    if not records:
        raise PpnasError(f"{path} holds no complete record yet: nothing to report; wait for the first candidate")
    if not rewarded(records):
        counts = status_counts(records)
        last = records[-1].get("reason")
        raise PpnasError(
            f"{path}: no candidate has been trained yet ({counts['rejected']} rejected, {counts['failed']} failed; "
            f"last reason: {last}): nothing to report"
        )
    return records


def write_search_report(save_dir: str, out_dir: Optional[str] = None, top: int = 5) -> Dict[str, Any]:
    """Write pareto.png, search_curve.png, report.md (and candidate fragments) into `out_dir` (default
    save_dir), print the top rows; return the paths and the selected records."""
    records = load_records(save_dir)
    meta = read_meta(save_dir)
    window = Window.from_meta(meta)
    out_dir = save_dir if out_dir is None else out_dir
    os.makedirs(out_dir, exist_ok=True)
    axis = choose_axis(records, window)
    best = top_candidates(records, top, axis.key, window)
    front = pareto_front(records, axis.key, window)
    fragments = write_fragments(best, meta, out_dir)
    best_one = best[0] if best else None
    pareto = save_figure(pareto_figure(records, axis, window, front, best_one, meta), os.path.join(out_dir, PARETO_PNG))
    curve = save_figure(search_curve_figure(records, meta), os.path.join(out_dir, CURVE_PNG))
    report = os.path.join(out_dir, REPORT_MD)
    with open(report, "w", encoding="utf-8") as f:
        f.write(render_markdown(records, meta, window, axis, best, front, fragments, save_dir))
    many = many_clients(records)
    if window is None:
        where = f"(no {META_FILE}: no constraint known)"
    else:
        where = f"under the constraint ({window.describe()})" if window.bounded else f"({window.describe()})"
    print(f"top {len(best)} candidates {where}:")
    print(plain_table(*table_rows(best, many)) if best else "(none inside the window)")
    print(f"wrote {pareto}, {curve}, {report}" + (f" and {len(fragments)} config fragments" if fragments else ""))
    return {
        "pareto": pareto,
        "search_curve": curve,
        "report": report,
        "fragments": fragments,
        "top": best,
        "front": front,
        "counts": status_counts(records),
    }
