"""What every benchmark result carries: the machine it ran on, and where it is saved."""

import json
import os
import pathlib
import time
from typing import Any, Dict, Optional

from latency.engine import cpu_model

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def machine() -> Dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1),  # paddle's CPU math threads
        "load_average_1m": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def save_result(name: str, result: Dict[str, Any], folder: Optional[str] = None) -> pathlib.Path:
    """Print the result as one JSON object and write it to <folder>/<name>.json (default bench/results)."""
    where = pathlib.Path(folder) if folder else RESULTS
    where.mkdir(exist_ok=True)
    path = where / f"{name}.json"
    text = json.dumps(result, indent=2, sort_keys=True)
    path.write_text(text + "\n")
    print(text)
    return path
