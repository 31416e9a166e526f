"""Write the demo segmentation set in the Cityscapes layout: python tools/make_seg_demo_data.py --out DIR

Options: --train N --val M --size HxW --seed S (defaults 40, 10, 128x256, 0). See ppnas/demo/cityscapes.py
for the layout and the classes; configs/demo/cityscape_demo.yaml reads data/demo_cityscapes.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle/cv2 users, see ppnas/__init__.py
import argparse
from typing import List, Optional

from ppnas.cli import run_main
from ppnas.demo.cityscapes import CLASS_NAMES, make_cityscapes_demo, parse_size


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/demo_cityscapes", help="output folder")
    parser.add_argument("--train", type=int, default=40, help="training images")
    parser.add_argument("--val", type=int, default=10, help="validation images")
    parser.add_argument("--size", default="128x256", help="image size HxW")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    lists = make_cityscapes_demo(args.out, args.train, args.val, size, args.seed)
    print(
        f"wrote {args.train} train and {args.val} val images of {size[0]}x{size[1]} under {args.out} "
        f"({len(CLASS_NAMES)} classes: {', '.join(CLASS_NAMES)}; lists {lists['train']}, {lists['val']})"
    )
    return 0


if __name__ == "__main__":
    run_main(main)
