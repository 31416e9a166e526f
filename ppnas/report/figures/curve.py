"""search_curve.png: the reward of every rewarded candidate in the order rewarded, and the best so far."""

from typing import Any, Dict, Optional, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ppnas.report.figures.style import FIGURE_INCHES, reward_label, title
from ppnas.report.selection import Record, best_so_far, rewarded


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
    ax.set_ylabel(reward_label(meta))
    figure.suptitle(title(meta, f"search curve ({len(trained)} rewarded candidates)"), y=0.97)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=3, fontsize=9, borderaxespad=0)
    return figure
