"""BN calibration on a fixed list of images (calib_file) through the eval reader's transforms (calib_transforms:
eval): the statistics equal a reference computation on those eval-transformed batches and differ from the
train-transform ones; both tasks."""

import ppnas  # noqa: F401  # isort: skip
import pathlib

import cv2
import numpy as np
import paddle
import pytest
from oneshot_helpers import write_bignas_config

from ppnas.errors import ConfigError
from ppnas.oneshot.adapters import adapter_for
from ppnas.oneshot.dynamic.ops import DynamicBatchNorm2D
from ppnas.oneshot.evaluate import SupernetEvaluator
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.supernet import build_supernet

# random brightness and flips: the train transforms must give other images than the eval reader's
TRAIN_READER = {
    "sample_transforms": [
        {"Decode": {}},
        {"RandomDistort": {"brightness": [0.5, 1.125, 0.875], "random_apply": False}},
        {"RandomFlip": {}},
        {"Resize": {"target_size": [64, 64], "keep_ratio": False, "interp": 1}},
        {"NormalizeBox": {}},
        {"PadBox": {"num_max_boxes": 4}},
    ],
    "batch_size": 4,
}
MEAN, STD = np.array([123, 117, 104], "float32"), np.float32(127.502231)  # the tiny config's NormalizeImage


def _wider_subset(wider: pathlib.Path, path: pathlib.Path, count: int) -> list:
    """The last `count` images of the train annotations, in reverse order, as a WIDER FACE list; their files."""
    lines = (wider / "wider_face_split" / "wider_face_train_bbx_gt.txt").read_text().splitlines()
    entries, i = [], 0
    while i < len(lines):
        n = int(lines[i + 1])
        entries.append(lines[i : i + 2 + max(n, 1)])
        i += 2 + max(n, 1)
    chosen = entries[::-1][:count]
    path.write_text("\n".join(line for entry in chosen for line in entry) + "\n")
    return [str(wider / "WIDER_train" / "images" / entry[0]) for entry in chosen]


def _first_bn_statistics(folder, wider, transforms, calib_file):
    cfg = load_oneshot_config(
        str(
            write_bignas_config(
                folder, wider, TrainReader=TRAIN_READER, calib_transforms=transforms, calib_file=str(calib_file)
            )
        )
    )
    paddle.seed(0)
    supernet = build_supernet(cfg)
    evaluator = SupernetEvaluator(cfg, supernet, adapter_for(cfg))
    subnet = supernet.space.decode(supernet.space.min_tokens())
    first = next(n for n in supernet.sublayers() if isinstance(n, DynamicBatchNorm2D))
    before = first._mean.numpy().copy()
    evaluator.inherit(supernet.plain_model(subnet), subnet)
    c = int((np.abs(first._mean.numpy() - before) > 0).sum())
    return supernet, evaluator, first._mean.numpy()[:c], first._variance.numpy()[:c]


def test_eval_transform_calibration_on_a_calib_file_equals_the_reference_and_differs_from_train(tmp_path, tiny_wider):
    files = _wider_subset(tiny_wider, tmp_path / "calib.txt", 5)
    supernet, evaluator, mean, variance = _first_bn_statistics(
        tmp_path / "eval", tiny_wider, "eval", tmp_path / "calib.txt"
    )
    assert [r["im_file"] for r in evaluator.loader.dataset.roidbs] == files
    # the reference: the eval reader's Decode (BGR -> RGB), Resize (64 -> 64), NormalizeImage, Permute by hand, in
    # batches of the train reader's 4 (calib_batches 2: images 0-3, then 4), through the first conv
    images = [(cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB).astype("float32") - MEAN) / STD for f in files]
    batches = [np.stack(images[:4]), np.stack(images[4:])]
    conv = supernet.backbone.conv1._conv.weight[: mean.shape[0]]
    outs = [
        paddle.nn.functional.conv2d(paddle.to_tensor(b.transpose(0, 3, 1, 2)), conv, stride=2, padding=1)
        for b in batches
    ]
    ref_mean = np.mean([o.mean(axis=[0, 2, 3]).numpy() for o in outs], axis=0)
    ref_var = np.mean([o.var(axis=[0, 2, 3], unbiased=False).numpy() for o in outs], axis=0)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variance, ref_var, rtol=1e-5, atol=1e-5)
    _, _, train_mean, train_variance = _first_bn_statistics(
        tmp_path / "train", tiny_wider, "train", tmp_path / "calib.txt"
    )
    assert np.abs(train_mean - mean).max() > 1e-3 and np.abs(train_variance - variance).max() > 1e-3


def test_calibration_keys_are_checked(tmp_path, tiny_wider):
    with pytest.raises(ConfigError, match="calib_transforms must be one of train, eval, got 'test'"):
        load_oneshot_config(str(write_bignas_config(tmp_path, tiny_wider, calib_transforms="test")))
    with pytest.raises(ConfigError, match="calib_file not found: .*missing.txt"):
        load_oneshot_config(str(write_bignas_config(tmp_path, tiny_wider, calib_file="missing.txt")))


def test_segmentation_calibrates_on_a_calib_file_through_the_val_transforms_at_the_images_size(tmp_path):
    from seg_helpers import make_tiny_config
    from test_oneshot_seg import SMALL

    from ppnas.demo.cityscapes import NUM_CLASSES

    train = {  # random brightness: the train transforms must give other images than the val reader's
        "type": "Dataset",
        "dataset_root": "data",
        "num_classes": NUM_CLASSES,
        "mode": "train",
        "train_path": "data/train_list.txt",
        "transforms": [
            {"type": "RandomDistort", "brightness_range": 0.4, "brightness_prob": 1.0},
            {"type": "RandomPaddingCrop", "crop_size": [64, 64]},
            {"type": "Normalize"},
        ],
    }

    def statistics(transforms):
        slim = {
            "NAS_SPACE_NAME": "MobileNetV2SpaceSeg",
            "BIGNAS_SPACE": SMALL,
            "BIGNAS_CALIB_BATCHES": 1,
            "BIGNAS_CALIB_TRANSFORMS": transforms,
            "BIGNAS_CALIB_FILE": "calib.txt",
        }
        cfg = load_oneshot_config(str(make_tiny_config(tmp_path, SLIM=slim, train_dataset=train)))
        paddle.seed(0)
        supernet = build_supernet(cfg)
        evaluator = SupernetEvaluator(cfg, supernet, adapter_for(cfg))
        subnet = supernet.space.decode(supernet.space.min_tokens())
        evaluator.inherit(supernet.plain_model(subnet), subnet)
        norm = next(n for n in supernet.sublayers() if isinstance(n, DynamicBatchNorm2D))
        return evaluator, norm._mean.numpy().copy()

    make_tiny_config(tmp_path)  # writes the data, so the list below can name its images
    lines = (tmp_path / "data" / "train_list.txt").read_text().splitlines()
    (tmp_path / "calib.txt").write_text("\n".join(lines[-2:][::-1]) + "\n")
    evaluator, eval_mean = statistics("eval")
    assert not evaluator.resize  # whole images, at the size the val set is scored at
    (batch,) = evaluator.calibration_batches()
    val = evaluator.adapter.task.val_dataset.transforms  # the val reader's transforms, on the listed images
    root = tmp_path / "data"
    for image, line in zip(batch["img"].numpy(), lines[-2:][::-1]):
        img, label = (str(root / p) for p in line.split())
        np.testing.assert_allclose(image, val({"img": img, "label": label, "gt_fields": [], "trans_info": []})["img"])
    _, train_mean = statistics("train")
    assert np.abs(train_mean - eval_mean).max() > 1e-4
