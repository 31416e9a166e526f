"""Run an entry point so that user errors end as one line on stderr and a non-zero exit."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import logging
import signal
import sys
from typing import Callable, List, Optional, Sequence

from ppnas import interrupts
from ppnas.errors import ConfigError, PpnasError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


def run_main(main: Callable[[Optional[List[str]]], int], argv: Optional[List[str]] = None) -> None:
    """Call `main(argv)` and exit with its code; a PpnasError prints `error: <message>` only, Ctrl-C and
    SIGTERM print one `interrupted` line (with how to resume, when the search said so)."""
    # force: importing paddle installs a root handler first, which would make basicConfig a no-op
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    try:
        with interrupts.handled():
            code = main(argv)
    except PpnasError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt as err:
        terminated = isinstance(err, interrupts.Terminated)
        print(f"interrupted{' (SIGTERM)' if terminated else ''}{f': {err}' if str(err) else ''}", file=sys.stderr)
        sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    sys.exit(code or 0)


def phase_choice(phases: Sequence[str]) -> Callable[[str], str]:
    """An argparse `type` for --phase: a wrong value is one `error:` line naming it and the phases (argparse's
    own `choices` would print its usage first). The ConfigError passes through argparse to run_main."""

    def phase(value: str) -> str:
        if value not in phases:
            raise ConfigError(f"unknown --phase '{value}'; choose one of {', '.join(phases)}")
        return value

    return phase
