"""A user's supernet from the dynamic blocks plugs in through the registry and goes through train_supnet -> search
-> export unchanged; its exported subnet rebuilds (load_subnet) and scores the recorded mIoU."""

import ppnas  # noqa: F401  # isort: skip
import json

import pytest
from oneshot_helpers import run_bignas
from seg_helpers import make_tiny_config

from ppnas.errors import ConfigError
from ppnas.history import History
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.subnet import load_subnet
from ppnas.oneshot.subnet_file import SUBNET_FILE, WEIGHTS_FILE
from ppnas.tasks.segmentation import DeepLabTask


def test_a_user_supernet_trains_searches_and_exports(capsys, tmp_path):
    slim = {
        "NAS_SPACE_NAME": "MobileNetV2SpaceSeg",
        "NAS_SEED": 0,
        "BIGNAS_SUPERNET": "TinySegSupernet",
        "BIGNAS_CUSTOM_IMPORTS": ["oneshot_user_supernet"],
        "BIGNAS_MAX_ITERS": 2,
        "BIGNAS_CALIB_BATCHES": 1,
        "BIGNAS_SUBNET_COUNT": 3,
        "BIGNAS_SAVE_DIR": str(tmp_path / "out"),
    }
    config = str(make_tiny_config(tmp_path, SLIM=slim))
    for phase in ("train_supnet", "search"):
        code, out, err = run_bignas(capsys, "-c", config, "--phase", phase, "--quiet")
        assert code == 0, err
    records = History.in_dir(str(tmp_path / "out")).trained()
    assert len(records) == 3 and all(r["structure"]["supernet"] == "TinySegSupernet" for r in records)
    assert len({tuple(r["tokens"]) for r in records}) == 3 and all(r["flops"] > 0 for r in records)
    best = max(records, key=lambda r: r["reward"])
    exported = tmp_path / "out"
    model = load_subnet(config, str(exported / SUBNET_FILE), str(exported / WEIGHTS_FILE))
    assert DeepLabTask(load_oneshot_config(config)["seg"], quiet=True).evaluate(model) == pytest.approx(best["reward"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"--phase finetune_subnet -o subnet_settings={tmp_path / 'out' / 'candidates'}" in report
    code, out, err = run_bignas(
        capsys, "-c", config, "--phase", "evaluate_subnet", "-o", f"subnet_settings={exported / SUBNET_FILE}"
    )
    assert code == 0, err
    assert json.loads(out)["inherited_miou"] == pytest.approx(best["reward"])
    with pytest.raises(ConfigError, match="custom_imports: cannot import 'no_such_module'"):
        load_oneshot_config(config, ["SLIM.BIGNAS_CUSTOM_IMPORTS=['no_such_module']"])
