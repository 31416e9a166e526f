"""What every report figure shares: size, resolution, titles and the reward axis label."""

from typing import Any, Dict, Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ppnas.report.selection import is_one_shot, search_name

FIGURE_INCHES = (10.0, 6.5)
FIGURE_DPI = 100  # with FIGURE_INCHES: 1000 x 650 pixels, fixed (no tight bbox) so the size is known
REWARD_NAMES = {"detection": "AP@0.5", "segmentation": "mIoU"}


def reward_label(meta: Optional[Dict[str, Any]]) -> str:
    name = REWARD_NAMES.get((meta or {}).get("kind", ""))
    if name and is_one_shot(meta):
        name = f"inherited {name}"
    return f"reward ({name})" if name else "reward"


def title(meta: Optional[Dict[str, Any]], what: str) -> str:
    parts = [search_name(meta), str((meta or {}).get("space") or "")]
    named = ", ".join(part for part in parts if part)
    return f"{named}: {what}" if named else what


def save_figure(figure: Figure, path: str) -> str:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=FIGURE_DPI)
    return path
