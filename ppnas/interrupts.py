"""SIGTERM ends a run like Ctrl-C, and neither lands between a history line and its checkpoint.

Paddle's C++ handler, installed when paddle is imported, turns SIGTERM (`kill`, `timeout`, a batch
scheduler) into a "FatalError: Termination signal" dump and an abort. `handled` replaces it, so it must
be entered after paddle is imported: `ppnas.cli.run_main` enters it, and every entry point that trains
imports paddle at the top.
"""

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C (cleanup runs, nothing records it as a failed candidate)."""


_holding = 0  # depth of `held_back` blocks now running
_pending: Optional[int] = None  # a signal that arrived inside one


def _interrupt(signum: int) -> None:
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _handle(signum: int, frame: Optional[FrameType]) -> None:
    global _pending
    if _holding:
        _pending = signum
        return
    _interrupt(signum)


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM handled in Python inside the block (enter it after importing paddle); the handlers
    from before are put back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python delivers signals to the main thread only, and only it may set handlers
        return
    previous = {signum: signal.signal(signum, _handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def held_back() -> Iterator[None]:
    """Run the block to its end before a SIGINT or SIGTERM that arrives inside it takes effect."""
    global _holding, _pending
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if not _holding and _pending is not None:
            signum, _pending = _pending, None
            _interrupt(signum)


def iterate(loader: Iterable[T]) -> Iterator[T]:
    """`iter(loader)` with signals held back while it is built: a Ctrl-C or SIGTERM inside paddle's DataLoader
    iterator constructor leaves a half-built iterator whose __del__ raises AttributeError at exit, after our
    `interrupted` line."""
    with held_back():
        return iter(loader)


@contextmanager
def resume_hint(save_dir: str) -> Iterator[None]:
    """A Ctrl-C or SIGTERM inside the block ends with how to resume: `interrupted (SIGTERM): resume with -r DIR`
    (ppnas.cli prints it), the same line in every tool. Everything finished before it is saved."""
    try:
        yield
    except KeyboardInterrupt as stop:
        raise type(stop)(f"resume with -r {save_dir}") from None
