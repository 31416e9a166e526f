"""Segmentation family: a DeepLabV3+ found by the segmentation search, exported as PaddleSeg's exporter does.

One input `x` of any size ([None, 3, None, None], or fixed with --input_size), the output op appended
(`argmax`: an int32 class map, PaddleSeg's default; `softmax`; or `none`: the logits), and `deploy.yaml`
(`Deploy: model, params, transforms, input_shape, output_op, output_dtype`) as PaddleSeg's
deploy/python/infer.py reads it. The saved program holds the whole network as Paddle operators: running
it needs Paddle Inference only, not ppnas or its backbone class.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import copy
import os
from typing import Any, Dict, List, Optional

import paddle
import yaml

import search_space  # noqa: F401  # registers MobileNetV2SegBackbone in PaddleSeg's BACKBONES
from ppnas.errors import ConfigError
from ppnas.export.model import Exportable, ExportRequest, image_model
from ppnas.export.weights import load_weights
from ppnas.tasks.segmentation import crop_input_shape
from ppnas.tasks.segmentation_config import config_with_model, paddleseg_config

DEPLOY_YAML = "deploy.yaml"
OUTPUT_OPS = ("argmax", "softmax", "none")


class WithOutputOp(paddle.nn.Layer):
    """PaddleSeg's export wrapper (in its tools/export.py, not in the paddleseg package): the op on each logit."""

    def __init__(self, model: paddle.nn.Layer, output_op: str) -> None:
        super().__init__()
        self.model = model
        self.output_op = output_op

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        outs = self.model(x)
        if self.output_op == "argmax":
            return [paddle.argmax(out, axis=1, dtype="int32") for out in outs]
        if self.output_op == "softmax":
            return [paddle.nn.functional.softmax(out, axis=1) for out in outs]
        return list(outs)


def deploy_info(dic: Dict[str, Any], input_shape: List[Optional[int]], output_op: str) -> Dict[str, Any]:
    """PaddleSeg's deploy.yaml: the export block's transforms, else the val set's (the deploy-time ones)."""
    transforms = (dic.get("export") or {}).get("transforms") or (dic.get("val_dataset") or {}).get("transforms")
    return {
        "Deploy": {
            "model": "model.pdmodel",
            "params": "model.pdiparams",
            "transforms": copy.deepcopy(transforms or [{"type": "Normalize"}]),
            "input_shape": list(input_shape),
            "output_op": output_op,
            "output_dtype": "int32" if output_op == "argmax" else "float32",
        }
    }


def prepare(request: ExportRequest) -> Exportable:
    if not request.config:
        raise ConfigError(
            "segmentation export needs --config: the PaddleSeg config of the search (num_classes, val transforms)"
        )
    output_op = request.options.get("output_op", "argmax")
    if output_op not in OUTPUT_OPS:
        raise ConfigError(f"output_op must be one of {', '.join(OUTPUT_OPS)}, got {output_op!r}")
    dic = config_with_model(request.config, request.structure)
    os.environ["PADDLESEG_EXPORT_STAGE"] = "True"  # as PaddleSeg's exporter: plain BatchNorm for SyncBatchNorm
    model = paddleseg_config(dic).model
    load_weights(model, request.weights, request.structure)
    layer = WithOutputOp(model, output_op)
    if request.input_size:
        shape: List[Optional[int]] = [None, 3, int(request.input_size), int(request.input_size)]
        sample = [1, 3, int(request.input_size), int(request.input_size)]
    else:
        shape = [None, 3, None, None]
        sample = crop_input_shape(dic)  # the training crop
    info = deploy_info(dic, shape, output_op)

    def write_deploy_config(out_dir: str) -> str:
        path = os.path.join(out_dir, DEPLOY_YAML)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(info, f, sort_keys=False)
        return path

    return image_model(layer, shape, sample, write_deploy_config)
