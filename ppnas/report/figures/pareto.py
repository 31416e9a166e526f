"""pareto.png: reward against the constrained cost, the Pareto front and the best candidate; rejected and
failed draws, faint, on a strip under the plot; the constraint window shaded. With a window, the x axis shows
its neighbourhood (and every trained candidate), not every rejected draw: a one-shot search rejects draws far
outside it by the hundred, and they would take the width the candidates need."""

from typing import Any, Dict, Optional, Sequence, Tuple

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ppnas.report.figures.style import FIGURE_INCHES, reward_label, title
from ppnas.report.selection import Axis, Record, Window, candidate_name, is_one_shot, many_clients, rewarded

UNREWARDED_ROWS = {"rejected": (0, "x", "tab:orange"), "failed": (1, "v", "tab:red")}  # status: row, marker, colour
NEIGHBOURHOOD = 0.5  # the view extends this share of the window's width beyond each bound


def _trained_points(main: Axes, records: Sequence[Record], axis: Axis, window: Optional[Window], word: str) -> None:
    """Trained (one-shot: evaluated) candidates: filled inside the window, hollow outside it."""
    trained = rewarded(records, axis.key)
    inside = [r for r in trained if window is None or window.admits(r)]
    outside = [r for r in trained if window is not None and not window.admits(r)]
    main.scatter(
        [axis.value(r) for r in inside],
        [r["reward"] for r in inside],
        s=28,
        color="tab:blue",
        alpha=0.65,
        label=f"{word} ({len(inside)})",
        zorder=3,
    )
    if outside:
        main.scatter(
            [axis.value(r) for r in outside],
            [r["reward"] for r in outside],
            s=28,
            facecolors="none",
            edgecolors="tab:gray",
            label=f"{word}, outside the window ({len(outside)})",
            zorder=3,
        )


def _front_line(main: Axes, front: Sequence[Record], axis: Axis, many: bool) -> None:
    """The Pareto front as a staircase, each point named."""
    if not front:
        return
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
    for record in front:
        main.annotate(
            candidate_name(record, many),
            (axis.value(record), record["reward"]),
            xytext=(4, 5),
            textcoords="offset points",
            fontsize=7,
            color="tab:red",
        )


def _best_star(main: Axes, best: Optional[Record], axis: Axis, bounded: bool) -> None:
    if best is None or best.get(axis.key) is None:
        return
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


def _unrewarded_strip(strip: Axes, records: Sequence[Record], axis: Axis, view: Optional[Tuple[float, float]]) -> None:
    """Rejected and failed draws, faint, one row each, at their cost; those beyond the view counted."""
    tick_labels, beyond = [], []
    for status, (row, marker, color) in UNREWARDED_ROWS.items():
        draws = [r for r in records if r.get("status") == status and r.get(axis.key) is not None]
        strip.scatter([axis.value(r) for r in draws], [row] * len(draws), marker=marker, color=color, s=18, alpha=0.4)
        tick_labels.append(f"{status} ({len(draws)})")
        off = 0 if view is None else sum(not view[0] <= axis.value(r) <= view[1] for r in draws)
        beyond += [f"{off} {status}"] if off else []
    strip.set_yticks([0, 1], tick_labels)
    strip.set_ylim(-0.6, 1.6)
    strip.set_xlabel(axis.label + (f";  beyond the view: {', '.join(beyond)}" if beyond else ""))
    strip.grid(True, axis="x", alpha=0.3)


def _view(records: Sequence[Record], axis: Axis, window: Window) -> Tuple[float, float]:
    """The window's neighbourhood on the x axis, widened to every trained candidate."""
    values = [axis.value(r) for r in rewarded(records, axis.key)] or [0.0]
    low = min(values) if window.low is None else window.low / axis.divisor
    high = max(values) if window.high is None else window.high / axis.divisor
    pad = NEIGHBOURHOOD * (high - low) or 0.05 * abs(high) or 1.0
    return min([low - pad] + values), max([high + pad] + values)


def _shade_window(main: Axes, strip: Axes, window: Window, axis: Axis, view: Tuple[float, float]) -> None:
    """The window shaded on both axes, its bounds dashed; the view set."""
    low, high = view
    span_low = low if window.low is None else window.low / axis.divisor
    span_high = high if window.high is None else window.high / axis.divisor
    for ax in (main, strip):
        ax.axvspan(span_low, span_high, color="tab:green", alpha=0.12, zorder=0)
        for bound in (window.low, window.high):
            if bound is not None:
                ax.axvline(bound / axis.divisor, color="tab:green", linestyle="--", linewidth=1)
    main.axvspan(0, 0, color="tab:green", alpha=0.12, label=f"constraint window: {window.in_axis_unit(axis)}")
    main.set_xlim(low, high)


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
    grid = figure.add_gridspec(2, 1, height_ratios=(6, 1), hspace=0.08, top=0.8, bottom=0.09, left=0.12, right=0.97)
    main = figure.add_subplot(grid[0])
    strip = figure.add_subplot(grid[1], sharex=main)
    bounded = window is not None and window.bounded
    _trained_points(main, records, axis, window, "evaluated" if is_one_shot(meta) else "trained")
    _front_line(main, front, axis, many_clients(records))
    _best_star(main, best, axis, bounded)
    main.set_ylabel(reward_label(meta))
    figure.suptitle(title(meta, f"reward against {axis.label.split(' (')[0]}"), y=0.97)
    main.grid(True, alpha=0.3)
    main.tick_params(labelbottom=False)
    view = _view(records, axis, window) if bounded and window.key == axis.key else None
    _unrewarded_strip(strip, records, axis, view)
    if view is not None:
        _shade_window(main, strip, window, axis, view)
    # the legend above the plot: it hides no point
    main.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=2, fontsize=9, borderaxespad=0)
    return figure
