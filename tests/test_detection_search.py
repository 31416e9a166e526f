"""The detection search in-process on a tiny WIDER-layout set: real ppdet models, real training steps."""

import ppnas  # noqa: F401  # isort: skip
import json

import numpy as np
import paddle
import pytest
import yaml
from conftest import ROOT, write_det_config
from ppdet.metrics.map_utils import DetectionMAP

from ppnas.config import load_config, merge, parse_overrides
from ppnas.constraint import Constraint
from ppnas.engine.options import SearchOptions
from ppnas.engine.runner import run_task
from ppnas.errors import ConfigError, ConstraintError, ControllerError
from ppnas.history import History
from ppnas.samplers.annealing import SANAS_CHECKPOINT
from ppnas.spaces import build_space
from ppnas.tasks.detection import BlazeFaceForward, BlazeFaceTask, build_blazeface, with_search_defaults


def _setup(tmp_path, tiny_wider, *overrides):
    cfg = with_search_defaults(
        merge(load_config(str(write_det_config(tmp_path, tiny_wider))), parse_overrides(list(overrides)))
    )
    options = SearchOptions(
        space_name=cfg["search_space"],
        search_steps=int(cfg["search_steps"]),
        save_dir=cfg["save_dir"],
        config_path=str(tmp_path / "det.yml"),
        kind="detection",
        seed=cfg["seed"],
        quiet=True,
        max_rejects=int(cfg["max_rejects"]),
        max_failures=int(cfg["max_failures"]),
    )
    return cfg, options


def _statuses(save_dir):
    return [r["status"] for r in History.in_dir(save_dir).read()]


def test_rejected_candidates_use_up_no_search_step(tmp_path, tiny_wider):
    cfg, options = _setup(tmp_path, tiny_wider)
    task = BlazeFaceTask(cfg)
    init_flops = Constraint().measure(task.measurable(task.build(task.space.init_tokens())), task.input_shape).flops
    constraint = Constraint(ctype="flops", max_constraint=init_flops)  # about half the neighbours are larger
    result = run_task(task, options, constraint)
    records = History.in_dir(options.save_dir).read()
    trained = [r for r in records if r["status"] == "trained"]
    rejected = [r for r in records if r["status"] == "rejected"]
    assert result.steps_done == 2 and [r["step"] for r in trained] == [1, 2]
    assert rejected, "this seed draws candidates above the window; none was rejected"
    assert all(r["flops"] <= init_flops for r in trained)
    assert all(r["flops"] > init_flops and "outside flops in [-inf" in r["reason"] for r in rejected)
    assert all(r["reward"] is None and r["step"] is None for r in rejected)
    assert all(0.0 <= r["reward"] <= 1.0 for r in trained)
    fragment = yaml.safe_load(open(f"{options.save_dir}/blazeface_nas.yml"))
    best = max(trained, key=lambda r: r["reward"])
    assert fragment["BlazeNet"]["double_blaze_filters"] == best["structure"]["double_blaze_filters"]


def test_impossible_window_stops_with_the_window_and_the_range_seen(tmp_path, tiny_wider):
    cfg, options = _setup(tmp_path, tiny_wider, "max_rejects=4")
    with pytest.raises(ConstraintError) as err:
        run_task(BlazeFaceTask(cfg), options, Constraint(ctype="flops", min_constraint=1, max_constraint=2))
    message = str(err.value)
    assert "no candidate met the constraint flops in [1, 2] FLOPs in 4 draws in a row" in message
    assert "the values seen were in [" in message and "widen the window" in message
    assert _statuses(options.save_dir) == ["rejected"] * 4


class PoisonFirstCandidate(BlazeFaceTask):
    """A real candidate whose weights hold a NaN: its loss is NaN, as a diverging run's would be."""

    poisoned = False

    def train_and_evaluate(self, model, on_iter=None):
        if not self.poisoned:
            type(self).poisoned = True
            weight = model.blaze_head.box_convs[0].weight  # no ReLU after it to swallow the NaN
            weight.set_value(paddle.full(weight.shape, float("nan"), weight.dtype))
        return super().train_and_evaluate(model, on_iter)


def test_failed_candidate_is_recorded_and_the_search_goes_on(tmp_path, tiny_wider):
    cfg, options = _setup(tmp_path, tiny_wider)
    run_task(PoisonFirstCandidate(cfg), options, Constraint())
    records = History.in_dir(options.save_dir).read()
    assert [r["status"] for r in records] == ["failed", "trained", "trained"]
    assert "FloatingPointError: loss is nan" in records[0]["reason"]
    assert records[0]["reward"] is None
    scene = json.load(open(f"{options.save_dir}/{SANAS_CHECKPOINT}"))
    assert scene["_iter"] == 2  # the controller was never rewarded for the failed one
    assert scene["_searched"][str(records[0]["tokens"])] == -1


def test_too_many_failures_stop_the_search(tmp_path, tiny_wider):
    cfg, options = _setup(tmp_path, tiny_wider, "max_failures=2", "LearningRate.base_lr=1.0e+30")
    with pytest.raises(ControllerError, match="2 candidates in a row failed to train"):
        run_task(BlazeFaceTask(cfg), options, Constraint())
    assert _statuses(options.save_dir) == ["failed", "failed"]


def test_new_search_refuses_a_save_dir_that_holds_one(tmp_path, tiny_wider):
    cfg, options = _setup(tmp_path, tiny_wider, "search_steps=1")
    run_task(BlazeFaceTask(cfg), options, Constraint())
    _, again = _setup(tmp_path, tiny_wider, "search_steps=1")
    with pytest.raises(Exception, match="already holds a search .* resume it with -r"):
        run_task(BlazeFaceTask(cfg), again, Constraint())


def per_image_detection_map(task, model):
    """AP as the project computed it before it used ppdet's VOCMetric: DetectionMAP fed image by image,
    gt boxes divided by the scale factor, padded boxes and ppdet's score-0 fake box dropped."""
    metric = DetectionMAP(class_num=1, overlap_thresh=0.5, map_type="integral", catid2name={0: "face"})
    model.eval()
    with paddle.no_grad():
        for data in task._eval_loader:
            out = model(data)
            bboxes, counts, start = out["bbox"].numpy(), out["bbox_num"].numpy(), 0
            for i, count in enumerate(counts):
                pred = bboxes[start : start + int(count)]
                start += int(count)
                pred = pred[pred[:, 1] > 0]
                scale_y, scale_x = data["scale_factor"][i].numpy()
                gt_box = data["gt_bbox"][i].numpy() / np.array([scale_x, scale_y, scale_x, scale_y])
                gt_label = data["gt_class"][i].numpy().reshape(-1)
                keep = (gt_box[:, 2] > gt_box[:, 0]) & (gt_box[:, 3] > gt_box[:, 1])
                metric.update(pred[:, 2:6], pred[:, 1], pred[:, 0], gt_box[keep], gt_label[keep])
    metric.accumulate()
    return float(metric.get_map())


def test_training_lowers_the_loss_and_raises_ap(tmp_path, tiny_wider):
    cfg, _ = _setup(tmp_path, tiny_wider, "max_iters=30", "LearningRate.base_lr=0.01")
    task = BlazeFaceTask(cfg)
    paddle.seed(0)
    model = task.build(task.space.init_tokens())
    untrained = task.evaluate(model)
    losses = []
    trained = task.train_and_evaluate(model, lambda i, n, loss: losses.append(loss))
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert untrained < 0.05
    assert trained > untrained + 0.02, f"30 iterations moved AP from {untrained:.4f} to {trained:.4f} only"
    # ppdet's VOCMetric (the reward) and the per-image DetectionMAP it replaced agree on the same set
    assert trained == pytest.approx(per_image_detection_map(task, model), abs=1e-9)
    assert task.evaluate(model) == trained


def _model_config(**blocks):
    return {**load_config(str(ROOT / "configs" / "_base_" / "blazeface_nas_model.yml")), **blocks}


@pytest.mark.parametrize("name", ["MultiClassNMS", "MatrixNMS"])
def test_configured_nms_class_is_built(name):
    from ppnas.tasks.detection import build_blazeface
    from search_space.blazeface import BlazeFaceNasSpace

    structure = BlazeFaceNasSpace(kernel_choices=[3]).decode([3, 5, 4, 6, 1, 2, 3, 4, 0])
    nms = {"name": name, "keep_top_k": 7, "score_threshold": 0.01}
    model = build_blazeface(structure, _model_config(BBoxPostProcess={"decode": {"name": "SSDBox"}, "nms": nms}))
    assert type(model.post_process.nms).__name__ == name and model.post_process.nms.keep_top_k == 7


def test_unsupported_decode_or_nms_class_is_refused():
    from ppnas.tasks.detection import build_blazeface
    from search_space.blazeface import BlazeFaceNasSpace

    structure = BlazeFaceNasSpace(kernel_choices=[3]).decode([3, 5, 4, 6, 1, 2, 3, 4, 0])
    with pytest.raises(
        ConfigError, match="BBoxPostProcess.decode.name: 'RCNNBox' is not supported here; use one of SSDBox"
    ):
        build_blazeface(structure, _model_config(BBoxPostProcess={"decode": {"name": "RCNNBox"}}))
    with pytest.raises(ConfigError, match="nms.name: 'Foo' is not supported here; use one of MultiClassNMS, MatrixNMS"):
        build_blazeface(structure, _model_config(BBoxPostProcess={"nms": {"name": "Foo"}}))


def test_fragment_drops_into_paddledetection_config(tmp_path):
    from ppdet.core.workspace import create
    from ppdet.core.workspace import load_config as ppdet_load_config

    from ppnas.tasks.detection import write_fragment
    from search_space.blazeface import BlazeFaceNasSpace

    structure = BlazeFaceNasSpace(kernel_choices=[3]).decode([3, 5, 4, 6, 1, 2, 3, 4, 0])
    write_fragment(structure, str(tmp_path / "blazeface_nas.yml"))
    face = tmp_path / "face.yml"
    base = ROOT / "configs" / "_base_" / "blazeface_nas_model.yml"
    face.write_text(yaml.safe_dump({"_BASE_": [str(base), "blazeface_nas.yml"]}))
    cfg = ppdet_load_config(str(face))  # PaddleDetection's own loader, unchanged
    model = create(cfg.architecture)
    model.eval()
    image = paddle.rand([1, 3, 128, 128])
    out = model({"image": image, "im_shape": paddle.to_tensor([[128.0, 128.0]]), "scale_factor": paddle.ones([1, 2])})
    assert out["bbox"].shape[1] == 6
    assert [s.channels for s in model.backbone.out_shape] == [32, 48]  # double tokens 4 and 6
    assert len(model.backbone.blaze_block) == 7


def test_demo_config_comment_states_the_share_of_neighbours_outside_its_window():
    import re

    from conftest import DEMO_DET_CONFIG

    comment = DEMO_DET_CONFIG.read_text()
    claim = re.search(r"has ([\d.]+) MFLOPs and (\d+) of its (\d+) one-token neighbours fall outside", comment)
    assert claim, "the demo config's comment no longer states the neighbours outside the window"
    cfg = load_config(str(DEMO_DET_CONFIG))
    space = build_space(cfg["search_space"], kernel_choices=cfg["kernel_choices"])
    constraint = Constraint.from_config(cfg["Constraint"], cfg)
    shape = [1, 3, cfg["input_size"], cfg["input_size"]]
    measure = lambda tokens: constraint.measure(BlazeFaceForward(build_blazeface(space.decode(tokens), cfg)), shape)  # noqa: E731
    init = space.init_tokens()
    assert f"{measure(init).flops / 1e6:.1f}" == claim.group(1)
    neighbours = [
        init[:i] + [v] + init[i + 1 :] for i, r in enumerate(space.range_table()) for v in range(r) if v != init[i]
    ]
    outside = sum(not constraint.admits(measure(tokens)) for tokens in neighbours)
    assert (outside, len(neighbours)) == (int(claim.group(2)), int(claim.group(3)))
