"""Landmarks family: the FBNet-derived PFLD subnet (its structure YAML + weights) -> image -> 106 points."""

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
            # what ppnas/tasks/landmarks_data.py feeds in training: RGB face crop, pixels / 255, CHW
            "transforms": [{"type": "Resize", "target_size": [size, size]}, {"type": "Scale", "scale": 1 / 255.0}],
            "output": f"[N, {2 * POINTS}]: x1 y1 ... x{POINTS} y{POINTS}, normalised to the crop",
            "choices": list(model.choices),
        }
    }

    def write_deploy_config(out_dir: str) -> str:
        path = os.path.join(out_dir, DEPLOY_YAML)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(info, f, sort_keys=False)
        return path

    return image_model(layer, [None, 3, size, size], [1, 3, size, size], write_deploy_config)
