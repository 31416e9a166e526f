"""sample_flops.png: the FLOPs (and table latency) distribution of random subnets, the baseline marked."""

from typing import Optional, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ppnas.report.figures.style import FIGURE_INCHES, save_figure
from ppnas.report.selection import Axis, Record, Window
from ppnas.units import count_prefix


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
        ax.axvline(
            baseline[key] / divisor,
            color="tab:red",
            linewidth=2,
            label=f"baseline (init tokens): {baseline[key] / divisor:.3g}",
        )
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
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no fractional ticks
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    figure.suptitle(title)
    return save_figure(figure, path)
