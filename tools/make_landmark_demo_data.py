"""Write the demo 106-point landmark set: python tools/make_landmark_demo_data.py --out data/demo_106points"""

import zlib  # noqa: F401  # isort: skip  # before paddle/cv2 users, see ppnas/__init__.py
import argparse
from typing import List, Optional

from ppnas.cli import run_main
from ppnas.demo.landmarks import make_landmark_demo


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/demo_106points", help="output folder")
    parser.add_argument("--train", type=int, default=160, help="training images")
    parser.add_argument("--test", type=int, default=40, help="test images")
    parser.add_argument("--size", type=int, default=112, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_landmark_demo(args.out, args.train, args.test, args.size, args.seed)
    print(f"wrote {args.train} train and {args.test} test images under {args.out} ({paths['train']}, {paths['test']})")
    return 0


if __name__ == "__main__":
    run_main(main)
