"""Export of a found DeepLabV3+: Paddle Inference equals dygraph, deploy.yaml reads back as PaddleSeg's
deploy/python/infer.py reads it, the saved model runs without ppnas, ONNX equals Paddle Inference."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml
from export_helpers import paddle_inference
from seg_helpers import SIDE, make_tiny_config

from ppnas.engine.seeding import seed_everything
from ppnas.errors import ExportError
from ppnas.export.model import ExportRequest
from ppnas.export.run import export_model
from ppnas.tasks.segmentation import BEST_DIR, FRAGMENT_FILE, WEIGHTS_FILE, DeepLabTask
from ppnas.tasks.segmentation_config import config_with_model, load_seg_config, paddleseg_config

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime"))
SMALL_TOKENS = [2] + [1, 2, 0, 0] * 3 + [1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 0, 0]  # a light backbone

# What PaddleSeg 2.7's deploy/python/infer.py does with a model folder: DeployConfig reads deploy.yaml and
# builds its transforms from PaddleSeg's registry; the predictor takes the model and params it names. Run in
# a fresh interpreter whose path has neither ppnas nor the search space, to prove the model needs neither.
DEPLOY_SCRIPT = """
import zlib, json, os, sys
import numpy as np
import yaml
from paddle import inference
from paddleseg.cvlibs import manager
import paddleseg.transforms as T
model_dir, image_file = sys.argv[1], sys.argv[2]
dic = yaml.safe_load(open(os.path.join(model_dir, "deploy.yaml")))["Deploy"]
transforms = T.Compose([manager.TRANSFORMS[t.pop("type")](**t) for t in dic["transforms"]])
config = inference.Config(os.path.join(model_dir, dic["model"]), os.path.join(model_dir, dic["params"]))
config.disable_gpu()
predictor = inference.create_predictor(config)
image = transforms({"img": image_file})["img"][None].astype("float32")
handle = predictor.get_input_handle(predictor.get_input_names()[0])
handle.reshape(image.shape)
handle.copy_from_cpu(image)
predictor.run()
labels = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("ppnas", "search_space", "latency"))
print(json.dumps({"shape": list(labels.shape), "dtype": str(labels.dtype), "ours": ours, "labels": labels.tolist()}))
"""


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    """What the segmentation search leaves for its best candidate, trained one real epoch."""
    folder = tmp_path_factory.mktemp("seg_export")
    config = make_tiny_config(folder, epochs=1)
    task = DeepLabTask(load_seg_config(str(config)), quiet=True)
    seed_everything(0)
    model = task.build(SMALL_TOKENS)
    task.train_and_evaluate(model)
    task.export(SMALL_TOKENS, model, str(folder / "search"))
    best = folder / "search" / BEST_DIR
    return {"config": config, "fragment": best / FRAGMENT_FILE, "weights": best / WEIGHTS_FILE, "task": task}


@pytest.fixture(scope="module")
def exported(found, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg_inference")
    request = ExportRequest(str(found["fragment"]), str(found["weights"]), str(found["config"]))
    return out, export_model("segmentation", request, str(out), onnx=HAS_ONNX)


def _logits(found, image):
    model = paddleseg_config(config_with_model(str(found["config"]), str(found["fragment"]))).model
    model.set_state_dict(paddle.load(str(found["weights"])))
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(image))[0].numpy()


def test_inference_model_equals_dygraph_at_any_size(found, exported):
    out, result = exported
    for height, width in ((SIDE, SIDE), (48, 80)):  # exported with [None, 3, None, None], as PaddleSeg does
        image = np.random.default_rng(height).uniform(-1, 1, [1, 3, height, width]).astype("float32")
        (labels,) = paddle_inference(out, {"x": image})
        logits = _logits(found, image)
        assert labels.dtype == np.int32 and labels.shape == (1, height, width)
        np.testing.assert_array_equal(labels, logits.argmax(axis=1))
    assert result.inference_vs_dygraph.differing_labels == 0 and result.inference_vs_dygraph.label_count == SIDE**2


def test_deploy_yaml_runs_as_paddleseg_deploy_runs_it_without_ppnas(found, exported, tmp_path):
    out, _ = exported
    deploy = yaml.safe_load((out / "deploy.yaml").read_text())["Deploy"]
    assert deploy == {
        "model": "model.pdmodel",
        "params": "model.pdiparams",
        "transforms": [{"type": "Normalize"}],  # the val set's transforms
        "input_shape": [None, 3, None, None],
        "output_op": "argmax",
        "output_dtype": "int32",
    }
    image_file = sorted((found["config"].parent / "data").rglob("*leftImg8bit.png"))[0]
    site = os.path.dirname(os.path.dirname(paddle.__file__))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", DEPLOY_SCRIPT, str(out), str(image_file)],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env={**env, "PYTHONPATH": site},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["ours"] == [] and got["dtype"] == "int32"
    import cv2
    import paddleseg.transforms as T

    image = T.Compose([T.Normalize()])({"img": str(image_file)})["img"][None].astype("float32")
    assert got["shape"] == [1, *cv2.imread(str(image_file)).shape[:2]]
    np.testing.assert_array_equal(np.array(got["labels"]), _logits(found, image).argmax(axis=1))


@pytest.mark.skipif(not HAS_ONNX, reason="paddle2onnx/onnxruntime not installed (pip install 'ppnas[onnx]')")
def test_onnx_output_matches_paddle_inference(exported):
    import onnxruntime

    out, result = exported
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(3).uniform(-1, 1, [1, 3, SIDE, SIDE]).astype("float32")
    (onnx_labels,) = session.run(None, {session.get_inputs()[0].name: image})
    np.testing.assert_array_equal(onnx_labels, paddle_inference(out, {"x": image})[0])
    assert result.onnx_vs_inference is not None and result.onnx_vs_inference.differing_labels == 0


def test_weights_of_another_structure_name_the_first_mismatch(found, tmp_path):
    other_tokens = list(SMALL_TOKENS)
    other_tokens[0] += 1  # the head block's width
    paddle.save(found["task"].build(other_tokens).state_dict(), str(tmp_path / "other.pdparams"))
    request = ExportRequest(str(found["fragment"]), str(tmp_path / "other.pdparams"), str(found["config"]))
    with pytest.raises(
        ExportError, match=r"does not match .*: parameter backbone\.\S+ has shape \[.*\] in the weights"
    ):
        export_model("segmentation", request, str(tmp_path / "out"))
