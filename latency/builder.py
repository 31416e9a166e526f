"""Build a latency table for this machine: time each distinct op of a search space alone with Paddle Inference.

How an op is timed (see ../shared/notes/PILOTS.md, "Latency on this CPU"):
- a one-op inference program is built from the op's spec (latency/opkeys.py) and handed to Paddle
  Inference in memory; warm-up runs, then `repeats` timed runs -> median; `passes` such medians -> min;
- the passes are interleaved over a chunk of keys, with fresh predictors created in a new order each pass,
  so one key's samples spread over seconds and over several memory placements: here a burst of load from
  other processes, or one predictor's unlucky buffer placement, made a 3x3 conv up to 5x slower;
- on CPU with 1 thread the clock is the calling thread's CPU time (`time.thread_time_ns`): all compute runs
  in that thread and the figure ignores time stolen by other processes; otherwise wall time;
- the fixed cost of one `predictor.run()` (a trivial program timed in the same passes) is subtracted;
- an op that times below that reference (noise larger than the op) is timed again; one that stays below
  is priced at its own time (an upper bound, never 0: it is not free) and listed in the header
  (`unstable=key|key`);
- with MKLDNN a one-op program pays a NCHW -> oneDNN layout reorder that a real chain never pays, so each
  op is timed behind a 1x1-conv prefix and the prefix alone is subtracted (`prefix=1` in the header).
The engine settings go into the table header (4th field) and `build_table` refuses to extend a table built
with other settings, so a table is never mixed or used with settings it was not measured with.
"""

import logging
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F
from tqdm import tqdm

from latency.engine import ENGINE, ENGINE_KEYS, EngineSettings, device_name, make_predictor
from latency.opkeys import switch_to_static_graph, trace_ops
from latency.table import LatencyTable, append_entries
from ppnas.errors import TableError

_logger = logging.getLogger(__name__)

ACTIVATION_FNS: Dict[str, Callable[[Any], Any]] = {
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": F.sigmoid,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "hard_swish": F.hardswish,
    "swish": F.swish,
    "tanh": paddle.tanh,
    "hard_sigmoid": F.hardsigmoid,
}


# ---- one-op programs ---------------------------------------------------------------------------------


def _param(shape: Sequence[int]) -> Any:
    return paddle.static.create_parameter(list(shape), "float32")


def _apply(spec: Dict[str, Any], x: Any, extra_inputs: List[Any]) -> Any:
    """Append the op described by `spec` to the current static program, reading `x`."""
    op = spec["op"]
    if op == "conv":
        kh, kw = spec["kernel"]
        weight = _param([spec["c_out"], spec["c_in"] // spec["groups"], kh, kw])
        return F.conv2d(
            x,
            weight,
            stride=list(spec["stride"]),
            padding=list(spec["padding"]),
            dilation=list(spec["dilation"]),
            groups=spec["groups"],
        )
    if op == "batch_norm":
        return paddle.static.nn.batch_norm(x, is_test=True)
    if op in ACTIVATION_FNS:
        return ACTIVATION_FNS[op](x)
    if op == "prelu":
        return paddle.static.nn.prelu(x, mode="channel")
    if op == "eltwise":
        y_dims = spec.get("y_dims") or spec["dims"]
        # a smaller Y is a broadcast constant (a conv bias); a same-shape Y is a second activation
        y = _param([1, *y_dims]) if list(y_dims) != list(spec["dims"]) else extra_inputs[0]
        return {1: paddle.multiply, 2: paddle.add}.get(spec["kind"], paddle.maximum)(x, y)
    if op == "pooling":
        if spec["is_global"]:
            pool = F.adaptive_max_pool2d if spec["pool_type"] == 1 else F.adaptive_avg_pool2d
            return pool(x, 1)
        kwargs = dict(
            kernel_size=list(spec["kernel"]),
            stride=list(spec["stride"]),
            padding=list(spec["padding"]),
            ceil_mode=bool(spec["ceil_mode"]),
        )
        if spec["pool_type"] == 1:
            return F.max_pool2d(x, **kwargs)
        return F.avg_pool2d(x, exclusive=spec["pool_type"] == 3, **kwargs)
    if op == "softmax":
        return F.softmax(x, axis=spec["axis"])
    if op == "interp":
        return F.interpolate(
            x, size=[spec["out_h"], spec["out_w"]], mode=spec["mode"], align_corners=bool(spec["align_corners"])
        )
    if op == "concat":
        return paddle.concat([x, *extra_inputs], axis=1)
    raise TableError(f"the builder cannot time op '{op}'")


def _input_shapes(spec: Dict[str, Any]) -> List[List[int]]:
    """Feed shapes of the one-op program: the op's input, then any second operand."""
    op = spec["op"]
    if op == "conv":
        main = [1, spec["c_in"], spec["h"], spec["w"]]
    elif op in ("batch_norm", "pooling", "interp"):
        main = [1, spec["c"], spec["h"], spec["w"]]
    elif op == "concat":
        c, h, w = spec["dims"]
        parts = [c // spec["num_inputs"]] * spec["num_inputs"]
        parts[-1] += c - sum(parts)
        return [[1, p, h, w] for p in parts]
    else:
        main = [1, *spec["dims"]]
    if op == "eltwise" and list(spec.get("y_dims") or spec["dims"]) == list(spec["dims"]):
        return [main, main]
    return [main]


@switch_to_static_graph
def op_program(
    spec: Optional[Dict[str, Any]], prefix: bool, shapes: Optional[List[List[int]]] = None
) -> Tuple[bytes, bytes, List[List[int]]]:
    """(program, params, feed shapes) of a one-op inference model, behind a 1x1 conv when `prefix`.

    With `spec` None: the prefix alone on `shapes`, or without a prefix the smallest program there is (a
    scale of a 1-element tensor), whose time is the fixed cost of a run.
    """
    shapes = shapes or (_input_shapes(spec) if spec is not None else [[1, 1, 1, 1]])
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        feeds = [paddle.static.data(f"x{i}", shape, "float32") for i, shape in enumerate(shapes)]
        x = feeds[0]
        if prefix:
            x = F.conv2d(x, _param([shapes[0][1], shapes[0][1], 1, 1]))
        if spec is not None:
            out = _apply(spec, x, feeds[1:])
        else:
            out = x if prefix else paddle.scale(x, 2.0)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    program = paddle.static.serialize_program(feeds, [out], program=main)
    params = paddle.static.serialize_persistables(feeds, [out], executor=exe, program=main) or b""
    return program, params, shapes


# ---- timing ------------------------------------------------------------------------------------------


def _feed(predictor: Any, shapes: Sequence[Sequence[int]], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name, shape in zip(predictor.get_input_names(), shapes):
        handle = predictor.get_input_handle(name)
        handle.reshape(list(shape))  # reshape before copy_from_cpu
        handle.copy_from_cpu(rng.standard_normal(list(shape)).astype("float32"))


class RunTimer:
    """Median of `repeats` runs after `warmup` runs, in microseconds (see module docstring for the clock)."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.clock = time.thread_time_ns if settings.timer == "thread_cpu" else time.perf_counter_ns

    def median_us(self, predictor: Any) -> float:
        run = predictor.run
        if self.settings.device == "gpu":  # run() may return before the GPU is done: sync on an output
            output = predictor.get_output_handle(predictor.get_output_names()[0])

            def run() -> None:
                predictor.run()
                output.copy_to_cpu()

        for _ in range(self.settings.warmup):
            run()
        samples = []
        for _ in range(self.settings.repeats):
            start = self.clock()
            run()
            samples.append(self.clock() - start)
        return statistics.median(samples) / 1e3


def _pass_orders(count: int, passes: int, seed: int = 0) -> List[List[int]]:
    """The order of each pass: the first as given, then shuffled. The same order each pass would give each
    predictor the same place in memory each time (the allocator replays the same history)."""
    rng = np.random.default_rng(seed)
    return [list(range(count))] + [list(rng.permutation(count)) for _ in range(passes - 1)]


@dataclass
class OpTimes:
    """Latency of each op alone; `unstable[i]` when op i timed below its reference in every attempt (noise
    larger than the op): then `times[i]` is the op program's own time, an upper bound, never 0 (free)."""

    times: List[float]
    unstable: List[bool]


class OpTimer:
    """Times single ops; the reference program (prefix alone, or the trivial program) is measured with each."""

    def __init__(self, settings: EngineSettings, retries: int = 2) -> None:
        self.settings = settings
        self.timer = RunTimer(settings)
        self.retries = retries

    def reference_programs(self, specs: Sequence[Dict[str, Any]]) -> List[Tuple[bytes, bytes, List[List[int]]]]:
        """What is subtracted from each op's time: the prefix alone on its input, or one trivial program."""
        if self.settings.prefix:
            return [op_program(None, True, _input_shapes(spec)[:1]) for spec in specs]
        return [op_program(None, False)]

    def _differences(self, specs: Sequence[Dict[str, Any]]) -> Tuple[List[float], List[float]]:
        """(op time - reference time, op time) of each spec. All ops and references are timed in the same
        interleaved passes, each pass with fresh predictors created in another order: a burst of load, or an
        unlucky memory placement of one predictor's buffers (seen here to slow a conv 5x), spoils one sample,
        not the minimum."""
        programs = [op_program(spec, self.settings.prefix) for spec in specs] + self.reference_programs(specs)
        best = [float("inf")] * len(programs)
        for order in _pass_orders(len(programs), self.settings.passes):
            for i in order:
                program, params, shapes = programs[i]
                predictor = make_predictor(self.settings, program, params)
                _feed(predictor, shapes)
                best[i] = min(best[i], self.timer.median_us(predictor))
        ops, refs = best[: len(specs)], best[len(specs) :]
        refs = refs if len(refs) == len(ops) else refs * len(ops)
        return [op - ref for op, ref in zip(ops, refs)], ops

    def ops_us(self, specs: Sequence[Dict[str, Any]]) -> OpTimes:
        """Each op's time over its reference. An op that times below its reference is timed again (up to
        `retries` times); one that stays below is priced at its own time and flagged (see OpTimes)."""
        times, raw = self._differences(specs)
        todo = [i for i, value in enumerate(times) if value < 0]
        for _ in range(self.retries):
            if not todo:
                break
            _logger.info("%d ops timed below their reference: timing them again", len(todo))
            again, again_raw = self._differences([specs[i] for i in todo])
            for i, value, own in zip(todo, again, again_raw):
                times[i], raw[i] = value, min(raw[i], own)
            todo = [i for i in todo if times[i] < 0]
        for i in todo:
            times[i] = raw[i]
        unstable = set(todo)
        return OpTimes(times=times, unstable=[i in unstable for i in range(len(specs))])


# ---- whole tables ------------------------------------------------------------------------------------

UNSTABLE_KEY = "unstable"  # header setting: keys that timed below their reference in every sweep
UNSTABLE_SEP = "|"


def unstable_keys(table: LatencyTable) -> List[str]:
    """Keys the header flags as unstable (priced at an upper bound, see OpTimes)."""
    return [key for key in table.settings.get(UNSTABLE_KEY, "").split(UNSTABLE_SEP) if key]


def _flag_unstable(path: str, keys: Iterable[str], cleared: Iterable[str] = ()) -> None:
    """Add `keys` to (and drop `cleared` from) the header's unstable list."""
    table = LatencyTable.load(path)
    flagged = [key for key in unstable_keys(table) if key not in set(cleared)]
    flagged += [key for key in keys if key not in flagged]
    if flagged == unstable_keys(table):
        return
    table.settings.pop(UNSTABLE_KEY, None)
    if flagged:
        table.settings[UNSTABLE_KEY] = UNSTABLE_SEP.join(flagged)
    table.save()


def collect_ops(models: Iterable[paddle.nn.Layer], input_shape: Sequence[int]) -> Dict[str, Dict[str, Any]]:
    """Distinct keys (in first-seen order) of every op the models run, with the spec to rebuild each."""
    found: Dict[str, Dict[str, Any]] = {}
    for model in models:
        for record in trace_ops(model, input_shape):
            if record.key is not None and record.key not in found:
                found[record.key] = record.spec
    return found


def open_table(path: str, settings: EngineSettings) -> LatencyTable:
    """The table at `path` to extend (its settings must match), or a new one with just the header."""
    header = settings.header()
    if os.path.exists(path):
        table = LatencyTable.load(path)
        recorded = {k: table.settings.get(k) for k in ENGINE_KEYS}
        if recorded != header:
            diff = ", ".join(f"{k}={recorded[k]} (now {header[k]})" for k in ENGINE_KEYS if recorded[k] != header[k])
            raise TableError(
                f"{path} was built with other engine settings: {diff}; use the same settings or another --out"
            )
        return table
    table = LatencyTable(engine=ENGINE, device=device_name(settings), unit="us", settings=header, path=path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return LatencyTable.load(table.save(path))


def build_table(
    ops: Dict[str, Dict[str, Any]],
    path: str,
    settings: EngineSettings,
    progress: bool = True,
    chunk: int = 32,
    sweeps: int = 2,
    timer: Optional[OpTimer] = None,
) -> LatencyTable:
    """Time every key of `ops` that the table at `path` lacks, `chunk` keys at a time (timed in the same
    interleaved passes), appending each chunk as soon as it is measured: an interrupted build resumes
    where it stopped. Then `sweeps - 1` more sweeps re-time the keys measured now and keep each key's
    minimum: the sweeps are minutes apart, and on this machine a conv shape was seen to run 4-8x slower
    for tens of seconds at a time (CPU time, not waiting). A key that timed below its reference in every
    sweep is flagged in the header (`unstable=key|key`, see OpTimes). Returns the loaded table."""
    table = open_table(path, settings)
    todo = [(key, spec) for key, spec in ops.items() if key not in table.entries]
    _logger.info("%s: %d keys already measured, %d to measure", path, len(ops) - len(todo), len(todo))
    timer = timer or OpTimer(settings)
    stable: Dict[str, float] = {}  # the minimum over sweeps of each key's stable measurements
    upper: Dict[str, float] = {}  # the minimum of the upper bounds of keys not (yet) measured stably
    for sweep in range(sweeps if todo else 0):
        with tqdm(total=len(todo), desc=f"timing ops ({sweep + 1}/{sweeps})", unit="op", disable=not progress) as bar:
            for start in range(0, len(todo), chunk):
                keys, specs = zip(*todo[start : start + chunk])
                measured = timer.ops_us(specs)
                for key, value, unsure in zip(keys, measured.times, measured.unstable):
                    found = upper if unsure else stable
                    found[key] = min(found.get(key, value), value)
                if sweep == 0:
                    append_entries(path, zip(keys, measured.times))
                    _flag_unstable(path, [k for k, unsure in zip(keys, measured.unstable) if unsure])
                bar.update(len(keys))
        if sweep:
            table = LatencyTable.load(path)
            table.entries.update({key: stable.get(key, upper.get(key)) for key, _ in todo})
            table.save()
            _flag_unstable(path, [], cleared=stable)
    return LatencyTable.load(path)


def measure_models_us(model_dirs: Sequence[str], input_shape: Sequence[int], settings: EngineSettings) -> List[float]:
    """End-to-end latency of exported models, timed like the table's ops: min over `passes` interleaved
    medians, fresh predictors created in a new order each pass."""
    timer = RunTimer(settings)
    best = [float("inf")] * len(model_dirs)
    for order in _pass_orders(len(model_dirs), settings.passes):
        for i in order:
            predictor = make_predictor(settings, model_dir=model_dirs[i])
            _feed(predictor, [input_shape])
            best[i] = min(best[i], timer.median_us(predictor))
    return best
