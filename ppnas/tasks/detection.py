"""Detection task: BlazeFace candidates built, trained and scored with PaddleDetection's own parts.

Route (see ../shared/notes/PILOTS.md): ppdet objects are built directly from the config's
PaddleDetection-style blocks, not through `ppdet.core.workspace.load_config/create`, because those mutate
one process-global config and overrides would leak from one candidate into the next.
Reward = AP at IoU 0.5 over all faces, from ppdet's `VOCMetric` (ppdet's `WiderFaceMetric` computes no AP).
"""

import copy
import logging
import os
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import paddle
import yaml
from ppdet.data.reader import EvalReader, TrainReader
from ppdet.data.source.widerface import WIDERFaceDataSet
from ppdet.metrics import VOCMetric
from ppdet.modeling.architectures import BlazeFace
from ppdet.modeling.backbones import BlazeNet
from ppdet.modeling.heads import FaceHead
from ppdet.modeling.layers import AnchorGeneratorSSD, MatrixNMS, MultiClassNMS, SSDBox
from ppdet.modeling.losses import SSDLoss
from ppdet.modeling.necks import BlazeNeck
from ppdet.modeling.post_process import BBoxPostProcess
from ppdet.optimizer import LearningRate, OptimizerBuilder

from ppnas import parallel
from ppnas.config import CONFIG_DIR_KEY, check_keys, resolve_path
from ppnas.demo import demo_command
from ppnas.engine.options import SEARCH_DEFAULTS
from ppnas.engine.protocols import IterCallback
from ppnas.errors import ConfigError, DataError
from ppnas.interrupts import iterate
from ppnas.spaces import build_space

_logger = logging.getLogger(__name__)

FRAGMENT_FILE = "blazeface_nas.yml"
WEIGHTS_FILE = "best_model.pdparams"
# The stock face config of PaddleDetection 2.0 to 2.7, configs/face_detection/blazeface_1000e.yml: its
# _BASE_ list (relative to configs/face_detection/); a searched fragment goes last, so its blocks win.
STOCK_FACE_BASES = (
    "../datasets/wider_face.yml",
    "../runtime.yml",
    "_base_/optimizer_1000e.yml",
    "_base_/blazeface.yml",
    "_base_/face_reader.yml",
)
FULL_CONFIG_TAG = "_1000e"  # <fragment stem>_1000e.yml is written next to each fragment, as the stock name goes
FULL_CONFIG_SUFFIX = f"{FULL_CONFIG_TAG}.yml"
# {fragment}: the fragment's absolute path, {stem}: the same without .yml, {name}: its file name without .yml
FULL_TRAIN_HINT = (
    "# from the root of a PaddleDetection 2.x clone, WIDER FACE in dataset/wider_face:\n"
    "cp {fragment} {stem}" + FULL_CONFIG_SUFFIX + " configs/face_detection/\n"
    "python tools/train.py -c configs/face_detection/{name}" + FULL_CONFIG_SUFFIX
)
EXPORT_HINT = (
    "python tools/export_model.py --family detection -c {config} --structure {save_dir}/"
    + f"{FRAGMENT_FILE} --weights {{save_dir}}/{WEIGHTS_FILE} --out {{save_dir}}/inference"
)

# The task's own keys; the search keys (search_steps, annealing, server) and their defaults are the engine's.
TASK_KEYS = {
    "search_space": "BlazeFaceNasSpace",
    "kernel_choices": [3, 5],
    "save_dir": "output/blazeface_nas",
    "max_iters": 5000,
    "input_size": 640,
    "use_gpu": False,
    "log_iter": 20,
    "worker_num": 0,
    "Constraint": None,
}
MODEL_KEYS = (
    "architecture",
    "num_classes",
    "BlazeFace",
    "BlazeNet",
    "BlazeNeck",
    "FaceHead",
    "AnchorGeneratorSSD",
    "SSDLoss",
    "BBoxPostProcess",
    "LearningRate",
    "OptimizerBuilder",
    "TrainDataset",
    "EvalDataset",
    "TrainReader",
    "EvalReader",
)
# Keys a PaddleDetection face config carries that a search does not use: accepted, so that a user's own
# config works as a _BASE_, and ignored.
PPDET_UNUSED_KEYS = (
    "metric",
    "epoch",
    "snapshot_epoch",
    "weights",
    "pretrain_weights",
    "TestReader",
    "TestDataset",
    "use_xpu",
    "use_npu",
    "use_mlu",
    "print_flops",
    "find_unused_parameters",
    "use_ema",
    "norm_type",
)


def structure_from_fragment(path: str) -> Dict[str, Any]:
    """The BlazeNet structure of a PaddleDetection config or fragment (e.g. a search's blazeface_nas.yml)."""
    from ppnas.config import load_config

    if not os.path.isfile(path):
        raise DataError(f"structure file not found: {path} (a search writes it as <save_dir>/{FRAGMENT_FILE})")
    block = load_config(path).get("BlazeNet")
    if not isinstance(block, Mapping) or "double_blaze_filters" not in block:
        raise ConfigError(f"{path} has no BlazeNet block with blaze_filters and double_blaze_filters")
    return {k: block[k] for k in ("blaze_filters", "double_blaze_filters", "use_5x5kernel") if k in block}


def out_channels(structure: Mapping[str, Any]) -> List[int]:
    """Channels of BlazeNet's two outputs (the first and the last of its last four blocks)."""
    doubles = structure["double_blaze_filters"]
    return [doubles[-4][2], doubles[-1][2]]


def fragment_for(structure: Mapping[str, Any], act: Optional[str] = "relu") -> Dict[str, Any]:
    """A PaddleDetection 2.x config fragment: BlazeNet with only the keys its constructor takes."""
    blazenet = {
        "blaze_filters": [list(map(int, b)) for b in structure["blaze_filters"]],
        "double_blaze_filters": [list(map(int, b)) for b in structure["double_blaze_filters"]],
        "use_5x5kernel": bool(structure.get("use_5x5kernel", False)),
    }
    if act is not None:
        blazenet["act"] = act
    channels = out_channels(structure)
    return {"BlazeNet": blazenet, "BlazeNeck": {"in_channel": channels}, "FaceHead": {"in_channels": list(channels)}}


def write_fragment(structure: Mapping[str, Any], path: str) -> None:
    """The fragment at `path`, and next to it the complete PaddleDetection config that trains it
    (`full_config_path(path)`, see write_full_config)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("# BlazeFace-NAS structure found by ppnas; add this file to _BASE_ of a face-detection config.\n")
        yaml.safe_dump(fragment_for(structure), f, default_flow_style=None, sort_keys=False)
    write_full_config(path)


def full_config_path(fragment: str) -> str:
    return os.path.splitext(fragment)[0] + FULL_CONFIG_SUFFIX


def write_full_config(fragment: str) -> str:
    """A complete PaddleDetection 2.x face config: the stock blazeface_1000e.yml's bases, then `fragment`.
    It and the fragment go into PaddleDetection's configs/face_detection/, where those bases resolve."""
    name = os.path.splitext(os.path.basename(fragment))[0]
    path = full_config_path(fragment)
    bases = "".join(f"  '{base}',\n" for base in (*STOCK_FACE_BASES, f"{name}.yml"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            f"# A searched BlazeFace trained fully by PaddleDetection 2.x: the bases of its stock\n"
            f"# configs/face_detection/blazeface_1000e.yml, then the searched structure {name}.yml (last: it wins).\n"
            f"# Copy this file and {name}.yml into PaddleDetection's configs/face_detection/, then, from its root:\n"
            f"#   python tools/train.py -c configs/face_detection/{os.path.basename(path)}\n"
            f"_BASE_: [\n{bases}]\n"
            f"weights: output/{name}{FULL_CONFIG_TAG}/model_final\n"
        )
    return path


def export_model(structure: Mapping[str, Any], model: paddle.nn.Layer, save_dir: str) -> List[str]:
    """`<save_dir>/blazeface_nas.yml` (+ its complete config) and the model's weights."""
    os.makedirs(save_dir, exist_ok=True)
    fragment = os.path.join(save_dir, FRAGMENT_FILE)
    weights = os.path.join(save_dir, WEIGHTS_FILE)
    write_fragment(structure, fragment)
    paddle.save(model.state_dict(), weights)
    return [fragment, full_config_path(fragment), weights]


def structure_block(structure: Mapping[str, Any]) -> str:
    """The block the original example printed at the end of a search."""
    return "\n".join(
        [
            "------------->>> BlazeFace-NAS structure start: <<<----------------",
            "BlazeNet:",
            f"  blaze_filters: {[list(b) for b in structure['blaze_filters']]}",
            f"  double_blaze_filters: {[list(b) for b in structure['double_blaze_filters']]}",
            f"  use_5x5kernel: {str(bool(structure.get('use_5x5kernel'))).lower()}",
            "  with_extra_blocks: true",
            "  lite_edition: false",
            "-------------->>> BlazeFace-NAS structure end! <<<-----------------",
        ]
    )


def build_blazeface(structure: Mapping[str, Any], model_cfg: Optional[Mapping[str, Any]] = None) -> BlazeFace:
    """A ppdet dygraph BlazeFace whose BlazeNet has `structure`; the rest from the config's blocks."""
    cfg = dict(model_cfg or {})
    num_classes = int(cfg.get("num_classes", 1))
    blazenet_extra = {k: v for k, v in (cfg.get("BlazeNet") or {}).items() if k == "act"}
    backbone = BlazeNet(
        blaze_filters=[list(b) for b in structure["blaze_filters"]],
        double_blaze_filters=[list(b) for b in structure["double_blaze_filters"]],
        use_5x5kernel=bool(structure.get("use_5x5kernel", False)),
        **{"act": "relu", **blazenet_extra},
    )
    neck_cfg = {k: v for k, v in (cfg.get("BlazeNeck") or {}).items() if k != "in_channel"}
    neck = BlazeNeck(in_channel=[s.channels for s in backbone.out_shape], **neck_cfg)
    head_cfg = {
        k: v for k, v in (cfg.get("FaceHead") or {}).items() if k not in ("in_channels", "anchor_generator", "loss")
    }
    head = FaceHead(
        num_classes=num_classes,
        in_channels=[s.channels for s in neck.out_shape],
        anchor_generator=AnchorGeneratorSSD(**(cfg.get("AnchorGeneratorSSD") or {})),
        loss=SSDLoss(**(cfg.get("SSDLoss") or {})),
        **head_cfg,
    )
    post_cfg = copy.deepcopy(cfg.get("BBoxPostProcess") or {})
    post = BBoxPostProcess(
        num_classes=num_classes,
        decode=_post_part(post_cfg, "decode", POST_CLASSES["decode"]),
        nms=_post_part(post_cfg, "nms", POST_CLASSES["nms"]),
    )
    return BlazeFace(backbone=backbone, blaze_head=head, neck=neck, post_process=post)


# the ppdet classes BBoxPostProcess's decode and nms may name for BlazeFace (the first is the default):
# SSDBox decodes FaceHead's anchor offsets; the NMS classes take its [N, M, 4] boxes and [N, C, M] scores
POST_CLASSES = {"decode": {"SSDBox": SSDBox}, "nms": {"MultiClassNMS": MultiClassNMS, "MatrixNMS": MatrixNMS}}


def _post_part(post_cfg: Mapping[str, Any], part: str, classes: Mapping[str, type]) -> Any:
    """BBoxPostProcess.<part> built as configured: the class its `name` names, with the other keys."""
    block = dict(post_cfg.get(part) or {})
    name = block.pop("name", next(iter(classes)))
    if name not in classes:
        raise ConfigError(
            f"BBoxPostProcess.{part}.name: {name!r} is not supported here; use one of {', '.join(classes)}"
        )
    return classes[name](**block)


class BlazeFaceForward(paddle.nn.Layer):
    """Image -> raw head conv outputs: what runs on the device, for FLOPs and latency keys."""

    def __init__(self, model: BlazeFace) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: paddle.Tensor) -> List[paddle.Tensor]:
        feats = self.model.backbone({"image": image})
        if not self.model.neck.reture_input:  # an identity neck is a leaf taking a list: paddle.flops trips on it
            feats = self.model.neck(feats)
        head = self.model.blaze_head
        outs = []
        for feat, box_conv, score_conv in zip(feats, head.box_convs, head.score_convs):
            outs += [box_conv(feat), score_conv(feat)]
        return outs


def wider_dataset(block: Optional[Mapping[str, Any]], cfg: Mapping[str, Any], which: str) -> WIDERFaceDataSet:
    """A WIDERFaceDataSet from a config block, with paths checked (ppdet would try to download)."""
    if not block:
        raise ConfigError(f"{which} is missing from the config")
    kwargs = {k: v for k, v in block.items() if k != "name"}
    if block.get("name", "WIDERFaceDataSet") != "WIDERFaceDataSet":
        raise ConfigError(f"{which}: only WIDERFaceDataSet is supported, got {block.get('name')}")
    dataset_dir = resolve_path(cfg, kwargs.get("dataset_dir"))
    if not dataset_dir or not os.path.isdir(dataset_dir):
        raise DataError(
            f"{which}.dataset_dir does not exist: {dataset_dir}; generate the demo set there with "
            f"`{demo_command('wider', dataset_dir)}`, or put WIDER FACE there (WIDER_train/, WIDER_val/ and "
            "wider_face_split/ from http://shuoyang1213.me/WIDERFACE/) or point the key at it"
        )
    for key in ("anno_path", "image_dir"):
        path = os.path.join(dataset_dir, kwargs.get(key) or "")
        if not kwargs.get(key) or not os.path.exists(path):
            raise DataError(f"{which}.{key} not found: {path}")
    kwargs["dataset_dir"] = dataset_dir
    return WIDERFaceDataSet(**kwargs)


class BlazeFaceTask:
    """The detection search's evaluation side (see ppnas.engine.protocols.Task)."""

    kind = "detection"

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.space_name = cfg["search_space"]
        self.space = build_space(self.space_name, kernel_choices=cfg["kernel_choices"])
        self.input_shape = [1, 3, int(cfg["input_size"]), int(cfg["input_size"])]
        self.max_iters = int(cfg["max_iters"])
        self.log_iter = int(cfg["log_iter"])
        self.num_classes = int(cfg.get("num_classes", 1))
        self.train_dataset = wider_dataset(cfg.get("TrainDataset"), cfg, "TrainDataset")
        self.eval_dataset = wider_dataset(cfg.get("EvalDataset"), cfg, "EvalDataset")
        self._train_loader = None
        self._eval_loader = None

    # --- the Task protocol -------------------------------------------------------------------------
    def decode(self, tokens: Sequence[int]) -> Dict[str, Any]:
        return dict(self.space.token2arch(list(tokens))[0])

    def build(self, tokens: Sequence[int]) -> BlazeFace:
        return self.build_structure(self.decode(tokens))

    def build_structure(self, structure: Mapping[str, Any]) -> BlazeFace:
        return build_blazeface(structure, self.cfg)

    def measurable(self, model: BlazeFace) -> paddle.nn.Layer:
        return BlazeFaceForward(model)

    def train_and_evaluate(self, model: BlazeFace, on_iter: Optional[IterCallback] = None) -> float:
        self._train(model, on_iter)
        # every rank scores the whole eval set (DetectionMAP has no cross-rank merge) with rank 0's model
        parallel.sync_buffers(model)
        return self.evaluate(model)

    def export(self, tokens: Sequence[int], model: BlazeFace, save_dir: str) -> List[str]:
        return export_model(self.decode(tokens), model, save_dir)

    def summary(self, tokens: Sequence[int]) -> str:
        return structure_block(self.decode(tokens))

    # --- training and evaluation with ppdet's reader, optimizer, loss and metric ---------------------
    def _loaders(self) -> None:
        """Readers are made once per search: parsing and transforms are the same for every candidate."""
        if self._train_loader is not None:
            return
        worker_num = int(self.cfg["worker_num"])
        self.eval_dataset.parse_dataset()
        # batch_size is per rank, as in PaddleDetection: with N ranks a step trains on N * batch_size images
        self._train_loader = self.train_loader(parallel.shard_sampler)
        eval_cfg = {k: v for k, v in (self.cfg.get("EvalReader") or {}).items() if k != "inputs_def"}
        eval_reader = EvalReader(num_classes=self.num_classes, **eval_cfg)
        # every image counts: EvalReader's own sampler would drop a last partial batch
        sampler = paddle.io.BatchSampler(self.eval_dataset, batch_size=eval_reader.batch_size, shuffle=False)
        self._eval_loader = reader_loader(eval_reader, self.eval_dataset, sampler, worker_num)

    def train_loader(self, make_sampler: Callable[..., Any]) -> paddle.io.DataLoader:
        """ppdet's train reader over the train set, batched by `make_sampler(dataset, batch_size, shuffle=,
        drop_last=)` (ppnas.parallel.shard_sampler: a shard per rank under launch)."""
        self.train_dataset.parse_dataset()
        train_cfg = {k: v for k, v in (self.cfg.get("TrainReader") or {}).items() if k != "inputs_def"}
        reader = TrainReader(num_classes=self.num_classes, **train_cfg)
        sampler = make_sampler(
            self.train_dataset, reader.batch_size, shuffle=reader.shuffle, drop_last=reader.drop_last
        )
        return reader_loader(reader, self.train_dataset, sampler, int(self.cfg["worker_num"]))

    def optimizer(self, model: paddle.nn.Layer, steps_per_epoch: int) -> paddle.optimizer.Optimizer:
        """ppdet's LearningRate (warm-up, decay) and OptimizerBuilder from the config's blocks."""
        lr_cfg = copy.deepcopy(self.cfg.get("LearningRate") or {"base_lr": 0.01, "schedulers": []})
        schedulers = lr_cfg.get("schedulers") or [{"name": "PiecewiseDecay", "milestones": [10**9]}]
        scheduler = LearningRate(base_lr=lr_cfg.get("base_lr", 0.01), schedulers=schedulers)(steps_per_epoch)
        opt_cfg = copy.deepcopy(self.cfg.get("OptimizerBuilder") or {})
        return OptimizerBuilder(**opt_cfg)(scheduler, model)

    def _train(self, model: BlazeFace, on_iter: Optional[IterCallback]) -> None:
        self._loaders()
        loader = self._train_loader
        optimizer = self.optimizer(model, len(loader))
        trained = parallel.wrap(model)
        model.train()
        iteration, epoch = 0, 0
        while iteration < self.max_iters:
            loader.batch_sampler.set_epoch(epoch)  # a new shuffle each epoch, the same in every run
            for data in iterate(loader):
                loss = trained(data)["loss"]
                value = parallel.mean(float(loss))  # every rank sees the same value and stops on the same NaN
                if not np.isfinite(value):
                    raise FloatingPointError(f"loss is {value} at iteration {iteration + 1}")
                loss.backward()
                optimizer.step()
                optimizer.clear_grad()
                optimizer._learning_rate.step()
                iteration += 1
                if on_iter is not None:
                    on_iter(iteration, self.max_iters, value)
                if iteration >= self.max_iters:
                    break
            epoch += 1

    def evaluate(self, model: BlazeFace) -> float:
        """AP at IoU 0.5 over all faces of the eval set, boxes compared in original-image pixels: ppdet's
        VOCMetric update (scale-factor division, zero-padding pruning, per-image DetectionMAP), integral AP."""
        self._loaders()
        metric = voc_metric()
        model.eval()
        with paddle.no_grad():
            for data in self._eval_loader:
                metric.update(data, model(data))
                # kept only for a bbox.json, written with output_eval alone: on WIDER val up to 3226 images x
                # 750 boxes x 6 numbers in Python lists (about 0.5 GB at 32 bytes a number) per candidate
                metric.results = {key: [] for key in metric.results}
        ppdet_log = logging.getLogger(VOCMetric.__module__)  # its "Accumulating..." line would break the progress bar
        level = ppdet_log.level
        ppdet_log.setLevel(logging.WARNING)
        try:
            metric.accumulate()
        finally:
            ppdet_log.setLevel(level)
        model.train()
        return float(metric.get_results()["bbox"][0])


def voc_metric() -> VOCMetric:
    """ppdet's VOCMetric for one class, 'face'. All faces count (evaluate_difficult): WIDER FACE samples have
    no `difficult` field. A score-0 box ppdet adds to an image without detections ranks last and moves no
    recall, so it leaves the AP as it is."""
    with tempfile.TemporaryDirectory(prefix="ppnas_voc_") as folder:
        label_list = os.path.join(folder, "label_list.txt")  # VOCMetric reads class names from a file, once
        with open(label_list, "w", encoding="utf-8") as f:
            f.write("face\n")
        return VOCMetric(label_list, class_num=1, overlap_thresh=0.5, map_type="integral", evaluate_difficult=True)


def reader_loader(reader: Any, dataset: WIDERFaceDataSet, batch_sampler: Any, worker_num: int) -> paddle.io.DataLoader:
    """ppdet's reader pipeline (dataset, sample and batch transforms) in a paddle DataLoader.

    Not `reader(dataset, worker_num)`: that starts an iterator at once, whose prefetch thread draws from
    the global RNGs (random flips, distortions) while the search seeds them, so the first candidate of a
    seeded search would differ from run to run. Without workers, transforms run in this thread, in order.
    """
    dataset.set_transform(reader._sample_transforms)
    dataset.set_kwargs(**reader.kwargs)
    return paddle.io.DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=reader._batch_transforms,
        num_workers=worker_num,
        use_buffer_reader=worker_num > 0,
        return_list=False,
    )


def with_search_defaults(cfg: Mapping[str, Any], extra_keys: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Check keys and fill defaults; the result is what BlazeFaceTask and the runner read.

    `extra_keys` (name -> default) are the keys of a strategy built on this task (the one-shot search)."""
    defaults = {**SEARCH_DEFAULTS, **TASK_KEYS, **(extra_keys or {})}
    check_keys(cfg, list(defaults) + list(MODEL_KEYS) + list(PPDET_UNUSED_KEYS), where="detection config")
    out = {**{k: copy.deepcopy(v) for k, v in defaults.items()}, **cfg}
    if out.get("architecture", "BlazeFace") != "BlazeFace":
        raise ConfigError(f"architecture must be BlazeFace for this search, got {out['architecture']}")
    out.setdefault(CONFIG_DIR_KEY, os.getcwd())
    return out
