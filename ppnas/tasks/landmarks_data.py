"""The 106-point facial-landmark layout (NNI's PFLD example): list reader, mirror map, augmentations, Dataset.

Layout of a dataset root:
  train_data/list.txt, train_data/imgs/...   test_data/list.txt, test_data/imgs/...
Each list line: `img_path x1 y1 ... x106 y106 pitch yaw roll` -- 212 coordinates normalised to the image
(0..1), then three Euler angles in degrees. An image path is taken as given when absolute, else relative
to the list's folder, then to the dataset root, then to the working directory (the challenge's own lists
carry paths relative to where they were made).
"""

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import paddle

from ppnas.errors import DataError

NUM_POINTS = 106
ANGLES = 3
COORD_RANGE = (-1.0, 2.0)  # normalised coordinates of a point at most one image size outside the crop
DEMO_HINT = "python tools/make_landmark_demo_data.py --out data/demo_106points"


def _mirror_106() -> List[int]:
    """Index of each point's mirror image under a horizontal flip, for the 106-point layout.

    Groups: contour 0-32 (16 the chin), upper brows 33-37 / 38-42, nose bridge 43-46, nose base 47-51,
    eyes 52-57 / 58-63, lower brows 64-67 / 68-71, eye centre lines 72-74 / 75-77, nose sides 78-83 (pairs),
    outer lips 84-95 (84/90 the corners), inner lips 96-103 (96/100 the corners), pupils 104 / 105.
    """
    pairs = [(i, 32 - i) for i in range(16)]
    pairs += [(33 + i, 42 - i) for i in range(5)]
    pairs += [(47, 51), (48, 50)]
    pairs += [(52, 61), (53, 60), (54, 59), (55, 58), (56, 63), (57, 62)]
    pairs += [(64 + i, 71 - i) for i in range(4)]
    pairs += [(72, 75), (73, 76), (74, 77), (78, 79), (80, 81), (82, 83)]
    pairs += [(84, 90), (85, 89), (86, 88), (91, 95), (92, 94)]
    pairs += [(96, 100), (97, 99), (101, 103), (104, 105)]
    mirror = list(range(NUM_POINTS))
    for a, b in pairs:
        mirror[a], mirror[b] = b, a
    return mirror


MIRROR_106 = _mirror_106()


@dataclass
class LandmarkSample:
    image: str  # resolved path
    points: np.ndarray  # [106, 2] normalised x, y
    angles: np.ndarray  # [3] pitch, yaw, roll in degrees


def _resolve_image(raw: str, list_path: str, root: Optional[str]) -> Optional[str]:
    if os.path.isabs(raw):
        return raw if os.path.isfile(raw) else None
    for base in (os.path.dirname(list_path), root, os.getcwd()):
        if base is not None and os.path.isfile(os.path.join(base, raw)):
            return os.path.normpath(os.path.join(base, raw))
    return None


def read_list(list_path: str, root: Optional[str] = None, num_points: int = NUM_POINTS) -> List[LandmarkSample]:
    """Every sample of a `list.txt`; a malformed line or a missing image names the file and line."""
    if not os.path.isfile(list_path):
        raise DataError(f"landmark list not found: {list_path} (make the demo set with: {DEMO_HINT})")
    expected = 1 + 2 * num_points + ANGLES
    samples = []
    with open(list_path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{list_path}:{number}"
            if len(fields) != expected:
                raise DataError(
                    f"{where}: expected {expected} values (image path, {2 * num_points} coordinates, "
                    f"pitch yaw roll), got {len(fields)}"
                )
            try:
                values = np.asarray(fields[1:], dtype=np.float32)
            except ValueError:
                bad = next(v for v in fields[1:] if not _is_number(v))
                raise DataError(f"{where}: '{bad}' is not a number") from None
            _check_values(where, fields[1:], values, num_points)
            image = _resolve_image(fields[0], list_path, root)
            if image is None:
                raise DataError(f"{where}: image not found: {fields[0]}")
            points = values[: 2 * num_points].reshape(num_points, 2)
            samples.append(LandmarkSample(image, points, values[2 * num_points :]))
    if not samples:
        raise DataError(f"{list_path} holds no samples")
    return samples


def _check_values(where: str, fields: Sequence[str], values: np.ndarray, num_points: int) -> None:
    """Finite values, coordinates near the image: a nan or a typo would only show up as a nan loss later."""
    finite = np.isfinite(values)
    if not finite.all():
        raise DataError(f"{where}: '{fields[int(np.argmin(finite))]}' is not a finite number")
    coords = values[: 2 * num_points]
    low, high = COORD_RANGE
    outside = (coords < low) | (coords > high)
    if outside.any():
        index = int(np.argmax(outside))
        raise DataError(
            f"{where}: coordinate {index + 1} ({'xy'[index % 2]} of point {index // 2 + 1}) is {fields[index]}, far "
            f"outside the image: coordinates are normalised to the image (0..1; {low:g}..{high:g} accepted)"
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def split_holdout(count: int, fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """(weight-training indexes, held-out indexes) of a train list: a seeded, disjoint split."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"holdout_fraction must be between 0 and 1, got {fraction}")
    order = np.random.RandomState(seed).permutation(count)
    held = max(1, int(round(count * fraction)))
    if held >= count:
        raise DataError(f"the train list has {count} samples: too few to hold {fraction:.0%} out for the architecture")
    return sorted(order[held:].tolist()), sorted(order[:held].tolist())


# ---- augmentations (points normalised to the image) ----------------------------------------------------


def flip(image: np.ndarray, points: np.ndarray, angles: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal flip: x -> 1 - x, each point takes its mirror's place, yaw and roll change sign."""
    flipped = points[MIRROR_106].copy() if len(points) == NUM_POINTS else points.copy()
    flipped[:, 0] = 1.0 - flipped[:, 0]
    return image[:, ::-1].copy(), flipped, angles * np.array([1.0, -1.0, -1.0], dtype=np.float32)


def rotate_scale(
    image: np.ndarray, points: np.ndarray, angles: np.ndarray, degrees: float, scale: float
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate by `degrees` (counter-clockwise on screen) and zoom by `scale` about the image centre."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, scale)
    out = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    pixels = np.hstack([points * [w, h], np.ones((len(points), 1))]) @ matrix.T
    # the demo draws roll clockwise-positive (image y points down): a counter-clockwise turn lowers it
    return out, (pixels / [w, h]).astype(np.float32), angles - np.array([0.0, 0.0, degrees], dtype=np.float32)


@dataclass
class Augment:
    flip: bool = True
    max_rotation: float = 10.0  # degrees
    max_scale: float = 0.1  # zoom in [1 - s, 1 + s]


class LandmarkDataset(paddle.io.Dataset):
    """Images resized to `image_size`, BGR -> CHW float in [0, 1]; (image, 212 coordinates, 3 angles)."""

    def __init__(
        self, samples: Sequence[LandmarkSample], image_size: int, augment: Optional[Augment] = None, seed: int = 0
    ) -> None:
        super().__init__()
        self.samples = list(samples)
        self.image_size = int(image_size)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are drawn from (seed, epoch, index): a resumed epoch sees the same images."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        sample = self.samples[index]
        image = cv2.imread(sample.image, cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"cannot read image {sample.image}")
        image = cv2.resize(image, (self.image_size, self.image_size))
        points, angles = sample.points.copy(), sample.angles.copy()
        if self.augment is not None:
            rng = np.random.RandomState((self.seed * 1_000_003 + self.epoch * 10_007 + index) % 2**31)
            if self.augment.flip and rng.rand() < 0.5:
                image, points, angles = flip(image, points, angles)
            degrees = rng.uniform(-self.augment.max_rotation, self.augment.max_rotation)
            scale = rng.uniform(1.0 - self.augment.max_scale, 1.0 + self.augment.max_scale)
            image, points, angles = rotate_scale(image, points, angles, degrees, scale)
        tensor = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)
        return tensor, points.reshape(-1).astype(np.float32), angles.astype(np.float32)
