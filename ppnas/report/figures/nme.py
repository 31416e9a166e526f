"""nme_curve.png: an FBNet run's test NME per epoch (search, then retraining) and the search's expected latency."""

from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ppnas.report.figures.style import FIGURE_INCHES, save_figure
from ppnas.report.selection import Record


def plot_nme_curve(epochs: Sequence[Record], retrain: Sequence[Record], path: str) -> str:
    """Search epochs at 1..E (warm-up shaded), retraining epochs after them; expected latency on the right axis."""
    figure = Figure(figsize=FIGURE_INCHES)
    figure.subplots_adjust(top=0.84, bottom=0.1, left=0.09, right=0.9)
    ax = figure.add_subplot(1, 1, 1)
    search_x = [r["epoch"] for r in epochs]
    ax.plot(search_x, [r["nme"] for r in epochs], marker="o", color="tab:blue", label="search: test NME (supernet)")
    warmup = [r["epoch"] for r in epochs if r.get("phase") == "warmup"]
    if warmup:
        ax.axvspan(min(warmup) - 0.5, max(warmup) + 0.5, color="0.92", zorder=0, label="warm-up (weights only)")
    offset = max(search_x, default=0)
    if retrain:
        ax.plot(
            [offset + r["epoch"] for r in retrain],
            [r["nme"] for r in retrain],
            marker="s",
            color="tab:green",
            label="retrain: test NME (derived subnet)",
        )
    ax.set_xlabel("epoch (search, then retraining)")
    norm = next((r["nme_norm"] for r in [*epochs, *retrain] if r.get("nme_norm")), None)
    ax.set_ylabel(f"test NME ({norm} normaliser)" if norm else "test NME")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if epochs:
        unit = epochs[0].get("latency_unit", "")
        twin = ax.twinx()
        twin.plot(
            search_x,
            [r["expected_latency"] for r in epochs],
            linestyle="--",
            color="tab:red",
            label=f"expected latency ({unit})",
        )
        twin.set_ylabel(f"expected latency ({unit})", color="tab:red")
        twin.ticklabel_format(axis="y", useOffset=False)  # values, not "+1.175e2" over offsets
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=2, fontsize=9, borderaxespad=0)
    figure.suptitle("FBNet: test NME per epoch, and the expected latency of the architecture distribution", y=0.97)
    return save_figure(figure, path)
