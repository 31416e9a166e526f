"""A small segmentation set in the Cityscapes layout, with known labels (for the demo search and tests).

Layout (Cityscapes' folder scheme; read by PaddleSeg's generic `Dataset` through the list files):
    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
    train_list.txt, val_list.txt   ("<image> <label>" per line, relative to the output folder)
Classes (train ids): 0 background, 1 rectangle, 2 ellipse, 3 triangle. Each shape class has its own hue
range over a noisy gradient, so a small net learns it in a few hundred iterations. Same seed, same files.
"""

import os
from typing import Dict, List, Tuple

import cv2
import numpy as np

from ppnas.errors import ConfigError

CLASS_NAMES = ("background", "rectangle", "ellipse", "triangle")
NUM_CLASSES = len(CLASS_NAMES)
CLASS_HUES = {1: (0, 20), 2: (55, 75), 3: (110, 130)}  # OpenCV hue in [0, 180)
CITIES = {"train": ("aachen", "bremen"), "val": ("frankfurt",)}
LIST_FILES = {"train": "train_list.txt", "val": "val_list.txt"}


def parse_size(text: str) -> Tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must be HxW, e.g. 128x256, got '{text}'") from None
    if height < 32 or width < 32:
        raise ConfigError(f"--size {text}: both sides must be at least 32 pixels")
    return height, width


def _background(rng: np.random.RandomState, height: int, width: int) -> np.ndarray:
    ramp = np.linspace(0, 1, width)[None, :, None] * rng.uniform(-60, 60, size=3)
    base = rng.uniform(70, 170, size=3) + ramp + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def _colour(rng: np.random.RandomState, class_id: int) -> Tuple[int, int, int]:
    low, high = CLASS_HUES[class_id]
    hsv = np.uint8([[[rng.randint(low, high), rng.randint(150, 256), rng.randint(150, 256)]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _draw(mask: np.ndarray, rng: np.random.RandomState, class_id: int) -> None:
    """Draw one filled shape of `class_id` into `mask` (0/1 uint8)."""
    height, width = mask.shape
    size = rng.randint(min(height, width) // 8, min(height, width) // 3)
    cx, cy = rng.randint(size, width - size), rng.randint(size, height - size)
    if class_id == 1:
        w, h = rng.randint(size // 2, size + 1), rng.randint(size // 2, size + 1)
        cv2.rectangle(mask, (cx - w, cy - h), (cx + w, cy + h), 1, thickness=-1)
    elif class_id == 2:
        axes = (int(rng.randint(size // 2, size + 1)), int(rng.randint(size // 2, size + 1)))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
    else:
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        points = np.stack([cx + size * np.cos(angles), cy + size * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [points.round().astype(np.int32)], 1)


def make_sample(rng: np.random.RandomState, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """One BGR image and its label image of train ids."""
    image = _background(rng, height, width)
    label = np.zeros((height, width), np.uint8)
    for _ in range(rng.randint(2, 6)):
        class_id = rng.randint(1, NUM_CLASSES)
        mask = np.zeros((height, width), np.uint8)
        _draw(mask, rng, class_id)
        noise = rng.normal(0, 10, size=(height, width, 3))
        shape_pixels = np.clip(np.array(_colour(rng, class_id)) + noise, 0, 255).astype(np.uint8)
        image[mask == 1] = shape_pixels[mask == 1]
        label[mask == 1] = class_id
    return image, label


def write_split(out: str, split: str, count: int, rng: np.random.RandomState, size: Tuple[int, int]) -> List[str]:
    lines = []
    cities = CITIES[split]
    for index in range(count):
        city = cities[index % len(cities)]
        stem = f"{city}_{index // len(cities):06d}_{19 * (index % 7):06d}"
        image_rel = os.path.join("leftImg8bit", split, city, f"{stem}_leftImg8bit.png")
        label_rel = os.path.join("gtFine", split, city, f"{stem}_gtFine_labelTrainIds.png")
        image, label = make_sample(rng, *size)
        for rel, array in ((image_rel, image), (label_rel, label)):
            os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
            if not cv2.imwrite(os.path.join(out, rel), array):
                raise ConfigError(f"cannot write {os.path.join(out, rel)}: check --out")
        lines.append(f"{image_rel} {label_rel}")
    with open(os.path.join(out, LIST_FILES[split]), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def make_cityscapes_demo(out: str, train: int, val: int, size: Tuple[int, int], seed: int = 0) -> Dict[str, str]:
    """Write `train` + `val` samples of `size` (H, W) under `out`; returns the two list files."""
    if train < 1 or val < 1:
        raise ConfigError(f"the demo set needs at least 1 train and 1 val image, got {train} and {val}")
    rng = np.random.RandomState(seed)
    for split, count in (("train", train), ("val", val)):
        write_split(out, split, count, rng, size)
    return {split: os.path.join(out, name) for split, name in LIST_FILES.items()}
