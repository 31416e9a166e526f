"""Write the config-key reference: python tools/config_keys.py [--check]

docs/config_keys.md lists every key of every tool with its default, unit and meaning, generated from the
code's own key tables (ppnas/keyref.py). --check writes nothing and fails when the page differs from the code.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import pathlib
from typing import List, Optional

from ppnas.cli import run_main
from ppnas.errors import ConfigError
from ppnas.keyref import render
from ppnas.storage import atomic_write_text

PAGE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "config_keys.md"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when the page differs from the code")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
            raise ConfigError(f"{PAGE} differs from the code's key tables: run python tools/config_keys.py")
        print(f"{PAGE} matches the code")
        return 0
    atomic_write_text(str(PAGE), text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    run_main(main)
