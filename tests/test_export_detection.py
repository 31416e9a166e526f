"""Export of a found BlazeFace: Paddle Inference equals dygraph, ONNX equals Paddle Inference, infer_cfg.yml
reads back as PaddleDetection's deploy/python/infer.py reads it, and the one-line errors."""

import ppnas  # noqa: F401  # isort: skip
import importlib.util
import pathlib

import cv2
import numpy as np
import paddle
import pytest
import yaml
from conftest import TINY_SIZE, write_det_config
from export_helpers import paddle_inference, run_export_cli

from ppnas.config import load_config
from ppnas.errors import DataError, ExportError
from ppnas.export.detection import OUTPUT_NAMES
from ppnas.export.model import ExportRequest
from ppnas.export.run import export_model
from ppnas.tasks.detection import (
    FRAGMENT_FILE,
    WEIGHTS_FILE,
    BlazeFaceTask,
    build_blazeface,
    structure_from_fragment,
    with_search_defaults,
)

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime"))
HAS_MNN = HAS_ONNX and importlib.util.find_spec("MNN") is not None
# PaddleDetection 2.5's deploy/python/infer.py: the models it runs, and the keys PredictConfig reads
SUPPORT_MODELS = {"YOLO", "RCNN", "SSD", "Face", "FCOS", "SOLOv2", "TTFNet", "S2ANet", "JDE", "FairMOT", "DeepSORT"}
PREDICT_CONFIG_KEYS = ("arch", "Preprocess", "min_subgraph_size", "label_list", "use_dynamic_shape")


@pytest.fixture(scope="module")
def found(tmp_path_factory, tiny_wider):
    """What the detection search leaves for its best candidate, trained 2 real iterations: config, fragment, weights."""
    folder = tmp_path_factory.mktemp("det_export")
    config = write_det_config(folder, tiny_wider)
    task = BlazeFaceTask(with_search_defaults(load_config(str(config))))
    tokens = task.space.init_tokens()
    paddle.seed(0)
    model = task.build(tokens)
    task._train(model, None)
    task.export(tokens, model, str(folder / "search"))
    files = {
        "config": config,
        "fragment": folder / "search" / FRAGMENT_FILE,
        "weights": folder / "search" / WEIGHTS_FILE,
    }
    return {**files, "task": task, "tokens": tokens}


@pytest.fixture(scope="module")
def exported(found, tmp_path_factory):
    out = tmp_path_factory.mktemp("det_inference")
    request = ExportRequest(str(found["fragment"]), str(found["weights"]), str(found["config"]))
    return out, export_model("detection", request, str(out), onnx=HAS_ONNX, mnn=HAS_MNN)


def _feeds(image: np.ndarray, size: int = TINY_SIZE) -> dict:
    return {
        "image": image,
        "im_shape": np.array([[size, size]], "float32"),
        "scale_factor": np.ones([1, 2], "float32"),
    }


def _dygraph(found, feeds):
    cfg = load_config(str(found["config"]))
    model = build_blazeface(structure_from_fragment(str(found["fragment"])), cfg)
    model.set_state_dict(paddle.load(str(found["weights"])))
    model.eval()
    with paddle.no_grad():
        out = model({k: paddle.to_tensor(v) for k, v in feeds.items()})
    return out["bbox"].numpy(), out["bbox_num"].numpy()


def test_inference_model_equals_dygraph(found, exported):
    out, result = exported
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".info") == sorted(
        ["model.pdmodel", "model.pdiparams", "infer_cfg.yml"]
        + (["model.onnx"] if HAS_ONNX else [])
        + (["model.mnn"] if HAS_MNN else [])
    )
    image = np.random.default_rng(7).uniform(-1, 1, [1, 3, TINY_SIZE, TINY_SIZE]).astype("float32")
    boxes, counts = paddle_inference(out, _feeds(image))
    named = paddle_inference(out, _feeds(image), outputs=list(OUTPUT_NAMES.values()))  # the documented names
    assert named[0].tolist() == boxes.tolist() and named[1].tolist() == counts.tolist()
    ref_boxes, ref_counts = _dygraph(found, _feeds(image))
    assert boxes.shape[1] == 6 and counts.tolist() == ref_counts.tolist() == [len(boxes)]
    np.testing.assert_allclose(boxes, ref_boxes, rtol=1e-3, atol=1e-3)
    assert result.inference_vs_dygraph.max_abs_diff < 1e-2  # the exporter's own check, on its own input


def test_infer_cfg_reads_back_as_paddledetection_deploy_reads_it(exported, tiny_wider):
    out, _ = exported
    cfg = yaml.safe_load((out / "infer_cfg.yml").read_text())
    assert all(key in cfg for key in PREDICT_CONFIG_KEYS)
    assert any(name in cfg["arch"] for name in SUPPORT_MODELS) and cfg["arch"] == "Face"
    assert cfg["mode"] == "paddle" and cfg["metric"] == "WiderFace" and cfg["draw_threshold"] == 0.5
    assert cfg["use_dynamic_shape"] is False and cfg["min_subgraph_size"] == 3
    assert cfg["label_list"] == ["face"]
    assert [op["type"] for op in cfg["Preprocess"]] == ["Resize", "NormalizeImage", "Permute"]
    # deploy/python/preprocess.py's ops take the same arguments as ppdet's; run them on a real image,
    # feed the model as infer.py's create_inputs does, and read boxes as Detector.predict does.
    from ppdet.data.transform import operators

    ops = [getattr(operators, op.pop("type"))(**op) for op in cfg["Preprocess"]]
    image_file = next(pathlib.Path(tiny_wider).rglob("*.jpg"))
    sample = {"image": cv2.imread(str(image_file))[:, :, ::-1].astype("float32")}
    sample["im_shape"] = np.array(sample["image"].shape[:2], "float32")
    sample["scale_factor"] = np.ones(2, "float32")
    for op in ops:
        sample = op(sample)
    assert sample["image"].shape == (3, TINY_SIZE, TINY_SIZE)
    feeds = {k: np.asarray(sample[k], "float32")[None] for k in ("image", "im_shape", "scale_factor")}
    boxes, counts = paddle_inference(out, feeds)
    assert boxes.shape == (int(counts[0]), 6) and set(boxes[:, 0].tolist()) <= {0.0}


@pytest.mark.skipif(not HAS_ONNX, reason="paddle2onnx/onnxruntime not installed (pip install 'ppnas[onnx]')")
def test_onnx_output_matches_paddle_inference(exported):
    import onnxruntime

    out, result = exported
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in session.get_inputs()) == ["im_shape", "image", "scale_factor"]
    image = np.random.default_rng(8).uniform(-1, 1, [1, 3, TINY_SIZE, TINY_SIZE]).astype("float32")
    feeds = _feeds(image)
    onnx_boxes, onnx_counts = session.run([OUTPUT_NAMES["bbox"], OUTPUT_NAMES["bbox_num"]], feeds)
    boxes, counts = paddle_inference(out, feeds)
    assert onnx_counts.tolist() == counts.tolist()
    np.testing.assert_allclose(onnx_boxes, boxes, rtol=1e-3, atol=1e-3)
    assert result.onnx_vs_inference is not None and result.onnx_vs_inference.max_abs_diff < 1e-2


@pytest.mark.skipif(not HAS_MNN, reason="MNN not installed (pip install 'ppnas[onnx,mnn]')")
def test_mnn_model_with_nms_inside_matches_paddle_inference(exported):
    """model.mnn runs with MNN's module API (its Interpreter refuses NMS: shapes depend on values)."""
    from ppnas.export.inference import io_names
    from ppnas.export.mnn import run_mnn

    out, result = exported
    image = np.random.default_rng(8).uniform(-1, 1, [1, 3, TINY_SIZE, TINY_SIZE]).astype("float32")
    feeds = _feeds(image)
    boxes, counts = paddle_inference(out, feeds)
    inputs, outputs = io_names(str(out))
    assert sorted(inputs) == ["im_shape", "image", "scale_factor"] and len(outputs) == 2
    mnn_boxes, mnn_counts = run_mnn(str(out / "model.mnn"), feeds, inputs, outputs)
    assert mnn_counts.tolist() == counts.tolist() and mnn_boxes.shape == boxes.shape and len(boxes) > 0
    order = np.lexsort(boxes.T[::-1]), np.lexsort(mnn_boxes.T[::-1])  # tied scores may come out swapped
    np.testing.assert_allclose(mnn_boxes[order[1]], boxes[order[0]], rtol=1e-3, atol=1e-3)
    assert result.mnn_vs_inference is not None and result.mnn_vs_inference.max_abs_diff < 1e-2


def test_weights_of_another_structure_name_the_first_mismatch(found, tmp_path):
    task, tokens = found["task"], list(found["tokens"])
    tokens[0] = (tokens[0] + 1) % task.space.range_table()[0]  # the first blocks' width: other conv shapes
    other = task.build(tokens).state_dict()
    paddle.save(other, str(tmp_path / "other.pdparams"))
    mine = paddle.load(str(found["weights"]))
    name = next(n for n in mine if list(mine[n].shape) != list(other[n].shape))  # the first in the model's order
    request = ExportRequest(str(found["fragment"]), str(tmp_path / "other.pdparams"), str(found["config"]))
    with pytest.raises(ExportError) as err:
        export_model("detection", request, str(tmp_path / "out"))
    assert str(err.value).endswith(
        f"parameter {name} has shape {list(other[name].shape)} in the weights, "
        f"{list(mine[name].shape)} in the structure"
    )
    assert str(err.value).startswith(f"{tmp_path / 'other.pdparams'} does not match {found['fragment']}")
    assert not (tmp_path / "out").exists()


def test_missing_input_file_is_an_error(found, tmp_path):
    request = ExportRequest(str(found["fragment"]), str(tmp_path / "none.pdparams"), str(found["config"]))
    with pytest.raises(DataError, match="weights file not found: .*none.pdparams"):
        export_model("detection", request, str(tmp_path / "out"))


def test_cli_errors_are_one_line_with_exit_code_2(found, tmp_path):
    """A missing file, and --onnx without paddle2onnx (a package that fails to import stands in for it)."""
    args = ["--family", "detection", "-c", str(found["config"]), "--structure", str(found["fragment"])]
    missing = run_export_cli(*args, "--weights", str(tmp_path / "none.pdparams"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == f"error: weights file not found: {tmp_path / 'none.pdparams'}"
    assert "Traceback" not in missing.stderr
    shadow = tmp_path / "shadow" / "paddle2onnx"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'paddle2onnx'\")\n")
    no_onnx = run_export_cli(
        *args, "--weights", str(found["weights"]), "--out", str(tmp_path / "o"), "--onnx", extra_path=str(shadow.parent)
    )
    assert no_onnx.returncode == 2, no_onnx.stderr
    last = no_onnx.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ONNX export needs paddle2onnx") and "pip install 'ppnas[onnx]'" in last
    assert not (tmp_path / "o").exists()
