"""choice_probabilities.png: FBNet's softmax(alpha) of each candidate of each searched layer, epoch by epoch."""

from typing import List, Sequence, Tuple

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ppnas.report.figures.style import FIGURE_INCHES, save_figure
from ppnas.report.selection import Record

GREYS = {7, 14, 15}  # tab20's greys (tab10's grey is its 7): the warm-up band is grey


def candidate_colours(count: int) -> List[Tuple[float, ...]]:
    """`count` distinct colours, none of them grey: tab10's nine, then the lighter tab20 shades."""
    tab10, tab20 = colormaps["tab10"].colors, colormaps["tab20"].colors
    palette = [c for i, c in enumerate(tab10) if i != 7] + [c for i, c in enumerate(tab20) if i % 2 and i not in GREYS]
    return [palette[i % len(palette)] for i in range(count)]


def plot_choice_probabilities(
    records: Sequence[Record], layer_names: Sequence[str], candidates: Sequence[Sequence[str]], path: str
) -> str:
    """One row per searched layer: softmax(alpha) of each candidate after every epoch (FBNet records),
    the legend beside the row so no line is hidden; the warm-up epochs shaded."""
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
        colours = candidate_colours(len(names))
        for c, candidate in enumerate(names):
            values = [r["probabilities"][layer][c] for r in records]
            ax.plot(
                epochs,
                values,
                marker="." if len(epochs) <= 30 else None,
                color=colours[c],
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
    return save_figure(figure, path)
