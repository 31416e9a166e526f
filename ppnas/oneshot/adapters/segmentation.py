"""Segmentation (DeepLabV3+ style) for the one-shot search: PaddleSeg's datasets and transforms, loss, optimizer,
schedule and mIoU through the segmentation task (ppnas/tasks/segmentation.py).

A segmentation supernet is called as a PaddleSeg model: `supernet(image)` gives a list of logits at the
image's size. The config is a PaddleSeg YAML whose SLIM.BIGNAS_* keys are the one-shot keys (settings.py).
"""

import copy
import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle.io.dataloader.collate import default_collate_fn

from ppnas.errors import ConfigError
from ppnas.tasks.segmentation import DeepLabTask, config_for_model
from ppnas.tasks.segmentation_config import SegConfig, paddleseg_config

Outputs = List[paddle.Tensor]


def pixel_distill_loss(student: Outputs, teacher: Outputs) -> paddle.Tensor:
    """KL(teacher || student) of the per-pixel class distributions, averaged over pixels and logits."""
    losses = [
        F.kl_div(F.log_softmax(s, axis=1), F.softmax(t, axis=1), reduction="none").sum(axis=1).mean()
        for s, t in zip(student, teacher)
    ]
    return paddle.add_n(losses) / len(losses)


class SegmentationAdapter:
    kind = "segmentation"
    metric = "miou"
    whole_images = True  # scores each val image at its own size: eval-transformed calibration runs at it too

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.seg: SegConfig = cfg["seg"]
        self.task = DeepLabTask(self.seg, quiet=True)
        self.input_shape = self.task.input_shape
        self._losses = None

    # --- data --------------------------------------------------------------------------------------------
    def train_loader(self, make_sampler: Callable[..., Any]) -> paddle.io.DataLoader:
        batch_size = int(self.seg.paddleseg.get("batch_size", 1))
        sampler = make_sampler(self.task.train_dataset, batch_size, shuffle=True, drop_last=True)
        return paddle.io.DataLoader(self.task.train_dataset, batch_sampler=sampler, return_list=True)

    def calibration_loader(
        self, make_sampler: Callable[..., Any], transforms: str, calib_file: Optional[str]
    ) -> paddle.io.DataLoader:
        """BN calibration's images: the train set (or `calib_file`, a PaddleSeg file list `image label` per line,
        relative to train_dataset's dataset_root), with train_dataset's or val_dataset's transforms, in batches of
        batch_size."""
        if transforms == "train" and calib_file is None:
            return self.train_loader(make_sampler)
        dic = self.seg.paddleseg
        block = copy.deepcopy(dict(dic["train_dataset"]))
        if transforms == "eval":
            block["transforms"] = copy.deepcopy(dic["val_dataset"]["transforms"])
        if calib_file is not None:
            block = {
                "type": "Dataset",
                "mode": "train",  # the label as train batches carry it (val mode adds an axis)
                "dataset_root": block["dataset_root"],
                "train_path": calib_file,
                "num_classes": self.task.train_dataset.num_classes,
                "transforms": block["transforms"],
            }
        dataset = paddleseg_config({**dic, "train_dataset": block}).train_dataset
        batch_size = int(dic.get("batch_size", 1))
        sampler = make_sampler(dataset, batch_size, shuffle=False, drop_last=False)
        return paddle.io.DataLoader(dataset, batch_sampler=sampler, return_list=True)

    @staticmethod
    def fetch(loader: paddle.io.DataLoader, indices: Sequence[int]) -> Dict[str, Any]:
        """One batch through PaddleSeg's transforms, in this thread (arrays as tensors, the rest as collated)."""
        samples = [loader.dataset[i] for i in indices]
        sizes = {tuple(np.shape(sample["img"])) for sample in samples}
        if len(sizes) > 1:  # only val transforms leave whole images of their own size
            raise ConfigError(
                f"segmentation: BN calibration batches images of one size, got {sorted(sizes)}: with "
                "calib_transforms: eval, give val_dataset a Resize, or a calib_file of images of one size"
            )
        batch = default_collate_fn(samples)
        return {k: paddle.to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}

    @staticmethod
    def resize(batch: Dict[str, Any], image_size: Sequence[int], mode: str) -> Dict[str, Any]:
        """The batch at the subnet's input size: the image by `mode`, the label by nearest neighbour."""
        side = list(image_size[2:])
        if list(batch["img"].shape[2:]) == side:
            return batch
        image = F.interpolate(batch["img"], size=side, mode=mode, align_corners=False)
        label = F.interpolate(batch["label"].unsqueeze(1).astype("float32"), size=side, mode="nearest")
        return {**batch, "img": image, "label": label.squeeze(1).astype(batch["label"].dtype)}

    def optimizer(self, model: paddle.nn.Layer, steps_per_epoch: int) -> paddle.optimizer.Optimizer:
        """PaddleSeg's optimizer and schedule of the config over the supernet, the schedule as long as
        its training (max_iters)."""
        dic = copy.deepcopy(self.seg.paddleseg)
        dic.pop("epochs", None)
        dic["iters"] = int(self.cfg["max_iters"])
        return config_for_model(dic, model).optimizer

    # --- training ----------------------------------------------------------------------------------------
    @staticmethod
    def outputs(supernet: Any, batch: Mapping[str, Any]) -> Outputs:
        return supernet(batch["img"])

    def loss(self, supernet: Any, batch: Mapping[str, Any], outputs: Outputs) -> paddle.Tensor:
        from paddleseg.core.train import loss_computation  # looked up here: the task's paddleseg_compat replaces it

        if self._losses is None:
            self._losses = paddleseg_config(self.task.candidate_config(None)).loss
        return paddle.add_n(loss_computation(outputs, batch["label"].astype("int64"), None, self._losses))

    @staticmethod
    def teacher(outputs: Outputs) -> Outputs:
        return [o.detach() for o in outputs]

    @staticmethod
    def distill(outputs: Outputs, teacher: Outputs) -> paddle.Tensor:
        return pixel_distill_loss(outputs, teacher)

    # --- evaluation --------------------------------------------------------------------------------------
    def evaluate(self, model: paddle.nn.Layer, image_size: Sequence[int]) -> float:
        """mIoU on the val set's whole images (PaddleSeg's evaluate)."""
        return self.task.evaluate(model)

    @staticmethod
    def measurable(model: paddle.nn.Layer) -> paddle.nn.Layer:
        return model

    def finetune(self, model: paddle.nn.Layer, image_size: Sequence[int]) -> float:
        """Train `model` with the segmentation task's training for finetune_iters iterations at finetune_lr_scale
        x the config's learning rate; the best mIoU of its evaluated epochs."""
        dic = copy.deepcopy(self.seg.paddleseg)
        dic.pop("epochs", None)
        dic["iters"] = int(self.cfg["finetune_iters"])
        schedule = dic.get("lr_scheduler") or {}
        if "learning_rate" not in schedule:
            raise ConfigError("finetune_subnet needs lr_scheduler.learning_rate in the config (it scales it)")
        schedule["learning_rate"] = float(schedule["learning_rate"]) * float(self.cfg["finetune_lr_scale"])
        return DeepLabTask(dataclasses.replace(self.seg, paddleseg=dic), quiet=True).train_and_evaluate(model)
