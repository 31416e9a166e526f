"""fronts.png: one panel per device table, side by side: every evaluated subnet (reward against that table's latency),
the table's Pareto front, the budgets as dashed lines and the subnet chosen under each (a star)."""

from typing import Any, Dict, List, Mapping, Sequence, Tuple

from matplotlib.figure import Figure

from ppnas.report.figures.style import FIGURE_INCHES

PANEL_INCHES = 4.6  # width of one table's panel; the figure is at least FIGURE_INCHES wide


def fronts_figure(
    rows: Sequence[Mapping[str, Any]], devices: Sequence[Any], tables: Mapping[str, Dict[str, Any]], metric: str
) -> Figure:
    """`rows`: evaluated subnets (`latencies_ms` by table name, `reward`); `tables`: fronts.json's per-table part;
    `metric`: the reward's name (AP@0.5, mIoU)."""
    width = max(FIGURE_INCHES[0], PANEL_INCHES * len(devices))
    figure = Figure(figsize=(width, FIGURE_INCHES[1]))
    axes = figure.subplots(1, len(devices), squeeze=False, sharey=True)[0]
    for panel, device in zip(axes, devices):
        table = tables[device.name]
        panel.scatter(
            [r["latencies_ms"][device.name] for r in rows],
            [r["reward"] for r in rows],
            s=14,
            color="tab:gray",
            alpha=0.45,
            label=f"evaluated ({len(rows)})",
        )
        front = table["front"]
        panel.plot(
            [r["latency_ms"] for r in front],
            [r["reward"] for r in front],
            drawstyle="steps-post",
            color="tab:red",
            marker="o",
            markerfacecolor="none",
            label=f"Pareto front ({len(front)})",
        )
        chosen: Dict[Tuple[int, ...], List[float]] = {}  # one star per shipped subnet, naming all its budgets
        for entry in table["budgets"]:
            panel.axvline(entry["budget_ms"], color="tab:blue", linestyle="--", linewidth=1)
            if entry["subnet"] is not None:
                chosen.setdefault(tuple(entry["subnet"]["tokens"]), []).append(entry["budget_ms"])
        for row in front:
            budgets = chosen.get(tuple(row["tokens"]))
            if budgets:
                panel.scatter([row["latency_ms"]], [row["reward"]], marker="*", s=180, color="tab:blue", zorder=5)
                text = "≤ " + ", ".join(f"{b:g}" for b in budgets) + " ms"
                panel.annotate(
                    text, (row["latency_ms"], row["reward"]), fontsize=8, xytext=(6, -12), textcoords="offset points"
                )
        panel.set_title(f"{device.name}", fontsize=10)
        panel.set_xlabel("latency on this table (ms)")
        panel.grid(alpha=0.3)
    axes[0].set_ylabel(f"inherited {metric}")
    axes[0].legend(loc="lower right", fontsize=8)
    budgeted = any(table["budgets"] for table in tables.values())
    stars = " (stars: the subnet shipped under each dashed budget)" if budgeted else ""
    figure.suptitle(f"one supernet, one Pareto front per device{stars}")
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    return figure
