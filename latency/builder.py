"""Build a latency table for a search space on this machine: each distinct op alone, in the engine's format.

Three steps, the same whether the device is this machine or another one (see docs/latency.md):
1. export: one op model per distinct key of the sampled candidates, at the key's shapes, plus a manifest
   (latency/opmodels.py);
2. time: the device timer (latency/engines/time_ops.py, here run in this process) times each op alone;
   how, and why (a burst of load, or one predictor's buffer placement, made a 3x3 conv up to 5x slower
   here), is in its docstring: warm-up, median of repeats, min over interleaved passes with fresh sessions,
   sweeps minutes apart, fixed-cost (or prefix) subtraction, re-timing of ops below their reference,
   thread CPU time with 1 thread;
3. import: the timings become table entries (latency/timings.py) with the settings in the header.
`build_table` does all three in a work folder beside the table (`<table>.ops`): a killed build resumes
where it stopped, and a table is extended only with the settings it was built with.
"""

import logging
import os
import shutil
from typing import Any, Dict, Iterable, List, Optional, Sequence

import paddle
from tqdm import tqdm

from latency.engine import MODEL_PREFIX, EngineSettings, device_name
from latency.engines import get_engine, timer_errors
from latency.engines.time_ops import Timing, min_of_medians, opener, time_folder
from latency.opkeys import trace_ops
from latency.opmodels import export_ops
from latency.table import LatencyTable
from latency.timings import check_extends, import_timings

_logger = logging.getLogger(__name__)

WORK_SUFFIX = ".ops"  # <table>.ops: the op models and timings of a build in progress


def collect_ops(models: Iterable[paddle.nn.Layer], input_shape: Sequence[int]) -> Dict[str, Dict[str, Any]]:
    """Distinct keys (in first-seen order) of every op the models run, with the spec to rebuild each."""
    found: Dict[str, Dict[str, Any]] = {}
    for model in models:
        for record in trace_ops(model, input_shape):
            if record.key is not None and record.key not in found:
                found[record.key] = record.spec
    return found


class _Bars:
    """One tqdm bar per sweep, fed by the timer's progress callback."""

    def __init__(self, sweeps: int, disable: bool) -> None:
        self.sweeps, self.disable = sweeps, disable
        self.sweep, self.bar = 0, None

    def __call__(self, sweep: int, done: int, total: int) -> None:
        if sweep != self.sweep:
            self.close()
            self.sweep = sweep
            desc = f"timing ops ({sweep}/{self.sweeps})"
            self.bar = tqdm(total=total, initial=done, desc=desc, unit="op", disable=self.disable)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def build_table(
    ops: Dict[str, Dict[str, Any]],
    path: str,
    settings: EngineSettings,
    progress: bool = True,
    chunk: int = 32,
    sweeps: int = 2,
    table_info: Optional[Dict[str, Any]] = None,
) -> LatencyTable:
    """Time every key of `ops` that the table at `path` lacks with `settings.engine` (see the module
    docstring) and add them to it; `table_info` (space, input shape, ...) goes into the manifest."""
    device = device_name(settings)
    if os.path.exists(path):
        check_extends(LatencyTable.load(path), settings.engine, device, settings.header())
    present = LatencyTable.load(path).entries if os.path.exists(path) else {}
    todo = {key: spec for key, spec in ops.items() if key not in present}
    _logger.info("%s: %d keys already measured, %d to measure", path, len(ops) - len(todo), len(todo))
    if not todo:
        return LatencyTable.load(path) if os.path.exists(path) else _empty_table(path, settings, device)
    work = f"{path}{WORK_SUFFIX}"
    manifest = export_ops(todo, work, settings, table_info or {}, replace=True)
    timing = settings.timing(sweeps)
    timing.chunk = chunk
    bars = _Bars(sweeps, disable=not progress)
    with timer_errors():
        timings = time_folder(work, timing=timing, device=device, progress=bars)
    bars.close()
    table = import_timings(timings, todo, path, manifest["id"])
    shutil.rmtree(work)
    return table


def _empty_table(path: str, settings: EngineSettings, device: str) -> LatencyTable:
    engine = get_engine(settings.engine)
    table = LatencyTable(f"{engine.name}-{engine.version()}", device, "us", settings=settings.header(), path=path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return LatencyTable.load(table.save(path))


def engine_model_files(model_dirs: Sequence[str], settings: EngineSettings) -> List[str]:
    """`<dir>/model<suffix>` of each exported model, converted to the engine's format when not there yet."""
    engine = get_engine(settings.engine)
    stems = [os.path.join(d, MODEL_PREFIX) for d in model_dirs]
    lacking = [stem for stem in stems if not os.path.exists(f"{stem}{engine.suffix}")]
    engine.check_available()
    engine.convert(lacking, settings.opset)
    return [f"{stem}{engine.suffix}" for stem in stems]


def measure_models_us(model_dirs: Sequence[str], input_shape: Sequence[int], settings: EngineSettings) -> List[float]:
    """End-to-end latency of exported models (`<dir>/model.pdmodel`, converted for the engine), timed like
    the table's ops: min over `passes` interleaved medians, a fresh session per model and pass."""
    engine = get_engine(settings.engine)
    inputs = [{"name": "image", "shape": list(input_shape)}]
    files = engine_model_files(model_dirs, settings)
    openers = [opener(engine.name, f, inputs, engine.options(settings), settings.threads) for f in files]
    timing: Timing = settings.timing()
    with timer_errors():
        return min_of_medians(openers, timing)
