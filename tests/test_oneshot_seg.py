"""The DeepLabV3+ supernet on PaddleSeg's DeepLabV3P: train_supnet -> search -> the exported fragment + weights load
strictly into the segmentation task's model and score the recorded mIoU; sample_accuracy; a subnet given as
United-Perception's subnet_settings, finetuned."""

import ppnas  # noqa: F401  # isort: skip
import json

import numpy as np
import paddle
import pytest
from oneshot_helpers import run_bignas
from seg_helpers import make_tiny_config

from ppnas.history import History
from ppnas.oneshot.export import subnet_state_dict
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.supernet import build_supernet
from ppnas.oneshot.train import train_supernet
from ppnas.tasks.segmentation import BEST_DIR, FRAGMENT_FILE, WEIGHTS_FILE, DeepLabTask
from ppnas.tasks.segmentation_config import config_with_model, paddleseg_config

SMALL = {  # a narrowed space, so the tiny run is quick: lowered maxima keep MobileNetV2SpaceSeg's tokens
    "backbone": {
        "depth": {"space": {"max": [1, 2, 2, 2, 2, 2, 2]}},
        "out_channel": {"space": {"max": [8, 8, 12, 24, 32, 48, 80]}},
    }
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg_bignas")
    slim = {
        "NAS_SPACE_NAME": "MobileNetV2SpaceSeg",
        "NAS_SEED": 0,
        "BIGNAS_MAX_ITERS": 2,
        "BIGNAS_CALIB_BATCHES": 1,
        "BIGNAS_SUBNET_COUNT": 2,
        "BIGNAS_FINETUNE_ITERS": 2,
        "BIGNAS_SPACE": SMALL,
        "BIGNAS_SAVE_DIR": str(folder / "out"),
    }
    config = str(make_tiny_config(folder, SLIM=slim))
    train_supernet(load_oneshot_config(config), quiet=True)
    return config, folder / "out"


def test_supernet_subnets_equal_paddleseg_deeplabv3p_with_the_sliced_weights(trained):
    config, _ = trained
    paddle.seed(0)
    supernet = build_supernet(load_oneshot_config(config))
    image = paddle.randn([2, 3, 64, 64])
    for tokens in (supernet.space.max_tokens(), supernet.space.min_tokens(), supernet.space.init_tokens()):
        subnet = supernet.space.decode(tokens)
        supernet.set_subnet(subnet)
        supernet.train()
        supernet(image)
        supernet.eval()
        model = supernet.plain_model(subnet)
        assert type(model).__name__ == "DeepLabV3P" and type(model.backbone).__name__ == "MobileNetV2SegBackbone"
        model.set_state_dict(subnet_state_dict(supernet, model, subnet))
        model.eval()
        np.testing.assert_allclose(supernet(image)[0].numpy(), model(image)[0].numpy(), atol=1e-5)


def test_search_exports_a_paddleseg_model_that_loads_strictly_and_scores_the_recorded_miou(capsys, trained):
    config, out = trained
    code, stdout, err = run_bignas(capsys, "-c", config, "--phase", "search", "--quiet")
    assert code == 0, err
    records = History.in_dir(str(out)).trained()
    assert len(records) == 2 and all(len(r["tokens"]) == 25 for r in records)  # MobileNetV2SpaceSeg's tokens
    best = max(records, key=lambda r: r["reward"])
    dic = config_with_model(config, str(out / BEST_DIR / FRAGMENT_FILE))  # the segmentation task's model
    model = paddleseg_config(dic).model
    state = paddle.load(str(out / BEST_DIR / WEIGHTS_FILE))
    own = model.state_dict()
    assert set(own) == set(state) and all(list(own[k].shape) == list(state[k].shape) for k in own)
    model.set_state_dict(state)
    task = DeepLabTask(load_oneshot_config(config)["seg"], quiet=True)
    assert task.evaluate(model) == pytest.approx(best["reward"], abs=1e-9)


def test_sample_accuracy_and_a_finetuned_subnet_given_as_subnet_settings(capsys, trained):
    config, out = trained
    code, stdout, err = run_bignas(capsys, "-c", config, "--phase", "sample_accuracy", "--quiet")
    assert code == 0, err
    summary = json.loads(stdout[stdout.index("{\n") :])
    assert summary["subnets"] == 2 and summary["metric"] == "miou" and summary["baseline"]["reward"] is not None
    assert summary["pareto"] and all(p["flops"] > 0 for p in summary["pareto"])
    saved = json.loads((out / "sample_accuracy" / "sample_accuracy.json").read_text())
    assert len(saved["all"]) == 2 and (out / "sample_accuracy" / "pareto.png").is_file()
    settings = "{backbone: {depth: [1, 2, 1, 1, 1, 1, 1], out_channel: [8, 8, 12, 16, 24, 32, 64]}}"  # the rest: max
    code, stdout, err = run_bignas(
        capsys, "-c", config, "--phase", "finetune_subnet", "-o", f"subnet_settings={settings}", "--quiet"
    )
    assert code == 0, err
    result = json.loads(stdout[stdout.index("{\n") :])
    assert result["structure"]["blocks"][0]["n"] == 2 and result["structure"]["head_channels"] == 8
    assert 0 <= result["inherited_miou"] <= 1 and 0 <= result["finetuned_miou"] <= 1 and result["finetune_iters"] == 2
