"""The NME normaliser: the outer eye corners of this 106-point layout by default, NNI's pair 35 / 93 on request."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import pathlib
from typing import Callable

import numpy as np
import paddle
import pytest
from fbnet_helpers import tiny_config

from ppnas.config import load_config
from ppnas.demo.landmarks import TEMPLATE
from ppnas.tasks.landmarks import NME_NORMS, evaluate_nme, load_landmark_data, nme_per_image


def test_the_default_pair_is_the_outer_eye_corners_and_nni_s_is_a_brow_and_a_lip_point() -> None:
    x = TEMPLATE[:, 0]  # the generator's face, seen from the front: the left eye is 52-57, the right one 58-63
    left, right = NME_NORMS["eyes"]
    assert (left, right) == (52, 61)
    assert x[left] == x[52:58].min() and x[right] == x[58:64].max()  # the outermost points of each eye
    assert x[left] == pytest.approx(-x[right])
    brow, lip = NME_NORMS["nni"]
    assert 33 <= brow <= 42 and 84 <= lip <= 95  # upper brows, outer lips (ppnas/tasks/landmarks_data.py)


def test_nme_divides_the_summed_point_error_by_the_chosen_pair_distance_times_106() -> None:
    gt = np.tile(TEMPLATE[None, :, :2], (2, 1, 1))
    pred = gt.copy()
    pred[0, 10] += [0.03, 0.04]  # image 0: one point 0.05 off; image 1: exact
    eyes = np.linalg.norm(gt[0, 52] - gt[0, 61]) * 106
    nni = np.linalg.norm(gt[0, 35] - gt[0, 93]) * 106
    np.testing.assert_allclose(nme_per_image(pred, gt, "eyes"), [0.05 / eyes, 0.0])
    np.testing.assert_allclose(nme_per_image(pred.reshape(2, -1), gt.reshape(2, -1), "nni"), [0.05 / nni, 0.0])


def _shifted_right(truth: np.ndarray) -> Callable[[paddle.Tensor], paddle.Tensor]:
    """A predictor that puts every point 0.01 to the right of the truth, batch after batch."""
    done = [0]

    def predict(images: paddle.Tensor) -> paddle.Tensor:
        start, done[0] = done[0], done[0] + len(images)
        return paddle.to_tensor(truth[start : done[0]] + np.tile([0.01, 0.0], 106), dtype="float32")

    return predict


def test_the_data_block_picks_the_normaliser_that_evaluation_uses(tiny_landmarks: pathlib.Path, tmp_path) -> None:
    shifted = {}
    for norm in ("eyes", "nni"):
        folder = tmp_path / norm
        folder.mkdir()
        config = tiny_config(folder, tiny_landmarks, Data={"nme_norm": norm})
        data = load_landmark_data(load_config(str(config)), seed=0)
        assert data.nme_norm == norm
        truth = np.stack([sample.points.reshape(-1) for sample in data.test.samples])  # the unshuffled order
        shifted[norm] = evaluate_nme(_shifted_right(truth), data.loader(data.test, False), data.nme_norm)
        pairs = np.stack([s.points for s in data.test.samples])
        a, b = NME_NORMS[norm]
        expected = np.mean(0.01 * 106 / (np.linalg.norm(pairs[:, a] - pairs[:, b], axis=1) * 106))
        assert shifted[norm] == pytest.approx(expected, rel=1e-5)
    assert shifted["eyes"] != pytest.approx(shifted["nni"], rel=0.05)
