"""The 106-point reader, mirror map, augmentations, NME and the held-out split."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os
import pathlib

import numpy as np
import pytest
from fbnet_helpers import TEST, TRAIN, tiny_config

from ppnas.config import load_config
from ppnas.demo.landmarks import TEMPLATE
from ppnas.errors import DataError
from ppnas.tasks.landmarks import load_landmark_data, nme_per_image
from ppnas.tasks.landmarks_data import MIRROR_106, flip, read_list, rotate_scale


def _write_list(folder: pathlib.Path, lines: list) -> pathlib.Path:
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    (folder / "imgs" / "a.png").write_bytes(b"")
    path = folder / "list.txt"
    path.write_text("".join(lines))
    return path


def _line(name: str = "imgs/a.png", values: int = 215) -> str:
    return name + " " + " ".join(f"{0.001 * i:.3f}" for i in range(values)) + "\n"


def test_reader_reads_points_and_angles(tiny_landmarks: pathlib.Path) -> None:
    samples = read_list(str(tiny_landmarks / "train_data" / "list.txt"))
    assert len(samples) == TRAIN
    first = open(tiny_landmarks / "train_data" / "list.txt").readline().split()
    np.testing.assert_allclose(samples[0].points[1], [float(first[3]), float(first[4])], atol=1e-6)
    np.testing.assert_allclose(samples[0].angles, [float(v) for v in first[-3:]], atol=1e-5)
    assert os.path.isfile(samples[0].image) and samples[0].points.shape == (106, 2)


def test_reader_names_file_and_line_of_a_short_line(tmp_path: pathlib.Path) -> None:
    path = _write_list(tmp_path, [_line(), _line(values=214)])
    with pytest.raises(DataError, match=rf"{path}:2: expected 216 values .* got 215"):
        read_list(str(path))


def test_reader_names_a_bad_number_and_a_missing_image(tmp_path: pathlib.Path) -> None:
    path = _write_list(tmp_path, [_line().replace("0.002", "x.y", 1)])
    with pytest.raises(DataError, match=rf"{path}:1: 'x.y' is not a number"):
        read_list(str(path))
    path = _write_list(tmp_path, [_line(), _line("imgs/missing.png")])
    with pytest.raises(DataError, match=rf"{path}:2: image not found: imgs/missing.png"):
        read_list(str(path))


def test_reader_refuses_non_finite_values_and_points_far_outside_the_image(tmp_path: pathlib.Path) -> None:
    path = _write_list(tmp_path, [_line()] * 3 + [_line().replace("0.006", "nan", 1)])
    with pytest.raises(DataError, match=rf"{path}:4: 'nan' is not a finite number"):
        read_list(str(path))
    path = _write_list(tmp_path, [_line().replace("0.213", "-inf", 1)])  # an angle
    with pytest.raises(DataError, match=rf"{path}:1: '-inf' is not a finite number"):
        read_list(str(path))
    path = _write_list(tmp_path, [_line(), _line().replace("0.017", "17.5", 1)])  # pixels, not normalised
    with pytest.raises(DataError, match=rf"{path}:2: coordinate 18 \(y of point 9\) is 17.5, far outside the image"):
        read_list(str(path))


def test_missing_dataset_names_the_demo_command(tmp_path: pathlib.Path) -> None:
    cfg = load_config(str(tiny_config(tmp_path, tmp_path / "nowhere")))
    with pytest.raises(DataError, match="make_landmark_demo_data.py"):
        load_landmark_data(cfg)


def test_mirror_map_is_an_involution_and_flip_twice_is_identity() -> None:
    assert sorted(MIRROR_106) == list(range(106))
    assert [MIRROR_106[MIRROR_106[i]] for i in range(106)] == list(range(106))
    assert MIRROR_106[0] == 32 and MIRROR_106[16] == 16 and MIRROR_106[104] == 105 and MIRROR_106[87] == 87
    rng = np.random.RandomState(0)
    image = rng.randint(0, 255, (20, 20, 3)).astype(np.uint8)
    points, angles = rng.rand(106, 2).astype(np.float32), np.array([5.0, -20.0, 8.0], np.float32)
    once = flip(image, points, angles)
    twice = flip(*once)
    np.testing.assert_array_equal(twice[0], image)
    np.testing.assert_allclose(twice[1], points, atol=1e-6)
    np.testing.assert_allclose(twice[2], angles)
    assert not np.allclose(once[1], points)
    np.testing.assert_allclose(once[2], [5.0, 20.0, -8.0])
    # the demo face is symmetric: its flip is the same face, point for point
    face = (TEMPLATE[:, :2] + 1.0) / 2.0
    np.testing.assert_allclose(flip(image, face, angles)[1], face, atol=1e-6)


def test_rotation_moves_points_with_the_image() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    image[8:12, 28:32] = 255  # a bright square centred on (30, 10) px
    points = np.array([[30 / 40, 10 / 40]], np.float32)
    out, moved, angles = rotate_scale(image, points, np.zeros(3, np.float32), 90.0, 1.0)
    ys, xs = np.nonzero(out[:, :, 0] > 128)
    np.testing.assert_allclose(moved[0] * 40, [xs.mean() + 0.5, ys.mean() + 0.5], atol=1.0)
    assert angles[2] == pytest.approx(-90.0)


def test_nme_on_a_hand_made_case() -> None:
    gt = np.zeros((1, 106, 2))
    gt[0, 35], gt[0, 93] = [0.0, 0.0], [0.0, 0.5]  # normaliser 0.5 * 106
    pred = gt.copy()
    pred[0, 0] += [0.3, 0.4]  # one point off by 0.5
    assert nme_per_image(pred, gt, "nni")[0] == pytest.approx(0.5 / (0.5 * 106))
    assert nme_per_image(gt.reshape(1, -1), gt.reshape(1, -1), "nni")[0] == 0.0


def test_held_out_split_is_disjoint_from_train_part_and_test_list(tiny_landmarks: pathlib.Path, tmp_path) -> None:
    data = load_landmark_data(load_config(str(tiny_config(tmp_path, tiny_landmarks))), seed=3)
    held = {s.image for s in data.holdout.samples}
    fit = {s.image for s in data.train.samples}
    test = {s.image for s in data.test.samples}
    assert len(held) == 3 and len(fit) == TRAIN - 3 and len(test) == TEST
    assert not held & fit and not held & test and not fit & test
    assert held | fit == {s.image for s in data.full_train.samples}
    image, landmarks, angles = data.train[0]
    assert image.shape == (3, 32, 32) and landmarks.shape == (212,) and angles.shape == (3,)
