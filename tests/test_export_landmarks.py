"""The landmarks export family: the files, and a deploy.yaml that says the input and output layout."""

import ppnas  # noqa: F401  # isort: skip
import numpy as np
import paddle
import yaml
from export_helpers import paddle_inference
from fbnet_helpers import SIDE, TINY_SUPERNET

from ppnas.export.model import ExportRequest
from ppnas.export.run import export_model
from ppnas.fbnet.derive import structure_dict, write_structure
from ppnas.fbnet.supernet import LandmarkModel, supernet_spec


def test_landmarks_export_writes_its_layout_and_gives_212_normalised_values(tmp_path):
    spec = supernet_spec(TINY_SUPERNET)
    names = [slot.candidates[0] for slot in spec.layers]
    structure = write_structure(str(tmp_path / "subnet.yml"), structure_dict(spec, names))
    paddle.seed(0)
    paddle.save(LandmarkModel(spec, names).state_dict(), str(tmp_path / "subnet.pdparams"))
    out = tmp_path / "inference"
    export_model("landmarks", ExportRequest(structure, str(tmp_path / "subnet.pdparams")), str(out))
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".info") == [
        "deploy.yaml",
        "model.pdiparams",
        "model.pdmodel",
    ]
    deploy = yaml.safe_load((out / "deploy.yaml").read_text())["Deploy"]
    assert deploy["channel_order"] == "BGR" and deploy["input_shape"] == [None, 3, SIDE, SIDE]
    assert "pixels / 255" in deploy["input"] and "no mean or std" in deploy["input"]
    assert deploy["output"].startswith("[N, 212] float32: x1 y1 ... x106 y106, each normalised to the crop")
    assert deploy["transforms"] == [
        {"type": "Resize", "target_size": [SIDE, SIDE]},
        {"type": "Scale", "scale": 1 / 255},
    ]
    crop = np.random.default_rng(0).uniform(0, 1, [2, 3, SIDE, SIDE]).astype("float32")
    (points,) = paddle_inference(out, {"x": crop})
    assert points.shape == (2, 212)
