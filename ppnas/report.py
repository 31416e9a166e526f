"""The outcome of a search at a glance: pareto.png, search_curve.png, report.md and a table on stdout.

Reads `<save_dir>/history.jsonl` (either search, one or many clients) and, when present, the runner's
`<save_dir>/search_meta.json` (kind, space, config, constraint window and unit, how to write a candidate's
config fragment and the command that trains it fully). Without the metadata there is no window and no
commands. The selection logic (window, Pareto front, top candidates) is pure functions over records.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import importlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ppnas.errors import ConfigError, PpnasError
from ppnas.history import HISTORY_FILE, History, best_record
from ppnas.units import count_prefix, format_count, format_ms, latency_to_ms

META_FILE = "search_meta.json"
PARETO_PNG = "pareto.png"
CURVE_PNG = "search_curve.png"
REPORT_MD = "report.md"
CANDIDATES_DIR = "candidates"
FIGURE_INCHES = (10.0, 6.5)
FIGURE_DPI = 100  # with FIGURE_INCHES: 1000 x 650 pixels, fixed (no tight bbox) so the size is known
CTYPE_KEYS = {"latency": "latency_ms", "flops": "flops", "params": "params"}
REWARD_NAMES = {"detection": "AP@0.5", "segmentation": "mIoU"}
_REL_TOL = 1e-9  # a bound converted us -> ms must still admit the candidate the search admitted

Record = Dict[str, Any]


# --- search metadata -----------------------------------------------------------------------------
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
    if ctype is not None and ctype not in CTYPE_KEYS:
        raise ConfigError(f"{path}: ctype must be one of {', '.join(CTYPE_KEYS)}, got {ctype!r}")
    for key in ("min_constraint", "max_constraint"):
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{path}: {key} must be a number or null, got {value!r}")
    meta["_path"] = path
    return meta


def bounds_text(low: Optional[float], high: Optional[float], unit: str) -> str:
    """"in [8, 14] MFLOPs", "<= 14 MFLOPs", ">= 8 MFLOPs", or "not bounded" (never an infinite bound)."""
    if low is None and high is None:
        return "not bounded"
    if low is None:
        text = f"<= {high:g}"
    elif high is None:
        text = f">= {low:g}"
    else:
        text = f"in [{low:g}, {high:g}]"
    return f"{text} {unit}".rstrip()


@dataclass(frozen=True)
class Window:
    """The constraint window on one record field; bounds in the record's unit (latency: ms)."""

    key: str
    low: Optional[float]
    high: Optional[float]
    text: str  # as the user wrote it, e.g. "latency in [18000, 57489] us"

    @classmethod
    def from_meta(cls, meta: Optional[Dict[str, Any]]) -> Optional["Window"]:
        if not meta or meta.get("ctype") is None:
            return None
        ctype, low, high = meta["ctype"], meta.get("min_constraint"), meta.get("max_constraint")
        unit = {"flops": "FLOPs", "params": "params"}.get(ctype) or str(meta.get("unit") or "")
        text = f"{ctype} {bounds_text(low, high, unit)}"
        if ctype == "latency":
            if not meta.get("unit"):
                raise ConfigError(f"{meta.get('_path', META_FILE)}: ctype is latency but 'unit' is missing")
            where = f"{meta.get('_path', META_FILE)}: unit"
            low = None if low is None else latency_to_ms(low, meta["unit"], where)
            high = None if high is None else latency_to_ms(high, meta["unit"], where)
        return cls(key=CTYPE_KEYS[ctype], low=low, high=high, text=text)

    def describe(self) -> str:
        """The window as written, and in milliseconds too for latency (the plots' unit)."""
        if self.key != "latency_ms" or not self.bounded:
            return self.text
        return f"{self.text} = {bounds_text(self.low, self.high, 'ms').removeprefix('in ')}"

    def in_axis_unit(self, axis: "Axis") -> str:
        """The window in the unit of the plot's x axis (e.g. MFLOPs), for its legend."""
        if axis.key != self.key or not self.bounded:
            return self.describe()
        scaled = [None if bound is None else bound / axis.divisor for bound in (self.low, self.high)]
        return f"{self.text.split(' ')[0]} {bounds_text(*scaled, axis.unit)}"

    @property
    def bounded(self) -> bool:
        return self.low is not None or self.high is not None

    def admits(self, record: Record) -> bool:
        """Inside [low, high] (inclusive, as Constraint.admits); a record without the value is outside."""
        value = record.get(self.key)
        if value is None:
            return False
        if self.low is not None and value < self.low - abs(self.low) * _REL_TOL:
            return False
        return self.high is None or value <= self.high + abs(self.high) * _REL_TOL


# --- selection: pure functions over history records ------------------------------------------------
def rewarded(records: Sequence[Record], key: Optional[str] = None) -> List[Record]:
    """Trained records with a reward (and a value for `key`), in the order they were rewarded."""
    kept = [r for r in records if r.get("status") == "trained" and r.get("reward") is not None]
    if key is not None:
        kept = [r for r in kept if r.get(key) is not None]
    order = {id(r): i for i, r in enumerate(kept)}
    return sorted(kept, key=lambda r: (r.get("time") or 0.0, order[id(r)]))  # clients interleave by time


def pareto_front(records: Sequence[Record], key: str, window: Optional[Window] = None) -> List[Record]:
    """The trained records no other one beats on both reward (higher) and `key` (lower), cheapest first.

    A record is dominated when another has cost <= and reward >= with one of them strict. Ties: of two
    records with the same cost the lower reward is dominated; of two with the same reward the costlier
    one is; records equal on both (different structures measuring the same) are all kept, in history
    order. Records outside `window` are not candidates at all.
    """
    candidates = [r for r in rewarded(records, key) if window is None or window.admits(r)]
    ordered = sorted(enumerate(candidates), key=lambda item: (item[1][key], -item[1]["reward"], item[0]))
    front: List[Record] = []
    for _, record in ordered:
        if not front or record["reward"] > front[-1]["reward"]:
            front.append(record)
        elif record["reward"] == front[-1]["reward"] and record[key] == front[-1][key]:
            front.append(record)
    return front


def top_candidates(records: Sequence[Record], n: int, key: str, window: Optional[Window] = None) -> List[Record]:
    """The `n` best trained records inside `window`: highest reward, then lowest `key`, then earliest."""
    candidates = [r for r in rewarded(records) if window is None or window.admits(r)]
    position = {id(r): i for i, r in enumerate(candidates)}
    cost = lambda r: r.get(key) if r.get(key) is not None else float("inf")  # noqa: E731
    return sorted(candidates, key=lambda r: (-r["reward"], cost(r), position[id(r)]))[:n]


def best_so_far(rewards: Sequence[float]) -> List[float]:
    best: List[float] = []
    for reward in rewards:
        best.append(reward if not best else max(best[-1], reward))
    return best


# --- the x axis of the Pareto plot ---------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """Which record field is plotted as cost, and how: plotted value = record value / divisor."""

    key: str
    divisor: float
    label: str
    unit: str = ""  # of plotted values: "ms", "MFLOPs", "k params"

    def value(self, record: Record) -> float:
        return record[self.key] / self.divisor


def choose_axis(records: Sequence[Record], window: Optional[Window]) -> Axis:
    """The constrained quantity when there is a window (so it can be shaded); else latency, else FLOPs."""
    if window is not None:
        key = window.key
    elif any(r.get("latency_ms") is not None for r in records):
        key = "latency_ms"
    else:
        key = "flops"
    if key == "latency_ms":
        return Axis(key, 1.0, "latency (ms, latency-table estimate)", "ms")
    largest = max((abs(r[key]) for r in records if r.get(key) is not None), default=1.0)
    divisor, prefix = count_prefix(largest)
    if key == "flops":
        return Axis(key, divisor, f"FLOPs ({prefix or 'count'}, paddle.flops: one multiply-add = 1)", f"{prefix}FLOPs")
    return Axis(key, divisor, f"parameters ({prefix or 'count'})", f"{prefix} params".strip())


# --- figures -------------------------------------------------------------------------------------
def _reward_label(meta: Optional[Dict[str, Any]]) -> str:
    name = REWARD_NAMES.get((meta or {}).get("kind", ""))
    return f"reward ({name})" if name else "reward"


def _title(meta: Optional[Dict[str, Any]], what: str) -> str:
    meta = meta or {}
    parts = [f"{meta['kind']} search" if meta.get("kind") else "", str(meta.get("space") or "")]
    named = ", ".join(part for part in parts if part)
    return f"{named}: {what}" if named else what


def _save(figure: Figure, path: str) -> str:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=FIGURE_DPI)
    return path


def pareto_figure(
    records: Sequence[Record],
    axis: Axis,
    window: Optional[Window],
    front: Sequence[Record],
    best: Optional[Record],
    meta: Optional[Dict[str, Any]],
) -> Figure:
    """Reward against cost; unrewarded draws (rejected, failed) on a strip under the plot."""
    figure = Figure(figsize=FIGURE_INCHES)
    grid = figure.add_gridspec(2, 1, height_ratios=(6, 1), hspace=0.08, top=0.8, bottom=0.09, left=0.11, right=0.97)
    main = figure.add_subplot(grid[0])
    strip = figure.add_subplot(grid[1], sharex=main)
    trained = rewarded(records, axis.key)
    bounded = window is not None and window.bounded
    inside = [r for r in trained if window is None or window.admits(r)]
    outside = [r for r in trained if window is not None and not window.admits(r)]
    main.scatter(
        [axis.value(r) for r in inside],
        [r["reward"] for r in inside],
        s=28,
        color="tab:blue",
        alpha=0.65,
        label=f"trained ({len(inside)})",
        zorder=3,
    )
    if outside:
        main.scatter(
            [axis.value(r) for r in outside],
            [r["reward"] for r in outside],
            s=28,
            facecolors="none",
            edgecolors="tab:gray",
            label=f"trained, outside the window ({len(outside)})",
            zorder=3,
        )
    if front:
        main.plot(
            [axis.value(r) for r in front],
            [r["reward"] for r in front],
            drawstyle="steps-post",
            color="tab:red",
            linewidth=1.5,
            marker="o",
            markersize=7,
            markerfacecolor="none",
            label=f"Pareto front ({len(front)})",
            zorder=4,
        )
    if best is not None and best.get(axis.key) is not None:
        main.scatter(
            [axis.value(best)],
            [best["reward"]],
            marker="*",
            s=260,
            color="gold",
            edgecolors="black",
            label=f"best{' under the constraint' if bounded else ''}: {best['reward']:.4f}",
            zorder=5,
        )
    main.set_ylabel(_reward_label(meta))
    figure.suptitle(_title(meta, f"reward against {axis.label.split(' (')[0]}"), y=0.97)
    main.grid(True, alpha=0.3)
    main.tick_params(labelbottom=False)
    rows = {"rejected": (0, "x", "tab:orange"), "failed": (1, "v", "tab:red")}
    tick_labels = []
    for status, (row, marker, color) in rows.items():
        draws = [r for r in records if r.get("status") == status and r.get(axis.key) is not None]
        strip.scatter([axis.value(r) for r in draws], [row] * len(draws), marker=marker, color=color, s=30, alpha=0.7)
        tick_labels.append(f"{status} ({len(draws)})")
    strip.set_yticks([0, 1], tick_labels)
    strip.set_ylim(-0.6, 1.6)
    strip.set_xlabel(axis.label)
    strip.grid(True, axis="x", alpha=0.3)
    if bounded and window.key == axis.key:
        low, high = main.get_xlim()
        span_low = low if window.low is None else window.low / axis.divisor
        span_high = high if window.high is None else window.high / axis.divisor
        for ax in (main, strip):
            ax.axvspan(span_low, span_high, color="tab:green", alpha=0.12, zorder=0)
            for bound in (window.low, window.high):
                if bound is not None:
                    ax.axvline(bound / axis.divisor, color="tab:green", linestyle="--", linewidth=1)
        main.axvspan(0, 0, color="tab:green", alpha=0.12, label=f"constraint window: {window.in_axis_unit(axis)}")
        low, high = min(low, span_low), max(high, span_high)
        margin = 0.03 * (high - low)  # keep the bounds visible when every candidate sits inside the window
        main.set_xlim(low - margin, high + margin)
    for record in front:
        main.annotate(
            candidate_name(record, many_clients(records)),
            (axis.value(record), record["reward"]),
            xytext=(4, 5),
            textcoords="offset points",
            fontsize=7,
            color="tab:red",
        )
    main.legend(
        loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=2, fontsize=9, borderaxespad=0
    )  # above: hides no point
    return figure


def search_curve_figure(records: Sequence[Record], meta: Optional[Dict[str, Any]]) -> Figure:
    """Reward of every rewarded candidate in the order rewarded, and the best so far."""
    trained = rewarded(records)
    order = list(range(1, len(trained) + 1))
    figure = Figure(figsize=FIGURE_INCHES)
    figure.subplots_adjust(top=0.84, bottom=0.09, left=0.09, right=0.97)
    ax = figure.add_subplot(1, 1, 1)
    clients = sorted({r.get("client", "local") for r in trained})
    for client in clients:
        points = [(x, r["reward"]) for x, r in zip(order, trained) if r.get("client", "local") == client]
        label = "reward" if len(clients) == 1 else f"reward, client {client}"
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=22, alpha=0.7, label=label, zorder=3)
    ax.plot(
        order,
        best_so_far([r["reward"] for r in trained]),
        drawstyle="steps-post",
        color="tab:red",
        linewidth=2,
        label="best so far",
        zorder=4,
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("search step (rewarded candidates, in the order they finished)")
    ax.set_ylabel(_reward_label(meta))
    figure.suptitle(_title(meta, f"search curve ({len(trained)} rewarded candidates)"), y=0.97)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=3, fontsize=9, borderaxespad=0)
    return figure


# --- tables and report.md ------------------------------------------------------------------------
def many_clients(records: Sequence[Record]) -> bool:
    return len({r.get("client", "local") for r in records}) > 1


def candidate_name(record: Record, many: bool) -> str:
    """'step 7', or 'step 7 of host-2' when several clients count steps each on their own."""
    return f"step {record.get('step')}" + (f" of {record.get('client')}" if many else "")


def _fmt(value: Optional[float], divisor: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value / divisor:.{digits}f}"


def table_rows(records: Sequence[Record], many_clients: bool, first: str = "rank") -> Tuple[List[str], List[List[str]]]:
    """Header and rows: `first` (rank, or # for a plain list), step, reward, latency, FLOPs, params, tokens."""
    header = [first, "step"] + (["client"] if many_clients else [])
    header += ["reward", "latency_ms", "MFLOPs", "params_k", "tokens"]
    rows = []
    for rank, r in enumerate(records, start=1):
        row = [str(rank), str(r.get("step"))] + ([str(r.get("client"))] if many_clients else [])
        row += [f"{r['reward']:.4f}", _fmt(r.get("latency_ms")), _fmt(r.get("flops"), 1e6, 1)]
        row += [_fmt(r.get("params"), 1e3, 1), ",".join(str(t) for t in r.get("tokens", []))]
        rows.append(row)
    return header, rows


def plain_table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    return "\n".join(lines)


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def structure_lines(structure: Dict[str, Any]) -> List[str]:
    """One `key: value` line per entry, values in JSON flow style (valid YAML, and short)."""
    return [f"{key}: {json.dumps(value)}" for key, value in structure.items()]


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


def train_command(meta: Dict[str, Any], fragment: str) -> str:
    """The runner's hint with {fragment} (absolute: the command may run in another folder), {stem} (that
    path without .yml) and {name} (the file name without .yml) filled in; may span lines."""
    path = os.path.abspath(fragment)
    stem = os.path.splitext(path)[0]
    hint = str(meta["full_train_hint"])
    return hint.replace("{fragment}", path).replace("{stem}", stem).replace("{name}", os.path.basename(stem))


def _counts(records: Sequence[Record]) -> Dict[str, int]:
    return {
        status: sum(1 for r in records if r.get("status") == status) for status in ("trained", "rejected", "failed")
    }


def _deploy_lines(records: Sequence[Record], meta: Optional[Dict[str, Any]], many: bool) -> List[str]:
    """The command that exports the candidate whose weights the search saved (the best rewarded one)."""
    best = best_record(list(records))
    if not meta or not meta.get("export_hint") or best is None:
        return []
    return [
        "## Deploy",
        "",
        f"The search saved the weights of its best candidate ({candidate_name(best, many)}, reward "
        f"{best['reward']:.4f}). Export it for Paddle Inference, with its deploy config (add `--onnx` for ONNX):",
        "",
        "```",
        str(meta["export_hint"]),
        "```",
        "",
    ]


def render_markdown(
    records: Sequence[Record],
    meta: Optional[Dict[str, Any]],
    window: Optional[Window],
    axis: Axis,
    top: Sequence[Record],
    front: Sequence[Record],
    fragments: Sequence[str],
    save_dir: str,
) -> str:
    counts = _counts(records)
    clients = sorted({str(r.get("client", "local")) for r in records})
    many = many_clients(records)
    title = f"# NAS report: {meta.get('kind', '')} search, {meta.get('space', '')}" if meta else "# NAS report"
    lines = [title, "", f"- save_dir: `{save_dir}`"]
    if meta and meta.get("config"):
        lines.append(f"- config: `{meta['config']}`")
    if window is not None:
        lines.append(f"- constraint: {window.describe()}")
    else:
        lines.append(f"- constraint: unknown (no {META_FILE} in save_dir): every trained candidate is ranked")
    lines.append(
        f"- candidates: {counts['trained']} trained, {counts['rejected']} rejected by the constraint, "
        f"{counts['failed']} failed" + (f"; clients: {', '.join(clients)}" if many else "")
    )
    lines += ["", f"![Pareto front]({PARETO_PNG})", "", f"![Search curve]({CURVE_PNG})", ""]
    lines += [f"## Top {len(top)} candidates under the constraint", ""]
    if not top:
        lines.append("No trained candidate lies inside the constraint window.")
    else:
        lines += [markdown_table(*table_rows(top, many)), ""]
    for rank, record in enumerate(top, start=1):
        lines += [f"### {rank}. {candidate_name(record, many)}", ""]
        measured = [f"reward {record['reward']:.4f}"]
        if record.get("latency_ms") is not None:
            measured.append(format_ms(record["latency_ms"]))
        measured += [format_count(record.get("flops"), "FLOPs"), format_count(record.get("params"), "params")]
        measured.append(f"trained in {record.get('seconds', 0.0):.0f} s")
        lines.append(", ".join(measured) + f"; tokens `{record.get('tokens')}`")
        lines += ["", "```yaml", *structure_lines(record.get("structure") or {}), "```", ""]
        if rank <= len(fragments):
            lines += ["Train it fully:", "", "```bash", train_command(meta, fragments[rank - 1]), "```", ""]
    lines += _deploy_lines(records, meta, many)
    lines += [
        "## Pareto front",
        "",
        f"Trained candidates inside the window that no other beats on both reward and {axis.key}, cheapest first.",
        "",
    ]
    lines += [markdown_table(*table_rows(front, many, first="#")), ""] if front else ["(empty)", ""]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        lines += ["## Failed candidates", ""]
        lines += [f"- tokens `{r.get('tokens')}`: {r.get('reason')}" for r in failed] + [""]
    return "\n".join(lines)


# --- the whole report ------------------------------------------------------------------------------
def load_records(save_dir: str) -> List[Record]:
    """The history's complete records; a PpnasError when there is nothing a report could show."""
    path = os.path.join(save_dir, HISTORY_FILE)
    if not os.path.isfile(path):
        raise PpnasError(f"no {HISTORY_FILE} in {save_dir}: give the save_dir of a search (nothing to report)")
    records = History(path).read()
    if not records:
        raise PpnasError(f"{path} holds no complete record yet: nothing to report; wait for the first candidate")
    if not rewarded(records):
        counts = _counts(records)
        last = records[-1].get("reason")
        raise PpnasError(
            f"{path}: no candidate has been trained yet ({counts['rejected']} rejected, {counts['failed']} failed; "
            f"last reason: {last}): nothing to report"
        )
    return records


def write_report(save_dir: str, out_dir: Optional[str] = None, top: int = 5) -> Dict[str, Any]:
    """Write pareto.png, search_curve.png, report.md (and candidate fragments) into `out_dir` (default
    save_dir), print the top rows; return the paths and the selected records."""
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
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
    pareto = _save(pareto_figure(records, axis, window, front, best_one, meta), os.path.join(out_dir, PARETO_PNG))
    curve = _save(search_curve_figure(records, meta), os.path.join(out_dir, CURVE_PNG))
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
        "counts": _counts(records),
    }


# --- FBNet: choice probabilities over epochs -------------------------------------------------------
def plot_choice_probabilities(
    records: Sequence[Record], layer_names: Sequence[str], candidates: Sequence[Sequence[str]], path: str
) -> str:
    """One row per searched layer: softmax(alpha) of each candidate after every epoch (FBNet records),
    the legend beside the row so no line is hidden; the warm-up epochs shaded."""
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in records]
    warmup = [r["epoch"] for r in records if r.get("phase") == "warmup"]
    count = len(layer_names)
    figure = Figure(figsize=(FIGURE_INCHES[0], 1.0 + 2.0 * count))
    figure.subplots_adjust(
        top=1 - 0.7 / (1.0 + 2.0 * count), bottom=0.45 / (1.0 + 2.0 * count), left=0.08, right=0.76, hspace=0.45
    )
    for layer, (name, names) in enumerate(zip(layer_names, candidates)):
        ax = figure.add_subplot(count, 1, layer + 1)
        final = records[-1]["probabilities"][layer]
        chosen = max(range(len(final)), key=final.__getitem__)
        for c, candidate in enumerate(names):
            values = [r["probabilities"][layer][c] for r in records]
            ax.plot(
                epochs,
                values,
                marker="." if len(epochs) <= 30 else None,
                linewidth=2.4 if c == chosen else 1.0,
                label=f"{candidate} (chosen)" if c == chosen else candidate,
                zorder=3 if c == chosen else 2,
            )
        if warmup:
            ax.axvspan(min(warmup) - 0.5, max(warmup) + 0.5, color="0.92", zorder=0)
        ax.set_title(name, fontsize=10, loc="left")
        ax.set_ylabel("probability", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_xlabel("epoch", fontsize=9)
    shade = " (grey: warm-up, weights only)" if warmup else ""
    figure.suptitle(f"FBNet choice probabilities, softmax(alpha), per searched layer{shade}", y=0.995)
    return _save(figure, path)


def plot_sample_distribution(
    samples: Sequence[Record], baseline: Record, window: Optional[Window], title: str, path: str
) -> str:
    """Histograms of FLOPs (and table latency, when measured) of sampled subnets, the baseline marked.

    `samples` and `baseline` carry `flops` and `latency_ms` (None without a table), as history records do.
    """
    panels = [("flops", "FLOPs")] + ([("latency_ms", "latency (ms)")] if baseline.get("latency_ms") is not None else [])
    figure = Figure(figsize=FIGURE_INCHES)
    figure.subplots_adjust(top=0.86, bottom=0.1, left=0.08, right=0.97, wspace=0.25)
    for index, (key, label) in enumerate(panels, start=1):
        ax = figure.add_subplot(1, len(panels), index)
        values = [float(s[key]) for s in samples if s.get(key) is not None]
        divisor, prefix = count_prefix(max(values)) if key == "flops" else (1.0, "")
        ax.hist([v / divisor for v in values], bins=60, color="tab:blue", alpha=0.75, label=f"{len(values)} subnets")
        ax.axvline(baseline[key] / divisor, color="tab:red", linewidth=2,
                   label=f"baseline (init tokens): {baseline[key] / divisor:.3g}")
        if window is not None and window.bounded and window.key == key:
            low, high = ax.get_xlim()
            # a far bound (an open window written as [0, 1e9]) must not squash the histogram into one bar
            near = [b / divisor for b in (window.low, window.high) if b is not None]
            near = [b for b in near if low - (high - low) <= b <= high + (high - low)]
            span_low = low if window.low is None else max(window.low / divisor, low - (high - low))
            span_high = high if window.high is None else min(window.high / divisor, high + (high - low))
            axis = Axis(key, divisor, label, unit=f"{prefix}FLOPs" if key == "flops" else "ms")
            label_text = f"constraint window: {window.in_axis_unit(axis)}"
            ax.axvspan(span_low, span_high, color="tab:green", alpha=0.12, label=label_text)
            ax.set_xlim(min([low] + near), max([high] + near))
        ax.set_xlabel(f"{prefix}{label}" if key == "flops" else label)
        ax.set_ylabel("subnets")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    figure.suptitle(title)
    return _save(figure, path)
