"""Report of a search: python tools/report.py SAVE_DIR [--out DIR] [--top N]

Writes pareto.png, search_curve.png and report.md (plus one config fragment per top candidate under
candidates/) into DIR (default SAVE_DIR) and prints the best candidates under the constraint.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
from typing import List, Optional

from ppnas.cli import run_main
from ppnas.report.build import write_report


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("save_dir", metavar="SAVE_DIR", help="save_dir of a search (holds history.jsonl)")
    parser.add_argument("--out", default=None, help="where to write the report (default: SAVE_DIR)")
    parser.add_argument("--top", type=int, default=5, help="how many candidates to list (default: 5)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    write_report(args.save_dir, out_dir=args.out, top=args.top)
    return 0


if __name__ == "__main__":
    run_main(main)
