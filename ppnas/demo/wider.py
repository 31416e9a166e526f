"""A small face-detection set in the WIDER FACE layout, with known boxes.

Layout (what PaddleDetection's WIDERFaceDataSet reads):
  <out>/WIDER_train/images/<event>/<name>.jpg
  <out>/WIDER_val/images/<event>/<name>.jpg
  <out>/wider_face_split/wider_face_{train,val}_bbx_gt.txt
Annotation: the file name, the face count, then one line per face `x y w h blur expression illumination
invalid occlusion pose` (all ten fields: ppdet silently skips box lines of six characters or fewer).

`hard=True` makes a set on which detectors of different capacity score differently (the default one is solved
by nearly every BlazeFace-NAS subnet: AP@0.5 near 1.0): up to `max_faces` smaller faces (5%..30% of the side),
some blurred or with a low-contrast skin, some partly covered, and face-shaped skin-coloured blobs without
eyes or mouth among the distractors (hard negatives).
"""

import os
from typing import Dict, List, Tuple

import cv2
import numpy as np

EVENTS = ("0--Parade", "1--Handshaking", "2--Demonstration")
Box = Tuple[int, int, int, int]


def _skin(rng: np.random.RandomState) -> Tuple[int, int, int]:
    return tuple(int(c) for c in rng.randint([60, 110, 150], [120, 170, 235]))  # BGR


def _draw_face(img: np.ndarray, rng: np.random.RandomState, box: Box) -> None:
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    cv2.ellipse(img, (int(cx), int(cy)), (max(w // 2, 1), max(h // 2, 1)), 0, 0, 360, _skin(rng), -1)
    eye = max(1, w // 10)
    dark = (int(rng.randint(10, 50)),) * 3
    for side in (-1, 1):
        cv2.circle(img, (int(cx + side * w * 0.2), int(cy - h * 0.12)), eye, dark, -1)
    cv2.ellipse(img, (int(cx), int(cy + h * 0.22)), (max(w // 5, 1), max(h // 14, 1)), 0, 0, 180, dark, -1)


def _draw_distractor(img: np.ndarray, rng: np.random.RandomState) -> None:
    size = img.shape[0]
    color = tuple(int(c) for c in rng.randint(0, 255, 3))
    x, y = rng.randint(0, size, 2)
    if rng.rand() < 0.5:
        cv2.rectangle(img, (int(x), int(y)), (int(x + rng.randint(8, 40)), int(y + rng.randint(8, 40))), color, -1)
    else:
        cv2.circle(img, (int(x), int(y)), int(rng.randint(4, 20)), color, -1)


def _draw_blob(img: np.ndarray, rng: np.random.RandomState) -> None:
    """A face-shaped skin-coloured ellipse with no eyes or mouth: a hard negative."""
    size = img.shape[0]
    w = int(size * rng.uniform(0.05, 0.3))
    h = int(w * rng.uniform(1.0, 1.3))
    x, y = rng.randint(0, size, 2)
    cv2.ellipse(img, (int(x), int(y)), (max(w // 2, 1), max(h // 2, 1)), 0, 0, 360, _skin(rng), -1)


def _harden_face(img: np.ndarray, rng: np.random.RandomState, box: Box) -> None:
    """Blur the face, wash it towards the background, or cover a part of it (one of them, or none)."""
    x, y, w, h = box
    patch = img[y : y + h, x : x + w]
    kind = rng.randint(4)
    if kind == 0:
        img[y : y + h, x : x + w] = cv2.GaussianBlur(patch, (0, 0), max(0.5, w / 12.0))
    elif kind == 1:
        mean = img.reshape(-1, 3).mean(axis=0)
        img[y : y + h, x : x + w] = (0.45 * patch + 0.55 * mean).astype(np.uint8)
    elif kind == 2:
        color = tuple(int(c) for c in rng.randint(0, 255, 3))
        top = y + int(h * rng.uniform(0.4, 0.7))
        cv2.rectangle(img, (x, top), (x + w, y + h), color, -1)


def _overlaps(box: Box, others: List[Box]) -> bool:
    x, y, w, h = box
    return any(x < ox + ow and ox < x + w and y < oy + oh and oy < y + h for ox, oy, ow, oh in others)


def make_image(
    rng: np.random.RandomState, size: int, max_faces: int, hard: bool = False
) -> Tuple[np.ndarray, List[Box]]:
    """One image with 1..max_faces non-overlapping faces of 12%..45% of the image side (hard: 5%..30%)."""
    base = rng.randint(40, 200, 3)
    img = np.clip(base + rng.normal(0, 18, (size, size, 3)), 0, 255).astype(np.uint8)
    for _ in range(rng.randint(1, 4)):
        _draw_distractor(img, rng)
    if hard:
        for _ in range(rng.randint(1, 4)):
            _draw_blob(img, rng)
    low, high = (0.05, 0.3) if hard else (0.12, 0.45)
    boxes: List[Box] = []
    for _ in range(rng.randint(1, max_faces + 1) * 4):
        if len(boxes) >= max_faces:
            break
        w = int(size * rng.uniform(low, high))
        h = int(w * rng.uniform(1.0, 1.3))
        if h >= size:
            continue
        box = (int(rng.randint(0, size - w)), int(rng.randint(0, size - h)), w, h)
        if not _overlaps(box, boxes):
            boxes.append(box)
    for box in boxes:
        _draw_face(img, rng, box)
        if hard:
            _harden_face(img, rng, box)
    return img, boxes


def write_split(out: str, split: str, count: int, size: int, max_faces: int, seed: int, hard: bool = False) -> str:
    """Write `count` images of one split and its annotation file; returns the annotation path."""
    rng = np.random.RandomState(seed)
    lines: List[str] = []
    for i in range(count):
        event = EVENTS[i % len(EVENTS)]
        name = f"{event}/{event.split('--')[0]}_{event.split('--')[1]}_demo_{i}.jpg"
        img, boxes = make_image(rng, size, max_faces, hard)
        path = os.path.join(out, f"WIDER_{split}", "images", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        lines += [name, str(len(boxes))] + [f"{x} {y} {w} {h} 0 0 0 0 0 0" for x, y, w, h in boxes]
    anno = os.path.join(out, "wider_face_split", f"wider_face_{split}_bbx_gt.txt")
    os.makedirs(os.path.dirname(anno), exist_ok=True)
    with open(anno, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return anno


def make_wider_demo(
    out: str, train: int = 100, val: int = 30, size: int = 160, max_faces: int = 3, seed: int = 0, hard: bool = False
) -> Dict[str, str]:
    return {
        "train": write_split(out, "train", train, size, max_faces, seed, hard),
        "val": write_split(out, "val", val, size, max_faces, seed + 1, hard),
    }
