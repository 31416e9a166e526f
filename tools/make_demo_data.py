"""Write the demo face-detection set in the WIDER FACE layout: python tools/make_demo_data.py --out data/demo_wider"""

import zlib  # noqa: F401  # isort: skip  # before paddle/cv2 users, see ppnas/__init__.py
import argparse
from typing import List, Optional

from ppnas.cli import run_main
from ppnas.demo.wider import make_wider_demo


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/demo_wider", help="output folder")
    parser.add_argument("--train", type=int, default=100, help="training images")
    parser.add_argument("--val", type=int, default=30, help="validation images")
    parser.add_argument("--size", type=int, default=160, help="image side in pixels")
    parser.add_argument("--max-faces", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hard", action="store_true", help="smaller, blurred, covered faces and face-like blobs")
    args = parser.parse_args(argv)
    paths = make_wider_demo(args.out, args.train, args.val, args.size, args.max_faces, args.seed, args.hard)
    print(f"wrote {args.train} train and {args.val} val images under {args.out} ({paths['train']}, {paths['val']})")
    return 0


if __name__ == "__main__":
    run_main(main)
