"""Segmentation task: DeepLabV3+ candidates built, trained and scored with PaddleSeg's own parts.

Per candidate: a fresh PaddleSeg `Config` of the search config whose `model.backbone` is the candidate's
backbone (`MobileNetV2SegBackbone`, registered in PaddleSeg's BACKBONES) builds the model, loss, optimizer
and learning-rate schedule; training runs PaddleSeg's `loss_computation`; after every epoch whose 1-based
number is greater than SLIM.NAS_START_EVAL_EPOCH, `paddleseg.core.evaluate` gives the mIoU on the val set.
Reward = the best of those mIoUs (0.0, with a warning, when no epoch was evaluated).

The epoch loop is ours because `paddleseg.core.train` evaluates on an iteration interval with no start
epoch, returns no mIoU, and has no per-iteration hook for the search's progress display.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import copy
import logging
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import paddle
import yaml
from paddleseg.core import evaluate
from paddleseg.utils import worker_init_fn

import search_space  # noqa: F401  # registers MobileNetV2SegBackbone in PaddleSeg's BACKBONES
from ppnas import parallel
from ppnas.engine.protocols import IterCallback
from ppnas.errors import ConfigError, DataError, SearchSpaceError
from ppnas.interrupts import iterate
from ppnas.spaces import build_space
from ppnas.tasks import paddleseg_compat
from ppnas.tasks.segmentation_config import SegConfig, check_datasets, iters_for, paddleseg_config
from search_space.mobilenetv2_seg import MobileNetV2SegArch

_logger = logging.getLogger(__name__)

BEST_DIR = "best_model"
FRAGMENT_FILE = "deeplabv3p_nas.yml"
WEIGHTS_FILE = "model.pdparams"
MODEL_TYPE = "DeepLabV3P"
# As many passes over the training set as PaddleSeg's 80000 iterations of batch 4 over Cityscapes' 2975
# images: an epoch count scales to any dataset (80000 iterations on the 40-image demo set would be 8000 epochs).
FULL_TRAIN_EPOCHS = round(80000 * 4 / 2975)
FULL_TRAIN_HINT = (
    f"python tools/train_seg.py --config {{config}} --model {{fragment}} --epochs {FULL_TRAIN_EPOCHS} --do_eval "
    "--save_dir output/deeplabv3p_nas_full"
)

EXPORT_HINT = (
    "python tools/export_model.py --family segmentation -c {config} --structure {save_dir}/"
    + f"{BEST_DIR}/{FRAGMENT_FILE} --weights {{save_dir}}/{BEST_DIR}/{WEIGHTS_FILE} --out {{save_dir}}/inference"
)


def model_block(structure: Mapping[str, Any], base: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The PaddleSeg `model:` mapping of DeepLabV3P with the backbone `structure` describes."""
    arch = MobileNetV2SegArch.from_dict(structure)
    block = {k: copy.deepcopy(v) for k, v in (base or {}).items() if k not in ("backbone", "backbone_indices")}
    block["type"] = MODEL_TYPE
    block["backbone"] = arch.backbone_config()
    block["backbone_indices"] = list(arch.backbone_indices)
    return block


def write_fragment(structure: Mapping[str, Any], path: str, base_model: Optional[Mapping[str, Any]] = None) -> None:
    """A PaddleSeg config fragment (`model:` only) that rebuilds DeepLabV3P with the searched backbone."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "# DeepLabV3+ with the MobileNetV2SpaceSeg backbone found by ppnas. It replaces `model:` of a\n"
            "# PaddleSeg config:\n"
            "#   python tools/train_seg.py --config <paddleseg config> --model <this file> [--iters N] --do_eval\n"
            "# (MobileNetV2SegBackbone is registered in PaddleSeg's BACKBONES by `import search_space`.)\n"
        )
        yaml.safe_dump({"model": model_block(structure, base_model)}, f, default_flow_style=None, sort_keys=False)


def export_model(
    structure: Mapping[str, Any], model: paddle.nn.Layer, save_dir: str, base_model: Optional[Mapping[str, Any]]
) -> List[str]:
    """`<save_dir>/best_model/`: the PaddleSeg fragment of `structure` and the model's weights."""
    folder = os.path.join(save_dir, BEST_DIR)
    os.makedirs(folder, exist_ok=True)
    fragment = os.path.join(folder, FRAGMENT_FILE)
    weights = os.path.join(folder, WEIGHTS_FILE)
    write_fragment(structure, fragment, base_model)
    paddle.save(model.state_dict(), weights)
    return [fragment, weights]


def config_for_model(dic: Mapping[str, Any], model: paddle.nn.Layer) -> Any:
    """A PaddleSeg Config of `dic` that trains `model`: its loss, optimizer and schedule over `model`'s
    parameters (PaddleSeg builds the optimizer over `Config.model`, which it caches in `_model`)."""
    cfg = paddleseg_config(dic)
    cfg._model = model
    return cfg


def structure_block(structure: Mapping[str, Any]) -> str:
    """The decoded backbone, one line per block, as printed at the end of a search."""
    lines = ["------------->>> MobileNetV2SpaceSeg structure start: <<<----------------"]
    lines.append(f"head: t=1 c={structure['head_channels']} n=1 k=3 stride=1")
    for i, b in enumerate(structure["blocks"], start=1):
        lines.append(f"block{i}: t={b['t']} c={b['c']} n={b['n']} k={b['k']} stride={b['stride']}")
    lines.append(
        f"output_stride={structure['output_stride']} feat_channels={structure['feat_channels']} "
        f"backbone_indices={structure['backbone_indices']}"
    )
    lines.append("-------------->>> MobileNetV2SpaceSeg structure end! <<<-----------------")
    return "\n".join(lines)


def crop_input_shape(cfg: Mapping[str, Any]) -> List[int]:
    """[1, 3, H, W] of the training crop: the size a candidate's FLOPs (and latency) are measured at."""
    for transform in (cfg.get("train_dataset") or {}).get("transforms") or []:
        crop = transform.get("crop_size") if isinstance(transform, Mapping) else None
        if crop is not None:
            width, height = (crop, crop) if isinstance(crop, int) else crop  # PaddleSeg sizes are [w, h]
            return [1, 3, int(height), int(width)]
    raise ConfigError("train_dataset.transforms has no crop_size: add a crop (e.g. RandomPaddingCrop)")


class DeepLabTask:
    """The segmentation search's evaluation side (see ppnas.engine.protocols.Task)."""

    kind = "segmentation"

    def __init__(self, seg: SegConfig, num_workers: int = 0, log_steps: int = 10, quiet: bool = False) -> None:
        paddleseg_compat.apply()
        self.seg = seg
        self.space_name = seg.slim["NAS_SPACE_NAME"]
        self.space = build_space(self.space_name)
        if not isinstance(self.space.token2arch(self.space.init_tokens())[0], MobileNetV2SegArch):
            raise SearchSpaceError(f"{self.space_name} is not a segmentation backbone space: use MobileNetV2SpaceSeg")
        model_cfg = seg.paddleseg.get("model") or {}
        if model_cfg.get("type") != MODEL_TYPE:
            raise ConfigError(f"model.type must be {MODEL_TYPE} for this search, got {model_cfg.get('type')!r}")
        self.start_eval_epoch = int(seg.slim["NAS_START_EVAL_EPOCH"])
        self.input_shape = crop_input_shape(seg.paddleseg)
        self.num_workers = num_workers
        self.log_steps = max(1, int(log_steps))
        self.quiet = quiet
        self.train_dataset, self.val_dataset = self._datasets()
        self._built: Optional[Tuple[paddle.nn.Layer, Any]] = None  # the last model and the Config that built it

    def _datasets(self) -> Tuple[paddle.io.Dataset, paddle.io.Dataset]:
        """Built once, so a wrong path stops the search before the first candidate."""
        check_datasets(self.seg.paddleseg, self.seg.path or "config")
        cfg = paddleseg_config(self.seg.paddleseg)
        try:
            train, val = cfg.train_dataset, cfg.val_dataset
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            raise DataError(f"{self.seg.path or 'config'}: a dataset cannot be read: {err}") from None
        if train is None or val is None:
            raise ConfigError("the config needs both train_dataset and val_dataset")
        if len(train) < int(self.seg.paddleseg.get("batch_size", 1)):
            raise DataError(f"train_dataset has {len(train)} images, fewer than batch_size: no full batch to train")
        return train, val

    # --- the Task protocol -------------------------------------------------------------------------
    def arch(self, tokens: Sequence[int]) -> MobileNetV2SegArch:
        return self.space.token2arch(list(tokens))[0]

    def decode(self, tokens: Sequence[int]) -> Dict[str, Any]:
        return self.arch(tokens).to_dict()

    def candidate_config(
        self, structure: Optional[Mapping[str, Any]], total_iters: Optional[int] = None
    ) -> Dict[str, Any]:
        """The search config with the candidate's model (and `iters` set for the lr schedule)."""
        dic = copy.deepcopy(self.seg.paddleseg)
        dic.pop("epochs", None)
        if structure is not None:
            dic["model"] = model_block(structure, dic.get("model"))
        if total_iters is not None:
            dic["iters"] = total_iters
        return dic

    def total_iters(self) -> int:
        """The candidate training's iterations (its learning-rate schedule's length)."""
        batch_size = int(self.seg.paddleseg.get("batch_size", 1))
        return iters_for(self.seg.paddleseg, len(self.train_dataset) // batch_size)[1]

    def build(self, tokens: Sequence[int]) -> paddle.nn.Layer:
        return self.build_structure(self.decode(tokens))

    def build_structure(self, structure: Mapping[str, Any]) -> paddle.nn.Layer:
        cfg = paddleseg_config(self.candidate_config(structure, self.total_iters()))
        model = cfg.model
        self._built = (model, cfg)
        return model

    def measurable(self, model: paddle.nn.Layer) -> paddle.nn.Layer:
        return model

    def train_and_evaluate(self, model: paddle.nn.Layer, on_iter: Optional[IterCallback] = None) -> float:
        """Train `model` (the last built one, or any model of this task: the one-shot search's finetuning) with
        the config's loss, optimizer and schedule; the best mIoU of the evaluated epochs."""
        if self._built is not None and self._built[0] is model:
            cfg = self._built[1]
        else:
            cfg = config_for_model(self.candidate_config(structure=None, total_iters=self.total_iters()), model)
        batch_size = cfg.batch_size
        # batch_size is per rank, as in PaddleSeg: with N ranks a step trains on N * batch_size images
        sampler = parallel.shard_sampler(self.train_dataset, batch_size, shuffle=True, drop_last=True)
        loader = paddle.io.DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            return_list=True,
            worker_init_fn=worker_init_fn,
        )
        epochs, total = iters_for(self.seg.paddleseg, len(sampler))
        losses, optimizer = cfg.loss, cfg.optimizer
        best: Optional[float] = None
        iteration = 0
        trained = parallel.wrap(model)
        for epoch in range(1, epochs + 1):
            sampler.set_epoch(epoch)
            model.train()
            for data in iterate(loader):
                iteration += 1
                loss = self._train_step(trained, data, losses, optimizer, iteration)
                if on_iter is not None:
                    on_iter(iteration, total, loss)
                if not self.quiet and iteration % self.log_steps == 0:
                    _logger.info("[TRAIN] epoch %d/%d iter %d/%d loss %.4f", epoch, epochs, iteration, total, loss)
                if iteration >= total:
                    break
            if epoch > self.start_eval_epoch:
                # PaddleSeg's evaluate shares the val set out among the ranks and gathers the areas: every
                # rank gets the same mIoU, provided they hold the same model (rank 0's BatchNorm statistics)
                parallel.sync_buffers(model)
                miou = self.evaluate(model)
                best = miou if best is None else max(best, miou)
                if not self.quiet:
                    _logger.info("[EVAL] epoch %d/%d mIoU %.4f (best %.4f)", epoch, epochs, miou, best)
        if best is None:
            _logger.warning(
                "no epoch was evaluated (SLIM.NAS_START_EVAL_EPOCH %d, %d epochs): reward 0.0; "
                "lower NAS_START_EVAL_EPOCH below the epoch count",
                self.start_eval_epoch,
                epochs,
            )
            return 0.0
        return best

    def _train_step(
        self, model: paddle.nn.Layer, data: Mapping[str, Any], losses: Mapping[str, Any], optimizer: Any, step: int
    ) -> float:
        from paddleseg.core.train import loss_computation  # looked up here: paddleseg_compat replaces it

        logits = model(data["img"])
        loss = sum(loss_computation(logits, data["label"].astype("int64"), None, losses))
        value = parallel.mean(float(loss.item()))  # every rank sees the same value and stops on the same NaN
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at iteration {step}")
        loss.backward()
        optimizer.step()
        if isinstance(optimizer._learning_rate, paddle.optimizer.lr.LRScheduler):
            optimizer._learning_rate.step()
        model.clear_gradients()
        return value

    def evaluate(self, model: paddle.nn.Layer) -> float:
        """mIoU on the val set (PaddleSeg's evaluate, whole images)."""
        test_config = dict(self.seg.paddleseg.get("test_config") or {})
        # print_detail off: PaddleSeg's progress bar and per-class tables would interleave with the search's
        # progress line; the epoch's mIoU is logged by train_and_evaluate.
        miou, *_ = evaluate(model, self.val_dataset, num_workers=self.num_workers, print_detail=False, **test_config)
        return float(miou)

    def export(self, tokens: Sequence[int], model: paddle.nn.Layer, save_dir: str) -> List[str]:
        return export_model(self.decode(tokens), model, save_dir, self.seg.paddleseg.get("model"))

    def summary(self, tokens: Sequence[int]) -> str:
        return structure_block(self.decode(tokens))
