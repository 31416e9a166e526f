"""Detection family: a BlazeFace found by the detection search, exported as PaddleDetection's exporter does.

Inputs `image`, `im_shape`, `scale_factor`; post-processing (box decoding and NMS) inside the model;
outputs, in this order and with the fetch names Paddle's saver gives them (as in PaddleDetection's own
exports, whose deploy/python/infer.py reads them by position): the boxes ([N, 6]: class, score, x1, y1, x2,
y2) and the box count per image (OUTPUT_NAMES); `infer_cfg.yml` written by ppdet's own `_dump_infer_config`,
so PaddleDetection's `deploy/python/infer.py` reads it as it reads its own.

One change to the network: the anchors. ppdet computes them with the `prior_box` operator on every run,
which paddle2onnx 1.3.1 cannot convert; the export input has a fixed size (as BlazeFace's TestReader
has), so they are computed once and stored in the model as constants. The check against dygraph compares
with the unchanged ppdet model, prior_box included.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import copy
import os
from typing import Any, Dict, List, Mapping

import numpy as np
import paddle
from paddle.static import InputSpec
from ppdet.data.source.widerface import WIDERFaceDataSet
from ppdet.engine.export_utils import _dump_infer_config

from ppnas.config import load_config, resolve_path
from ppnas.errors import ConfigError
from ppnas.export.model import Exportable, ExportRequest, dygraph_outputs, sample_image
from ppnas.export.weights import load_weights
from ppnas.tasks.detection import build_blazeface, structure_from_fragment

INFER_CFG = "infer_cfg.yml"
DEFAULT_METRIC = "WiderFace"
DEFAULT_SIZE = 640
# what ppdet's BlazeFace returns -> the fetch name of that output in model.pdmodel and in model.onnx
OUTPUT_NAMES = {"bbox": "save_infer_model/scale_0.tmp_0", "bbox_num": "save_infer_model/scale_1.tmp_0"}


class FixedAnchors(paddle.nn.Layer):
    """`prior_box`'s output for one input size, kept as buffers (saved with the parameters)."""

    def __init__(self, anchors: List[paddle.Tensor]) -> None:
        super().__init__()
        self.count = len(anchors)
        for i, anchor in enumerate(anchors):
            self.register_buffer(f"anchors{i}", anchor.detach())

    def forward(self, feats: List[paddle.Tensor], image: paddle.Tensor) -> List[paddle.Tensor]:
        return [getattr(self, f"anchors{i}") for i in range(self.count)]


def input_size(cfg: Mapping[str, Any], requested: Any) -> int:
    """--input_size, else the TestReader's inputs_def.image_shape, else the search's input_size, else 640."""
    if requested:
        return int(requested)
    shape = ((cfg.get("TestReader") or {}).get("inputs_def") or {}).get("image_shape")
    if shape and int(shape[-1]) > 0:
        return int(shape[-1])
    return int(cfg.get("input_size") or DEFAULT_SIZE)


def _test_dataset(cfg: Mapping[str, Any]) -> WIDERFaceDataSet:
    """The dataset ppdet's exporter takes label names from (WIDER FACE: always 'face')."""
    block = dict(cfg.get("TestDataset") or cfg.get("EvalDataset") or {})
    block.pop("name", None)
    block["dataset_dir"] = resolve_path(cfg, block.get("dataset_dir")) if block.get("dataset_dir") else None
    return WIDERFaceDataSet(**{k: v for k, v in block.items() if k in ("dataset_dir", "image_dir", "anno_path")})


def infer_config(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The config ppdet's `_dump_infer_config` reads, from a search config or a PaddleDetection face config."""
    reader = cfg.get("TestReader") or cfg.get("EvalReader")
    if not reader or not reader.get("sample_transforms"):
        raise ConfigError("the config has neither TestReader nor EvalReader sample_transforms: no Preprocess to export")
    return {
        "metric": cfg.get("metric", DEFAULT_METRIC),
        "architecture": cfg.get("architecture", "BlazeFace"),
        "BlazeFace": dict(cfg.get("BlazeFace") or {}),
        "TestReader": copy.deepcopy(dict(reader)),  # ppdet edits the Resize entries in place
        "TestDataset": _test_dataset(cfg),
    }


def prepare(request: ExportRequest) -> Exportable:
    if not request.config:
        raise ConfigError(
            "detection export needs --config: the search config (or the PaddleDetection face config) "
            "with the anchors, post-processing and reader the structure was trained with"
        )
    cfg = load_config(request.config)
    model = build_blazeface(structure_from_fragment(request.structure), cfg)
    load_weights(model, request.weights, request.structure)
    model.eval()
    size = input_size(cfg, request.input_size)
    image = sample_image([1, 3, size, size])
    feeds = {
        "image": image,
        "im_shape": np.array([[size, size]], dtype="float32"),
        "scale_factor": np.ones([1, 2], dtype="float32"),
    }
    tensors = {name: paddle.to_tensor(value) for name, value in feeds.items()}
    reference = dygraph_outputs(model, [tensors])  # bbox, bbox_num: jit.save orders dict outputs by key
    with paddle.no_grad():
        feats = model.neck(model.backbone(tensors))
        anchors = model.blaze_head.anchor_generator(feats, tensors["image"])
    model.blaze_head.anchor_generator = FixedAnchors(anchors)
    image_shape = [None, 3, size, size]
    spec = {
        "image": InputSpec(image_shape, "float32", "image"),
        "im_shape": InputSpec([None, 2], "float32", "im_shape"),
        "scale_factor": InputSpec([None, 2], "float32", "scale_factor"),
    }
    ppdet_cfg = infer_config(cfg)

    def write_deploy_config(out_dir: str) -> str:
        path = os.path.join(out_dir, INFER_CFG)
        _dump_infer_config(ppdet_cfg, path, image_shape, model)
        return path

    return Exportable(
        layer=model,
        input_spec=[spec],
        sample_inputs=feeds,
        reference=reference,
        write_deploy_config=write_deploy_config,
        unordered_rows=True,
        score_cutoff=float(getattr(model.post_process.nms, "score_threshold", 0.0)),
    )
