"""Facial-landmark task (PFLD, 106 points): the angle-weighted loss, NME, and the train / held-out / test data.

Loss (PFLD, as NNI's example trains it): per sample the squared L2 distance over the 212 coordinates,
weighted by the pose error of the auxiliary net, sum_k (1 - cos(angle_k - angle_gt_k)) over pitch, yaw,
roll (radians). Ours adds 1 to that weight: with the weight alone a perfect angle prediction would switch
the landmark loss off (the paper's attribute weights, which the 106-point lists do not carry, are >= 1).
The architecture epochs use the plain L2 loss, as the example does.

NME: per image, the sum over points of the L2 error divided by (||gt[a] - gt[b]|| * 106), then the mean over
images. `Data.nme_norm` picks the pair: `eyes` (default), the outer eye corners 52 and 61 of this layout (the
inter-ocular distance; ppnas/tasks/landmarks_data.py's mirror map and the demo generator place them), or `nni`,
the pair 35 / 93 of NNI's example, which in this layout is an upper-brow point and an outer-lip point (kept to
compare with NNI's numbers). Every NME the FBNet tools record names its normaliser.
"""

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np
import paddle

from ppnas import parallel
from ppnas.config import check_keys, resolve_path
from ppnas.errors import ConfigError, DataError
from ppnas.tasks.landmarks_data import (
    DEMO_HINT,
    NUM_POINTS,
    Augment,
    LandmarkDataset,
    read_list,
    split_holdout,
)

NME_NORMS: Dict[str, Tuple[int, int]] = {"eyes": (52, 61), "nni": (35, 93)}
DATA_DEFAULTS: Dict[str, Any] = {
    "dataset_dir": "data/demo_106points",
    "train_list": "train_data/list.txt",
    "test_list": "test_data/list.txt",
    "image_size": 112,
    "holdout_fraction": 0.2,
    "batch_size": 32,
    "num_workers": 0,
    "flip": True,
    "max_rotation": 10.0,
    "max_scale": 0.1,
    "nme_norm": "eyes",  # eyes: outer eye corners 52 / 61; nni: NNI's points 35 / 93 (see the module docstring)
}


def pfld_loss(
    landmarks: paddle.Tensor, angles: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor
) -> Tuple[paddle.Tensor, paddle.Tensor]:
    """(angle-weighted loss, plain L2 loss), both means over the batch (see the module docstring)."""
    l2 = paddle.sum(paddle.square(landmarks_gt - landmarks), axis=1)
    weight = 1.0 + paddle.sum(1.0 - paddle.cos((angles - angles_gt) * (math.pi / 180.0)), axis=1)
    return paddle.mean(weight * l2), paddle.mean(l2)


def nme_per_image(pred: np.ndarray, gt: np.ndarray, norm: str) -> np.ndarray:
    """NME of each image normalised by the `norm` pair (NME_NORMS); `pred`, `gt` are [N, 212] or [N, 106, 2]."""
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(len(gt), -1, 2)
    a, b = NME_NORMS[norm]
    norm = np.linalg.norm(gt[:, a] - gt[:, b], axis=1) * gt.shape[1]
    return np.linalg.norm(pred - gt, axis=2).sum(axis=1) / norm


@dataclass
class LandmarkData:
    """The three parts of a 106-point dataset: weight training, held-out (architecture), test."""

    train: LandmarkDataset
    holdout: LandmarkDataset
    test: LandmarkDataset
    full_train: LandmarkDataset  # train + held-out, for retraining the chosen subnet
    batch_size: int
    num_workers: int
    nme_norm: str  # the NME_NORMS pair every NME of this data is normalised by

    def loader(self, dataset: LandmarkDataset, shuffle: bool, epoch: int = 0) -> paddle.io.DataLoader:
        """Each rank's shard (ppnas.parallel); the order and augmentations depend only on (seed, epoch)."""
        dataset.set_epoch(epoch)
        np.random.seed((dataset.seed + epoch) % 2**31)  # BatchSampler shuffles with numpy's global state
        sampler = parallel.shard_sampler(dataset, self.batch_size, shuffle=shuffle, drop_last=False)
        return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=self.num_workers)


def data_settings(block: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    block = dict(block or {})
    check_keys(block, DATA_DEFAULTS, where="Data")
    settings = {**DATA_DEFAULTS, **block}
    if settings["nme_norm"] not in NME_NORMS:
        raise ConfigError(f"Data.nme_norm must be one of {', '.join(NME_NORMS)}, got {settings['nme_norm']!r}")
    return settings


def load_landmark_data(cfg: Mapping[str, Any], seed: int = 0) -> LandmarkData:
    """From the config's `Data` block; the held-out part comes from the train list, never the test list."""
    settings = data_settings(cfg.get("Data"))
    root = resolve_path(cfg, settings["dataset_dir"])
    if not os.path.isdir(root):
        raise DataError(f"dataset folder not found: {root} (make the demo set with: {DEMO_HINT})")
    train = read_list(os.path.join(root, settings["train_list"]), root, NUM_POINTS)
    test = read_list(os.path.join(root, settings["test_list"]), root, NUM_POINTS)
    fit_idx, held_idx = split_holdout(len(train), float(settings["holdout_fraction"]), seed)
    augment = Augment(bool(settings["flip"]), float(settings["max_rotation"]), float(settings["max_scale"]))
    size = int(settings["image_size"])
    return LandmarkData(
        train=LandmarkDataset([train[i] for i in fit_idx], size, augment, seed),
        holdout=LandmarkDataset([train[i] for i in held_idx], size, None, seed + 1),
        test=LandmarkDataset(test, size, None, seed + 2),
        full_train=LandmarkDataset(train, size, augment, seed),
        batch_size=int(settings["batch_size"]),
        num_workers=int(settings["num_workers"]),
        nme_norm=settings["nme_norm"],
    )


def evaluate_nme(predict: Any, batches: Iterable[Tuple[Any, Any, Any]], norm: str) -> float:
    """Mean NME over `batches` of (image, landmarks, angles); `predict(images)` returns [N, 212] landmarks."""
    scores = []
    with paddle.no_grad():
        for images, landmarks_gt, _ in batches:
            scores.append(nme_per_image(predict(images).numpy(), landmarks_gt.numpy(), norm))
    return float(np.concatenate(scores).mean())
