"""Time the op models of an export folder on the device. Needs numpy and the engine only: no paddle, no ppnas.

    python time_ops.py OPS_DIR [--threads 1] [--out timings.jsonl] [--sweeps 2] [--device-name NAME]

OPS_DIR is a folder written by `tools/build_latency_table.py --export-ops` (this script ships inside it):
`manifest.json` maps each op model file to its latency-table key and input shapes. Each op is timed alone,
the way ppnas's table builder times it on the workstation (this file is that timing code):
- warm-up runs, then `--repeats` timed runs -> median; `--passes` such medians -> minimum;
- the passes go round a chunk of `--chunk` ops, with a fresh session of every model created in a new order
  each pass, so one op's samples spread over seconds and several memory placements; `--sweeps` sweeps over
  all ops, minutes apart, and the import keeps each op's minimum;
- the clock is the calling thread's CPU time with 1 thread on a CPU where the platform has it (every engine
  here computes in the calling thread then; time stolen by other processes does not count), else wall time;
  the timings file says which;
- the fixed cost of one run (a trivial model, or the prefix alone: the manifest names each op's reference)
  is subtracted; an op that times below its reference (noise larger than the op) is timed again, twice at
  most, and one that stays below is given its own time (an upper bound, never 0) and flagged unstable.
Each chunk's results are appended to the timings file (JSON lines, a header first) as soon as they are
measured; run the same command again after a kill and it goes on where it stopped. Bring the file back and
import it: `python tools/build_latency_table.py -c CONFIG --import timings.jsonl --out table.txt`.
"""

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
import zlib  # noqa: F401  # before paddle when the engine is Paddle Inference (paddle 2.6's zlib trap)
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "ppnas-op-models"
TIMINGS_FORMAT = "ppnas-op-timings"
DEFAULT_TIMINGS = "timings.jsonl"
FORMAT_VERSION = 1

Run = Callable[[], Any]
Opener = Callable[[], Run]  # a fresh session of one model, fed, ready to run


class TimingError(Exception):
    """Bad input to the timer: the message names the file and what to do."""


# ---- engines: open a model file as a fresh, fed session --------------------------------------------------


def engine_version(engine: str) -> str:
    """The installed version of `engine`'s Python package (TimingError when it is not installed)."""
    module = {"paddle_inference": "paddle", "onnxruntime": "onnxruntime", "mnn": "MNN"}[engine]
    try:
        imported = __import__(module)
    except ImportError as err:
        package = {"paddle": "paddlepaddle", "MNN": "MNN"}.get(module, module)
        raise TimingError(f"the {engine} engine needs the Python package {package}: pip install {package}") from err
    version = getattr(imported, "__version__", None) or getattr(imported, "version", lambda: "unknown")()
    return str(version)


def paddle_predictor(model_file: str, options: Dict[str, Any], threads: int) -> Any:
    """A Paddle Inference predictor of `model_file` (+ its .pdiparams when there is one) with `options`
    (device, mkldnn, ir_optim)."""
    from paddle import inference

    config = inference.Config()
    config.set_prog_file(model_file)
    params = os.path.splitext(model_file)[0] + ".pdiparams"
    if os.path.exists(params):  # a model without parameters writes no .pdiparams
        config.set_params_file(params)
    if options.get("device", "cpu") == "gpu":
        config.enable_use_gpu(256, 0)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        if int(options.get("mkldnn", 0)):
            config.enable_mkldnn()
        else:
            config.disable_mkldnn()
    config.switch_ir_optim(bool(int(options.get("ir_optim", 1))))
    config.disable_glog_info()
    return inference.create_predictor(config)


def _open_paddle_inference(path: str, feeds: Dict[str, np.ndarray], options: Dict[str, Any], threads: int) -> Run:
    predictor = paddle_predictor(path, options, threads)
    for name, value in zip(predictor.get_input_names(), feeds.values()):
        handle = predictor.get_input_handle(name)
        handle.reshape(list(value.shape))  # reshape before copy_from_cpu
        handle.copy_from_cpu(value)
    if options.get("device", "cpu") != "gpu":
        return predictor.run
    output = predictor.get_output_handle(predictor.get_output_names()[0])

    def run_and_sync() -> None:  # run() may return before the GPU is done: sync on an output
        predictor.run()
        output.copy_to_cpu()

    return run_and_sync


def _open_onnxruntime(path: str, feeds: Dict[str, np.ndarray], options: Dict[str, Any], threads: int) -> Run:
    import onnxruntime

    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = threads  # 1: no thread pool, compute runs in the calling thread
    session_options.inter_op_num_threads = 1
    session_options.log_severity_level = 3
    session = onnxruntime.InferenceSession(path, session_options, providers=["CPUExecutionProvider"])
    binding = session.io_binding()
    for item, value in zip(session.get_inputs(), feeds.values()):
        binding.bind_cpu_input(item.name, value)
    # outputs written in place into arrays allocated once, as Paddle Inference and MNN leave theirs in the
    # session: run() would allocate and copy every output, a cost a whole model pays for its outputs only
    outputs = session.run(None, dict(zip([i.name for i in session.get_inputs()], feeds.values())))
    for item, value in zip(session.get_outputs(), outputs):
        binding.bind_output(item.name, "cpu", 0, value.dtype, list(value.shape), value.ctypes.data)
    return functools.partial(_run_bound, session, binding, outputs)


def _run_bound(session: Any, binding: Any, buffers: List[np.ndarray]) -> None:
    """One run of an onnxruntime session into the bound `buffers` (kept alive by being an argument)."""
    session.run_with_iobinding(binding)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what native code prints on stdout to stderr (MNN prints its CPU features there on first use):
    stdout may be a result the caller parses."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _open_mnn(path: str, feeds: Dict[str, np.ndarray], options: Dict[str, Any], threads: int) -> Run:
    import MNN

    with _stdout_to_stderr():
        interpreter = MNN.Interpreter(path)
        session = interpreter.createSession({"numThread": threads})
    inputs = interpreter.getSessionInputAll(session)
    for name, value in feeds.items():
        host = MNN.Tensor(list(value.shape), MNN.Halide_Type_Float, value, MNN.Tensor_DimensionType_Caffe)
        inputs[name].copyFrom(host)
    return lambda: interpreter.runSession(session)


OPENERS = {"paddle_inference": _open_paddle_inference, "onnxruntime": _open_onnxruntime, "mnn": _open_mnn}


def random_feeds(inputs: Sequence[Dict[str, Any]], seed: int = 0) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i["name"]: rng.standard_normal(list(i["shape"])).astype("float32") for i in inputs}


def opener(engine: str, path: str, inputs: Sequence[Dict[str, Any]], options: Dict[str, Any], threads: int) -> Opener:
    """What opens a fresh session of the model at `path`, fed with fixed random inputs."""
    feeds = random_feeds(inputs)

    def open_session() -> Run:
        try:
            run = OPENERS[engine](path, feeds, options, threads)
            run()  # a model the engine cannot run fails here, not inside the timing
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise TimingError(f"{path}: {engine} cannot run it ({err}): export the op models again") from err
        return run

    return open_session


# ---- the clock and the timing method ------------------------------------------------------------------


def thread_clock_works() -> bool:
    try:
        time.thread_time_ns()
    except (AttributeError, OSError):  # platforms without a per-thread CPU clock
        return False
    return True


def clock_name(threads: int, device: str = "cpu") -> str:
    """'thread_cpu' with 1 thread on a CPU where the platform has a thread clock, else 'wall'."""
    return "thread_cpu" if threads == 1 and device == "cpu" and thread_clock_works() else "wall"


CLOCKS = {"thread_cpu": lambda: time.thread_time_ns(), "wall": time.perf_counter_ns}


@dataclass
class Timing:
    """How each model is timed (the builder's defaults)."""

    threads: int = 1
    warmup: int = 3
    repeats: int = 15
    passes: int = 3
    sweeps: int = 2
    chunk: int = 32
    retries: int = 2
    clock: str = "thread_cpu"

    def check(self) -> None:
        if min(self.threads, self.repeats, self.passes, self.sweeps, self.chunk) < 1 or self.warmup < 0:
            raise TimingError("threads, repeats, passes, sweeps and chunk must be at least 1, warmup at least 0")
        if self.clock not in CLOCKS:
            raise TimingError(f"unknown clock '{self.clock}': use {' or '.join(CLOCKS)}")


def median_us(run: Run, timing: Timing) -> float:
    """Median of `repeats` runs after `warmup` runs, in microseconds."""
    clock = CLOCKS[timing.clock]
    for _ in range(timing.warmup):
        run()
    samples = []
    for _ in range(timing.repeats):
        start = clock()
        run()
        samples.append(clock() - start)
    return statistics.median(samples) / 1e3


def pass_orders(count: int, passes: int, seed: int = 0) -> List[List[int]]:
    """The order of each pass: the first as given, then shuffled. The same order each pass would give each
    session the same place in memory each time (the allocator replays the same history)."""
    rng = np.random.default_rng(seed)
    return [list(range(count))] + [[int(i) for i in rng.permutation(count)] for _ in range(passes - 1)]


def min_of_medians(openers: Sequence[Opener], timing: Timing) -> List[float]:
    """Each model's minimum over `passes` interleaved medians, a fresh session per model and pass."""
    best = [math.inf] * len(openers)
    for order in pass_orders(len(openers), timing.passes):
        for i in order:
            best[i] = min(best[i], median_us(openers[i](), timing))
    return best


def time_against_reference(
    ops: Sequence[Opener], references: Sequence[Opener], timing: Timing
) -> Tuple[List[float], List[bool]]:
    """(time, unstable) of each op: its time over its reference (one reference for all ops, or one each),
    ops and references timed in the same interleaved passes. An op not above its reference is timed again,
    `retries` times at most; one that stays below is priced at its own time (an upper bound) and flagged."""

    def differences(indexes: Sequence[int]) -> Tuple[List[float], List[float]]:
        refs = list(references) if len(references) == 1 else [references[i] for i in indexes]
        best = min_of_medians([ops[i] for i in indexes] + refs, timing)
        own, ref = best[: len(indexes)], best[len(indexes) :]
        ref = ref * len(own) if len(ref) == 1 else ref
        return [o - r for o, r in zip(own, ref)], own

    times, own = differences(range(len(ops)))
    todo = [i for i, value in enumerate(times) if value <= 0]  # an op is never free
    for _ in range(timing.retries):
        if not todo:
            break
        log(f"{len(todo)} ops timed below their reference: timing them again")
        again, again_own = differences(todo)
        for i, value, mine in zip(todo, again, again_own):
            times[i], own[i] = value, min(own[i], mine)
        todo = [i for i in todo if times[i] <= 0]
    for i in todo:
        times[i] = own[i]
    return times, [i in set(todo) for i in range(len(ops))]


# ---- the export folder and the timings file ----------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_model() -> str:
    """The CPU's name: /proc/cpuinfo's model name (or Hardware, on ARM boards), else what platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in ("model name", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_manifest(folder: str) -> Dict[str, Any]:
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise TimingError(f"{path} not found: pass the folder written by build_latency_table.py --export-ops") from None
    except json.JSONDecodeError as err:
        raise TimingError(f"{path}:{err.lineno}: not valid JSON ({err.msg}): export the op models again") from None
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise TimingError(f"{path}: not a version-{FORMAT_VERSION} {MANIFEST_FORMAT} manifest: export again")
    return manifest


def timings_header(manifest: Dict[str, Any], timing: Timing, device: str, version: str) -> Dict[str, Any]:
    """The first line of a timings file: which manifest, engine and settings its values belong to."""
    return {
        "format": TIMINGS_FORMAT,
        "version": FORMAT_VERSION,
        "manifest_id": manifest["id"],
        "engine": manifest["engine"],
        "engine_version": version,
        "device": device,
        "table": manifest["table"],
        "settings": {**manifest["settings"], "threads": str(timing.threads), "timer": timing.clock},
        "timing": asdict(timing),
    }


def _done_lines(path: str, header: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The result lines already in `path`, which gets `header` when it has none yet (a new or empty file);
    a header of other timings is refused; a last line cut by a kill is dropped."""
    lines = [""]
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    complete, tail = lines[:-1], lines[-1]
    if tail:  # written without its newline: the process died inside the write
        log(f"{path}: dropping an unfinished last line")
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in complete))
    if not complete:
        _append(path, [header])
        return []
    try:
        found = json.loads(complete[0])
    except json.JSONDecodeError:
        found = None
    if found != header:
        raise TimingError(
            f"{path} holds timings of another manifest, engine or settings: use another --out, "
            "or delete it to time again"
        )
    return [json.loads(line) for line in complete[1:] if line.strip()]


def _append(path: str, records: Sequence[Dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _model_opener(folder: str, manifest: Dict[str, Any], entry: Dict[str, Any], threads: int) -> Opener:
    path = os.path.join(folder, entry["file"])
    if not os.path.isfile(path):
        raise TimingError(f"{path} (listed in {os.path.join(folder, MANIFEST)}) is missing: export the op models again")
    return opener(manifest["engine"], path, entry["inputs"], manifest.get("engine_options", {}), threads)


Progress = Callable[[int, int, int], None]  # (sweep, ops done in it, ops in all)


def _print_progress(sweeps: int) -> Progress:
    started = time.time()

    def report(sweep: int, done: int, total: int) -> None:
        log(f"sweep {sweep}/{sweeps}: {done}/{total} ops timed ({time.time() - started:.0f} s)")

    return report


def time_folder(
    folder: str,
    out: Optional[str] = None,
    timing: Optional[Timing] = None,
    device: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> str:
    """Time every op model of `folder` (see the module docstring) into the timings file `out`; resumes."""
    manifest = load_manifest(folder)
    timing = timing or Timing(clock=clock_name(1))
    timing.check()
    out = out or os.path.join(folder, DEFAULT_TIMINGS)
    version = engine_version(manifest["engine"])
    header = timings_header(manifest, timing, device or f"cpu:{cpu_model()}", version)
    if version != manifest["engine_version"]:
        log(f"note: the ops were exported for {manifest['engine']} {manifest['engine_version']}, this is {version}")
    done = {(r["sweep"], r["key"]) for r in _done_lines(out, header)}
    progress = progress or _print_progress(timing.sweeps)
    ops = manifest["ops"]
    for sweep in range(1, timing.sweeps + 1):
        todo = [op for op in ops if (sweep, op["key"]) not in done]
        progress(sweep, len(ops) - len(todo), len(ops))
        for start in range(0, len(todo), timing.chunk):
            chunk = todo[start : start + timing.chunk]
            openers = [_model_opener(folder, manifest, op, timing.threads) for op in chunk]
            shared = len({op["reference"]["file"] for op in chunk}) == 1  # the fixed cost: timed once per pass
            references = [
                _model_opener(folder, manifest, op["reference"], timing.threads)
                for op in chunk[: 1 if shared else None]
            ]
            times, unstable = time_against_reference(openers, references, timing)
            records = [
                {"sweep": sweep, "key": op["key"], "file": op["file"], "us": round(value, 4), "unstable": flag}
                for op, value, flag in zip(chunk, times, unstable)
            ]
            _append(out, records)
            progress(sweep, len(ops) - len(todo) + start + len(chunk), len(ops))
    return out


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="the export folder (holds manifest.json)")
    parser.add_argument("--out", help=f"timings file to write or resume (default FOLDER/{DEFAULT_TIMINGS})")
    parser.add_argument("--threads", type=int, default=1, help="engine threads (1: thread CPU time is the clock)")
    parser.add_argument("--warmup", type=int, default=Timing.warmup)
    parser.add_argument("--repeats", type=int, default=Timing.repeats, help="timed runs per median")
    parser.add_argument("--passes", type=int, default=Timing.passes, help="interleaved medians per op; min kept")
    parser.add_argument("--sweeps", type=int, default=Timing.sweeps, help="sweeps over all ops; min kept")
    parser.add_argument("--chunk", type=int, default=Timing.chunk, help="ops timed in the same passes")
    parser.add_argument("--device-name", help="name of this device in the table header (default: cpu:<model>)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        device = load_manifest(args.folder).get("engine_options", {}).get("device", "cpu")
        timing = Timing(
            threads=args.threads,
            warmup=args.warmup,
            repeats=args.repeats,
            passes=args.passes,
            sweeps=args.sweeps,
            chunk=args.chunk,
            clock=clock_name(args.threads, device),
        )
        out = time_folder(args.folder, args.out, timing, args.device_name)
    except TimingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to go on where it stopped", file=sys.stderr)
        return 130
    log(f"clock: {timing.clock}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
