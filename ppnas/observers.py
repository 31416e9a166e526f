"""Watching a run live, for every strategy: tqdm bars (plain lines off a terminal) and VisualDL scalars.

The token searches (SANAS, the one-shot search) watch through `SearchObserver`s (ppnas/engine/protocols.py),
built by `make_observers` from the flags PaddleDetection and PaddleSeg users know: `--quiet`, `--use_vdl`,
`--vdl_log_dir`. Loops that count iterations or epochs (supernet training, FBNet) use `Progress` and
`ScalarLog`, which follow the same rules: a bar on a terminal, a plain line now and then elsewhere.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import os
import socket
import sys
import time
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, TypeVar

from tqdm import tqdm
from visualdl import LogWriter

from ppnas.engine.protocols import SearchObserver, SearchResult
from ppnas.history import CandidateRecord
from ppnas.units import format_count, format_ms

VDL_DIR = "vdl_log"
PLAIN_ITER_LINES = 10  # loss lines per candidate when bars are off (a log file must not get one per iteration)
T = TypeVar("T")


def on_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return isatty is not None and bool(isatty())


class Progress:
    """A count towards `total` (iterations, batches): a tqdm bar on a terminal; off one (a log file, CI, nohup)
    a plain line at about every tenth of the way and at the end, since carriage-return bars become one
    enormous line there. A bar inside a longer run (`leave` False: a pass of an epoch that prints its own
    line) prints nothing off a terminal."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        initial: int = 0,
        quiet: bool = False,
        leave: bool = True,
        stream: Optional[IO[str]] = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.total, self.desc, self.unit, self.count = total, desc, unit, initial
        self.quiet = quiet or (not leave and not on_terminal(self.stream))
        self.plain = not on_terminal(self.stream)
        self.every = max(1, total // PLAIN_ITER_LINES)
        self.started = time.monotonic()
        self.postfix: Dict[str, Any] = {}
        self.bar: Optional[tqdm] = None
        if not self.quiet and not self.plain:
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, file=self.stream)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.count += n
        self.postfix = postfix
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
        elif not self.quiet and (self.count % self.every == 0 or self.count == self.total):
            values = "".join(f" {key} {value}" for key, value in postfix.items())
            eta = f", ETA {self.eta()}" if self.count < self.total else ""
            print(f"{self.desc}: {self.count}/{self.total} {self.unit}{values}{eta}", file=self.stream, flush=True)

    def eta(self) -> str:
        """Time left at the pace so far, as tqdm writes it (m:ss, h:mm:ss)."""
        done = max(self.count, 1)
        return tqdm.format_interval((time.monotonic() - self.started) / done * max(self.total - self.count, 0))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress(items: Iterable[T], total: int, desc: str, unit: str, quiet: bool = False) -> Iterator[T]:
    """`items`, counted with a Progress that leaves no bar behind (a pass inside a longer run)."""
    bar = Progress(total, desc, unit, quiet=quiet, leave=False)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()


def _best_reward(info: Dict[str, Any], seen: Optional[float]) -> Optional[float]:
    """The controller's best (it spans resumed runs and, remotely, every client), else the best seen here."""
    best = info.get("best_reward")
    if best is None:
        return seen
    return best if seen is None else max(best, seen)


def _measured_text(record: CandidateRecord) -> str:
    parts = [format_ms(record.latency_ms)] if record.latency_ms is not None else []
    parts.append(format_count(record.flops, "FLOPs"))
    parts.append(format_count(record.params, "params"))
    return ", ".join(parts)


class ProgressObserver(SearchObserver):
    """A bar over search steps and one over the iterations of the candidate in training.

    Off a terminal (a log file, CI, nohup) it prints plain lines instead, since carriage-return bars
    turn into one enormous line there.
    """

    def __init__(self, stream: Optional[IO[str]] = None, plain: Optional[bool] = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.plain = not on_terminal(self.stream) if plain is None else plain
        self.steps_bar: Optional[tqdm] = None
        self.iter_bar: Optional[tqdm] = None
        self.total = 0
        self.done = 0
        self.done_at_start = 0
        self.started = time.time()
        self.best: Optional[float] = None
        self.rejected = 0
        self.failed = 0

    def _print(self, line: str) -> None:
        if self.plain:
            print(line, file=self.stream, flush=True)
        else:
            tqdm.write(line, file=self.stream)

    def _counts(self) -> Dict[str, Any]:
        best = "-" if self.best is None else f"{self.best:.4f}"
        return {"best": best, "rejected": self.rejected, "failed": self.failed}

    def eta_seconds(self) -> Optional[float]:
        """Remaining time from the mean time per step rewarded in this run (rejected draws included)."""
        steps = self.done - self.done_at_start
        if steps <= 0:
            return None
        return (time.time() - self.started) / steps * max(self.total - self.done, 0)

    def on_start(self, total_steps: int, done_steps: int) -> None:
        self.total, self.done, self.done_at_start = total_steps, done_steps, done_steps
        self.started = time.time()
        if self.plain:
            going_on = f"{done_steps}/{total_steps} steps done, going on" if done_steps else f"{total_steps} steps"
            self._print(f"search: {going_on}")
            return
        self.steps_bar = tqdm(
            total=total_steps, initial=done_steps, desc="search", unit="step", file=self.stream, position=0
        )
        self.steps_bar.set_postfix(self._counts())

    def on_iter(self, iteration: int, total: int, loss: float) -> None:
        step = self.done + 1
        if self.plain:
            every = max(1, total // PLAIN_ITER_LINES)
            if iteration % every == 0 or iteration == total:
                self._print(f"  step {step} iter {iteration}/{total} loss {loss:.4f}")
            return
        if self.iter_bar is None:
            self.iter_bar = tqdm(total=total, desc=f"step {step}", unit="it", leave=False, file=self.stream, position=1)
        self.iter_bar.update(iteration - self.iter_bar.n)
        self.iter_bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_candidate(self, record: CandidateRecord, info: Dict[str, Any]) -> None:
        if self.iter_bar is not None:
            self.iter_bar.close()
            self.iter_bar = None
        if record.status == "trained":
            self.done += 1
            self.best = _best_reward(info, record.reward if self.best is None else max(self.best, record.reward))
            own = self._follow_server(info, record)
            if self.steps_bar is not None:
                self.steps_bar.update(self.done - self.steps_bar.n)
            if self.plain:
                eta = self.eta_seconds()
                eta_text = "-" if eta is None else tqdm.format_interval(eta)
                self._print(
                    f"step {self.done}/{self.total}{own} reward {record.reward:.4f} (best {self.best:.4f}) "
                    f"{_measured_text(record)}, {record.seconds:.1f} s | rejected {self.rejected}, "
                    f"failed {self.failed} | ETA {eta_text}"
                )
        elif record.status == "rejected":
            self.rejected += 1
            if self.plain:
                self._print(f"rejected {record.tokens}: {record.reason}")
        else:
            self.failed += 1
            self._print(f"failed {record.tokens}: {record.reason}")
        if self.steps_bar is not None:
            self.steps_bar.set_postfix(self._counts())

    def _follow_server(self, info: Dict[str, Any], record: CandidateRecord) -> str:
        """A controller server's count and total (its info has them) replace this client's own: the server ends
        the search, counting every client's rewards. Returns this client's own step when it differs."""
        if info.get("search_steps") is None or info.get("trained") is None:
            return ""
        self.total, self.done = int(info["search_steps"]), int(info["trained"])
        if self.steps_bar is not None:
            self.steps_bar.total = self.total
        return f" (this client's step {record.step})" if record.step != self.done else ""

    def on_end(self, result: SearchResult) -> None:
        for bar in (self.iter_bar, self.steps_bar):
            if bar is not None:
                bar.close()
        self.iter_bar = self.steps_bar = None
        best = result.best
        best_text = "none" if best is None else f"{best['reward']:.4f} (tokens {best['tokens']})"
        self._print(
            f"search finished: {result.steps_done} steps, rejected {self.rejected}, failed {self.failed} "
            f"in this run; best reward {best_text}"
        )


class VisualDLObserver(SearchObserver):
    """Scalars for `visualdl --logdir <log_dir>`.

    Per rewarded step (x = step): search/reward, best_reward, MFLOPs, params, latency_ms, temperature,
    seconds. Per candidate drawn (x = draws in this run, rejected ones included): draws/MFLOPs,
    draws/latency_ms, draws/rejected, draws/failed, to see where the sampler walks against the window.
    Per training iteration: train/loss, on one axis that runs on across candidates.
    Each run writes its own sub-folder: VisualDL shows one log file per folder, so a resumed search or a
    second client sharing the save_dir would otherwise hide the earlier one.
    """

    def __init__(self, log_dir: str, run_name: Optional[str] = None) -> None:
        self.log_dir = log_dir
        self.run_name = run_name or _run_name()
        self.writer: Optional[LogWriter] = None
        self.best: Optional[float] = None
        self.draws = self.rejected = self.failed = 0
        self.done = 0
        self.iteration_base: Optional[int] = None
        self.last_iteration = 0

    @property
    def run_dir(self) -> str:
        return os.path.join(self.log_dir, self.run_name)

    def _scalar(self, tag: str, value: Optional[float], step: int) -> None:
        if value is not None and self.writer is not None:
            self.writer.add_scalar(tag, float(value), int(step))

    def on_start(self, total_steps: int, done_steps: int) -> None:
        if self.writer is None:
            self.writer = LogWriter(logdir=self.run_dir, display_name=self.run_name)
        self.done = done_steps

    def on_iter(self, iteration: int, total: int, loss: float) -> None:
        if self.iteration_base is None:
            self.iteration_base = self.done * total  # a resumed run continues the axis where it stopped
        self.last_iteration = iteration
        self._scalar("train/loss", loss, self.iteration_base + iteration)

    def on_candidate(self, record: CandidateRecord, info: Dict[str, Any]) -> None:
        if self.iteration_base is not None:
            self.iteration_base += self.last_iteration
        self.last_iteration = 0
        self.draws += 1
        self.rejected += record.status == "rejected"
        self.failed += record.status == "failed"
        mflops = None if record.flops is None else record.flops / 1e6
        self._scalar("draws/MFLOPs", mflops, self.draws)
        self._scalar("draws/latency_ms", record.latency_ms, self.draws)
        self._scalar("draws/rejected", self.rejected, self.draws)
        self._scalar("draws/failed", self.failed, self.draws)
        if record.status == "trained":
            self.done += 1
            self.best = _best_reward(info, record.reward if self.best is None else max(self.best, record.reward))
            step = record.step
            self._scalar("search/reward", record.reward, step)
            self._scalar("search/best_reward", self.best, step)
            self._scalar("search/MFLOPs", mflops, step)
            self._scalar("search/params", record.params, step)
            self._scalar("search/latency_ms", record.latency_ms, step)
            self._scalar("search/temperature", info.get("temperature"), step)
            self._scalar("search/seconds", record.seconds, step)
        if self.writer is not None:
            self.writer.flush()  # a candidate takes minutes: show it now, not after VisualDL's 120 s timer

    def on_end(self, result: SearchResult) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def make_observers(
    quiet: bool,
    use_vdl: bool,
    vdl_log_dir: Optional[str],
    save_dir: str,
    run_name: Optional[str] = None,
) -> List[SearchObserver]:
    """Progress unless `quiet`; VisualDL when `use_vdl`, in `vdl_log_dir` or `<save_dir>/vdl_log`.

    `run_name` names this run's VisualDL sub-folder (e.g. the client name); default: time, host, pid.
    """
    observers: List[SearchObserver] = []
    if not quiet:
        observers.append(ProgressObserver())
    if use_vdl:
        observers.append(VisualDLObserver(scalar_log_dir(save_dir, vdl_log_dir), run_name=run_name))
    return observers


def scalar_log_dir(save_dir: str, vdl_log_dir: Optional[str]) -> str:
    """Where VisualDL logs go: --vdl_log_dir, or <save_dir>/vdl_log."""
    return vdl_log_dir or os.path.join(save_dir, VDL_DIR)


def _run_name() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}_{socket.gethostname()}_{os.getpid()}"


class ScalarLog:
    """VisualDL scalars of a loop counted in iterations or epochs (supernet training, FBNet):
    `log(step, {tag: value})`.

    Like VisualDLObserver, each run writes its own sub-folder of `log_dir` (`<what>_<time>_<host>_<pid>`), so
    a resumed run shows beside the first one instead of hiding it.
    """

    def __init__(self, log_dir: str, what: str = "") -> None:
        self.run_name = f"{what}_{_run_name()}" if what else _run_name()
        self.writer = LogWriter(logdir=os.path.join(log_dir, self.run_name), display_name=self.run_name)

    def log(self, step: int, scalars: Dict[str, Optional[float]]) -> None:
        for tag, value in scalars.items():
            if value is not None:
                self.writer.add_scalar(tag, float(value), int(step))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """--quiet, --use_vdl and --vdl_log_dir, as every search entry point takes them."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--use_vdl", action="store_true", help="log to VisualDL")
    parser.add_argument("--vdl_log_dir", default=None, help="VisualDL log dir (default <save_dir>/vdl_log)")
