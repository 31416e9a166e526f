"""Detection (BlazeFace on WIDER FACE) for the one-shot search: PaddleDetection's reader, SSD loss, optimizer and
AP@0.5 through the detection task (ppnas/tasks/detection.py).

A detection supernet gives `head_outputs(image) -> (boxes, scores, anchors)` per feature map and
`ssd_loss(batch, boxes, scores, anchors)`, and its plain model is a PaddleDetection BlazeFace.
"""

import copy
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F
from ppdet.data.reader import EvalReader, TrainReader

from ppnas.errors import ConfigError
from ppnas.tasks.detection import BlazeFaceForward, BlazeFaceTask, reader_loader, wider_dataset

Outputs = Tuple[List[paddle.Tensor], List[paddle.Tensor], Any]


def at_size(cfg: Mapping[str, Any], side: Sequence[int]) -> Dict[str, Any]:
    """The config with both readers' Resize at [h, w]: a subnet is trained and scored at its own resolution."""
    out = dict(cfg)
    for name in ("TrainReader", "EvalReader"):
        reader = copy.deepcopy(dict(cfg.get(name) or {}))
        resizes = [t for t in reader.get("sample_transforms") or [] if isinstance(t, dict) and "Resize" in t]
        if not resizes:
            raise ConfigError(f"image_size_list needs a Resize in {name}.sample_transforms: it sets a subnet's size")
        for transform in resizes:
            transform["Resize"] = {**(transform["Resize"] or {}), "target_size": list(side), "keep_ratio": False}
        out[name] = reader
    return out


def distill_loss(
    student: Tuple[paddle.Tensor, paddle.Tensor], teacher: Tuple[paddle.Tensor, paddle.Tensor]
) -> paddle.Tensor:
    """KL(teacher || student) of the class scores, averaged over anchors, plus smooth-L1 of the boxes."""
    boxes, scores = student
    teacher_boxes, teacher_scores = teacher
    kl = F.kl_div(F.log_softmax(scores, axis=-1), F.softmax(teacher_scores, axis=-1), reduction="none")
    return kl.sum(axis=-1).mean() + F.smooth_l1_loss(boxes, teacher_boxes)


class DetectionAdapter:
    kind = "detection"
    metric = "ap"
    whole_images = False  # scores at the subnet's input size

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.task = BlazeFaceTask(cfg)
        self.input_shape = self.task.input_shape
        self._tasks: Dict[Tuple[int, int], BlazeFaceTask] = {tuple(self.input_shape[2:]): self.task}

    # --- data --------------------------------------------------------------------------------------------
    def train_loader(self, make_sampler: Callable[..., Any]) -> paddle.io.DataLoader:
        return self.task.train_loader(make_sampler)

    def calibration_loader(
        self, make_sampler: Callable[..., Any], transforms: str, calib_file: Optional[str]
    ) -> paddle.io.DataLoader:
        """BN calibration's images: the train set (or `calib_file`, a list in the WIDER FACE annotation format whose
        image paths are relative to TrainDataset's image_dir), read with the train or the eval reader's transforms,
        in batches of the train reader's size."""
        if transforms == "train" and calib_file is None:
            return self.train_loader(make_sampler)
        block = dict(self.cfg.get("TrainDataset") or {})
        if calib_file is not None:
            block["anno_path"] = calib_file  # absolute: os.path.join keeps it over dataset_dir
        if transforms == "eval":
            block["data_fields"] = ["image"]  # boxes of unequal counts would not batch, and calibration needs none
        dataset = wider_dataset(block, self.cfg, "TrainDataset")
        dataset.parse_dataset()
        train_cfg = self.cfg.get("TrainReader") or {}
        reader_cfg = dict(self.cfg.get("EvalReader" if transforms == "eval" else "TrainReader") or {})
        reader_cfg.pop("inputs_def", None)
        reader_cfg["batch_size"] = int(train_cfg.get("batch_size", 1))
        reader = (TrainReader if transforms == "train" else EvalReader)(num_classes=self.task.num_classes, **reader_cfg)
        # a short list still gives a batch: it is cycled to calib_batches batches
        sampler = make_sampler(dataset, reader.batch_size, shuffle=False, drop_last=False)
        return reader_loader(reader, dataset, sampler, 0)

    @staticmethod
    def fetch(loader: paddle.io.DataLoader, indices: Sequence[int]) -> Dict[str, paddle.Tensor]:
        """One batch through the loader's ppdet transforms, in this thread."""
        batch = loader.collate_fn([loader.dataset[i] for i in indices])
        return {k: paddle.to_tensor(np.asarray(v)) for k, v in batch.items()}

    @staticmethod
    def resize(batch: Dict[str, paddle.Tensor], image_size: Sequence[int], mode: str) -> Dict[str, paddle.Tensor]:
        """The batch at the subnet's input size; ground-truth boxes are normalised, so they stay."""
        if list(batch["image"].shape[2:]) == list(image_size[2:]):
            return batch
        image = F.interpolate(batch["image"], size=list(image_size[2:]), mode=mode, align_corners=False)
        return {**batch, "image": image}

    def optimizer(self, model: paddle.nn.Layer, steps_per_epoch: int) -> paddle.optimizer.Optimizer:
        return self.task.optimizer(model, steps_per_epoch)

    # --- training ----------------------------------------------------------------------------------------
    @staticmethod
    def outputs(supernet: Any, batch: Mapping[str, paddle.Tensor]) -> Outputs:
        return supernet.head_outputs(batch["image"])

    @staticmethod
    def loss(supernet: Any, batch: Mapping[str, paddle.Tensor], outputs: Outputs) -> paddle.Tensor:
        return supernet.ssd_loss(batch, *outputs)

    @staticmethod
    def teacher(outputs: Outputs) -> Tuple[paddle.Tensor, paddle.Tensor]:
        boxes, scores, _ = outputs
        return paddle.concat(boxes, axis=1).detach(), paddle.concat(scores, axis=1).detach()

    @staticmethod
    def distill(outputs: Outputs, teacher: Tuple[paddle.Tensor, paddle.Tensor]) -> paddle.Tensor:
        boxes, scores, _ = outputs
        return distill_loss((paddle.concat(boxes, axis=1), paddle.concat(scores, axis=1)), teacher)

    # --- evaluation --------------------------------------------------------------------------------------
    def _task_at(self, image_size: Sequence[int]) -> BlazeFaceTask:
        side = (int(image_size[2]), int(image_size[3]))
        if side not in self._tasks:
            self._tasks[side] = BlazeFaceTask(at_size(self.cfg, side))
        return self._tasks[side]

    def evaluate(self, model: paddle.nn.Layer, image_size: Sequence[int]) -> float:
        """AP@0.5 of the eval set resized to `image_size` (the detection task's evaluation)."""
        return self._task_at(image_size).evaluate(model)

    @staticmethod
    def measurable(model: paddle.nn.Layer) -> paddle.nn.Layer:
        return BlazeFaceForward(model)

    def finetune(self, model: paddle.nn.Layer, image_size: Sequence[int]) -> float:
        """Train `model` at its input size with the detection search's training for finetune_iters iterations at
        finetune_lr_scale x the config's learning rate; its AP@0.5 after."""
        cfg = copy.deepcopy(dict(self.cfg))
        cfg["max_iters"] = int(cfg["finetune_iters"])
        lr = cfg.setdefault("LearningRate", {})
        lr["base_lr"] = float(lr.get("base_lr", 0.01)) * float(cfg["finetune_lr_scale"])
        side = list(image_size[2:])
        return BlazeFaceTask(cfg if side == self.input_shape[2:] else at_size(cfg, side)).train_and_evaluate(model)
