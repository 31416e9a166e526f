"""Landmarks family: the FBNet-derived PFLD subnet (its structure YAML + weights) -> image -> 106 points.

deploy.yaml says what the model takes and gives, as training fed it (ppnas/tasks/landmarks_data.py): a BGR
face crop resized to the input size, pixels / 255, CHW, no mean or std; out come 212 values, x and y of each
point normalised to the crop."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os

import yaml

from ppnas.export.model import Exportable, ExportRequest, image_model
from ppnas.export.weights import load_weights
from ppnas.fbnet.derive import load_subnet
from ppnas.fbnet.supernet import LandmarkForward

DEPLOY_YAML = "deploy.yaml"
POINTS = 106


def prepare(request: ExportRequest) -> Exportable:
    model = load_subnet(request.structure)
    load_weights(model, request.weights, request.structure)
    size = int(request.input_size or model.spec.input_size)
    layer = LandmarkForward(model.backbone)  # the auxiliary angle net is for training only
    info = {
        "Deploy": {
            "model": "model.pdmodel",
            "params": "model.pdiparams",
            "input_shape": [None, 3, size, size],
            # what ppnas/tasks/landmarks_data.py feeds in training: cv2.imread's BGR crop, resized, / 255, CHW
            "input": f"[N, 3, {size}, {size}] float32: a face crop resized to {size}x{size}, channels BGR (as "
            f"cv2.imread reads them), pixels / 255 (0..1), CHW; no mean or std",
            "channel_order": "BGR",
            "transforms": [{"type": "Resize", "target_size": [size, size]}, {"type": "Scale", "scale": 1 / 255.0}],
            "output": f"[N, {2 * POINTS}] float32: x1 y1 ... x{POINTS} y{POINTS}, each normalised to the crop "
            f"(0..1: multiply x by the crop's width, y by its height)",
            "choices": list(model.choices),
        }
    }

    def write_deploy_config(out_dir: str) -> str:
        path = os.path.join(out_dir, DEPLOY_YAML)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(info, f, sort_keys=False)
        return path

    return image_model(layer, [None, 3, size, size], [1, 3, size, size], write_deploy_config)
