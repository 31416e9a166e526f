"""DeepLabTask on a tiny generated set: NAS_START_EVAL_EPOCH semantics, reward, constraint rejection."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import logging

import pytest
from conftest import ROOT
from seg_helpers import make_tiny_config

from ppnas.engine.loop import SearchSettings, run_search
from ppnas.engine.seeding import seed_everything
from ppnas.errors import ConstraintError, DataError
from ppnas.history import History
from ppnas.samplers.annealing import LocalController
from ppnas.tasks.segmentation import DeepLabTask
from ppnas.tasks.segmentation_config import load_seg_config

SMALL_TOKENS = [2] + [1, 2, 0, 0] * 3 + [1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 0, 0]  # a light backbone: fast steps


class RecordingTask(DeepLabTask):
    """Remembers the mIoU of every evaluation it runs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mious = []

    def evaluate(self, model):
        miou = super().evaluate(model)
        self.mious.append(miou)
        return miou


def _task(folder, start_eval_epoch, **top):
    seg = load_seg_config(str(make_tiny_config(folder, **top)), ["SLIM.NAS_START_EVAL_EPOCH", str(start_eval_epoch)])
    return RecordingTask(seg, quiet=True)


def _train(task):
    seed_everything(0)
    iterations = []
    reward = task.train_and_evaluate(task.build(SMALL_TOKENS), lambda i, total, loss: iterations.append((i, total)))
    return reward, iterations


def test_every_epoch_evaluated_and_reward_is_the_best_miou(tmp_path):
    task = _task(tmp_path, -1, epochs=None, iters=3)  # 2 iterations per epoch: epoch 2 stops after one
    assert task.input_shape == [1, 3, 64, 64]
    reward, iterations = _train(task)
    assert iterations == [(1, 3), (2, 3), (3, 3)]
    assert len(task.mious) == 2
    assert reward == max(task.mious) and 0.0 <= reward <= 1.0


def test_only_epochs_after_start_eval_epoch_are_evaluated(tmp_path):
    task = _task(tmp_path, 1, epochs=2)
    reward, iterations = _train(task)
    assert len(iterations) == 4
    assert len(task.mious) == 1 and reward == task.mious[0]


def test_no_epoch_evaluated_gives_zero_with_a_warning(tmp_path, caplog):
    task = _task(tmp_path, 2, epochs=2)
    with caplog.at_level(logging.WARNING, logger="ppnas.tasks.segmentation"):
        reward, iterations = _train(task)
    assert reward == 0.0 and task.mious == [] and len(iterations) == 4
    assert "no epoch was evaluated (SLIM.NAS_START_EVAL_EPOCH 2, 2 epochs): reward 0.0" in caplog.text


def test_flops_window_rejects_before_training(tmp_path):
    seg = load_seg_config(str(make_tiny_config(tmp_path)), ["SLIM.NAS_CONSTRAINT_MAX", "1000"])
    task = RecordingTask(seg, quiet=True)
    constraint = seg.constraint()
    history = History.in_dir(str(tmp_path / "out"))
    controller = LocalController(task.space.range_table(), SMALL_TOKENS, seed=0)
    settings = SearchSettings(search_steps=1, save_dir=str(tmp_path / "out"), max_rejects=2)
    with pytest.raises(ConstraintError, match=r"no candidate met the constraint flops in \[-inf, 1000\]"):
        run_search(task, controller, constraint, history, settings)
    records = history.read()
    assert [r["status"] for r in records] == ["rejected", "rejected"]
    assert all(r["flops"] > 1000 and "outside flops in [-inf, 1000]" in r["reason"] for r in records)
    assert all(r["reward"] is None for r in records) and task.mious == []  # nothing was trained


def test_missing_cityscapes_names_the_expected_path_and_how_to_get_the_data(tmp_path):
    where = tmp_path / "cityscapes"
    seg = load_seg_config(str(ROOT / "configs" / "cityscape.yaml"), ["train_dataset.dataset_root", str(where)])
    with pytest.raises(DataError) as err:
        DeepLabTask(seg)
    message = str(err.value)
    assert f"train_dataset.dataset_root expects Cityscapes in {where}, but {where} is missing" in message
    assert "https://www.cityscapes-dataset.com" in message and "createTrainIdLabelImgs" in message
    assert "`python tools/make_seg_demo_data.py --out data/demo_cityscapes`" in message


def test_missing_demo_set_names_the_command_that_makes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = str(tmp_path / "data" / "demo_cityscapes")
    seg = load_seg_config(str(ROOT / "configs" / "demo" / "cityscape_demo.yaml"), ["train_dataset.dataset_root", root])
    with pytest.raises(
        DataError,
        match=f"dataset_root not found: {root}; generate the demo set with "
        "`python tools/make_seg_demo_data.py --out data/demo_cityscapes`",
    ):
        DeepLabTask(seg)
