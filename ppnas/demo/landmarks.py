"""A small synthetic facial-landmark set in the 106-point layout, whose 106 points are known exactly.

Each image is a drawn face (skin, brows, eyes with pupils, nose, lips) of a 3-D template of the 106
points turned by (pitch, yaw, roll) and projected, scaled and shifted at random. The template is mirror
symmetric under MIRROR_106, so a flipped image is again a valid sample. Written as
  <out>/train_data/imgs/NNNNNN.png, <out>/train_data/list.txt, <out>/test_data/... (paths relative to the list)
"""

import os
from typing import Dict, List, Tuple

import cv2
import numpy as np

from ppnas.tasks.landmarks_data import MIRROR_106, NUM_POINTS


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, count: int) -> np.ndarray:
    t = np.linspace(start, stop, count)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _template() -> np.ndarray:
    """[106, 3] points (x right, y down, z towards the camera) in a face frame of about [-1, 1]."""
    p = np.full((NUM_POINTS, 2), np.nan)
    p[0:33] = _arc(0.0, -0.1, 0.9, 0.95, np.pi, 0.0, 33)  # left temple, chin (16), right temple
    p[33:38] = np.stack([np.linspace(-0.75, -0.2, 5), [-0.45, -0.52, -0.55, -0.53, -0.48]], axis=1)
    p[64:68] = np.stack([np.linspace(-0.7, -0.25, 4), [-0.42, -0.46, -0.47, -0.44]], axis=1)
    p[43:47] = np.stack([np.zeros(4), np.linspace(-0.32, 0.05, 4)], axis=1)
    p[47:50] = [[-0.16, 0.14], [-0.08, 0.17], [0.0, 0.19]]
    eye = _arc(-0.4, -0.22, 0.18, 0.08, np.pi, 2 * np.pi, 4)  # outer corner, over the top, inner corner
    low = _arc(-0.4, -0.22, 0.18, 0.08, np.pi / 3, 2 * np.pi / 3, 2)  # bottom: inner then outer
    p[52:56], p[56:58] = eye, low
    p[72], p[73], p[74] = [-0.4, -0.3], [-0.4, -0.14], [-0.4, -0.22]
    p[78], p[80], p[82] = [-0.09, -0.1], [-0.12, 0.04], [-0.17, 0.1]
    p[84:88] = [[-0.32, 0.48], [-0.2, 0.42], [-0.09, 0.4], [0.0, 0.42]]
    p[93:96] = [[0.0, 0.6], [-0.12, 0.58], [-0.24, 0.54]]
    p[96:99] = [[-0.26, 0.48], [-0.12, 0.46], [0.0, 0.47]]
    p[102:104] = [[0.0, 0.5], [-0.12, 0.5]]
    p[104] = p[74]
    for i, j in enumerate(MIRROR_106):  # the right side mirrors the left; centre points keep x = 0
        if np.isnan(p[i, 0]) and not np.isnan(p[j, 0]):
            p[i] = [-p[j, 0], p[j, 1]]
    assert not np.isnan(p).any() and np.allclose(p[MIRROR_106] * [-1, 1], p, atol=1e-6)
    depth = 0.6 * (1.0 - np.clip(p[:, 0] ** 2, 0, 1))
    depth[43:52] += 0.25  # the nose stands out
    depth[78:84] += 0.15
    return np.hstack([p, depth[:, None]])


TEMPLATE = _template()


def _rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    p, y, r = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _poly(img: np.ndarray, pts: np.ndarray, color: Tuple[int, ...], closed: bool, thick: int = -1) -> None:
    pts = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
    if thick < 0:
        cv2.fillPoly(img, [pts], color, lineType=cv2.LINE_AA)
    else:
        cv2.polylines(img, [pts], closed, color, thick, lineType=cv2.LINE_AA)


def make_face(rng: np.random.RandomState, size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(BGR image, [106, 2] points normalised to the image, (pitch, yaw, roll) in degrees)."""
    angles = np.array([rng.uniform(-15, 15), rng.uniform(-30, 30), rng.uniform(-20, 20)], dtype=np.float32)
    turned = TEMPLATE @ _rotation(*angles).T
    scale = size * rng.uniform(0.36, 0.44)
    centre = size / 2.0 + rng.uniform(-0.05, 0.05, 2) * size
    pts = turned[:, :2] * scale + centre
    img = np.empty((size, size, 3), np.uint8)
    img[:] = rng.randint(30, 220, 3)
    img = cv2.add(img, rng.randint(0, 40, img.shape).astype(np.uint8))
    skin = tuple(int(c) for c in rng.randint([60, 110, 150], [130, 180, 240]))
    forehead = _arc(0.0, -0.3, 0.9, 0.75, np.pi, 2 * np.pi, 12)
    top = (np.hstack([forehead, np.full((12, 1), 0.3)]) @ _rotation(*angles).T)[::-1, :2] * scale + centre
    head = np.vstack([pts[0:33], top])
    _poly(img, head, skin, True)
    dark = tuple(int(c) for c in rng.randint(10, 60, 3))
    _poly(img, np.vstack([pts[33:38], pts[67:63:-1]]), dark, True)
    _poly(img, np.vstack([pts[38:43], pts[71:67:-1]]), dark, True)
    for eye, pupil in ((list(range(52, 56)) + [56, 57], 104), ([58, 59, 60, 61, 62, 63], 105)):
        _poly(img, pts[eye], (235, 235, 235), True)
        cv2.circle(img, tuple(int(v) for v in np.round(pts[pupil])), max(1, size // 45), dark, -1, cv2.LINE_AA)
    _poly(img, pts[43:47], dark, False, 1)
    _poly(img, pts[47:52], dark, False, 1)
    lips = tuple(int(c) for c in rng.randint([40, 40, 140], [90, 90, 220]))
    _poly(img, pts[84:96], lips, True)
    _poly(img, pts[96:104], (30, 20, 60), True)
    return img, (pts / size).astype(np.float32), angles


def _write_split(folder: str, count: int, size: int, rng: np.random.RandomState) -> str:
    os.makedirs(os.path.join(folder, "imgs"), exist_ok=True)
    lines: List[str] = []
    for i in range(count):
        img, points, angles = make_face(rng, size)
        name = f"imgs/{i:06d}.png"
        cv2.imwrite(os.path.join(folder, name), img)
        values = " ".join(f"{v:.6f}" for v in np.concatenate([points.reshape(-1), angles]))
        lines.append(f"{name} {values}\n")
    path = os.path.join(folder, "list.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return path


def make_landmark_demo(out: str, train: int = 160, test: int = 40, size: int = 112, seed: int = 0) -> Dict[str, str]:
    """Write the demo set under `out`; returns the two list paths."""
    rng = np.random.RandomState(seed)
    return {
        "train": _write_split(os.path.join(out, "train_data"), train, size, rng),
        "test": _write_split(os.path.join(out, "test_data"), test, size, rng),
    }
