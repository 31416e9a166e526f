"""Run an entry point so that user errors end as one line on stderr and a non-zero exit."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import logging
import sys
from typing import Callable, List, Optional

from ppnas.errors import PpnasError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run_main(main: Callable[[Optional[List[str]]], int], argv: Optional[List[str]] = None) -> None:
    """Call `main(argv)` and exit with its code; a PpnasError prints `error: <message>` only."""
    # force: importing paddle installs a root handler first, which would make basicConfig a no-op
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    try:
        code = main(argv)
    except PpnasError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code or 0)
