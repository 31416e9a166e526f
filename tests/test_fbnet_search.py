"""The FBNet chain on a tiny set: search, resume, derive weight reuse, retrain, export; tools/fbnet.py on bad input."""

import ppnas  # noqa: F401  # isort: skip
import json
import os
import pathlib

import numpy as np
import paddle
import pytest
import yaml
from conftest import run_tool
from fbnet_helpers import TINY_SEARCHED, tiny_config

from ppnas.config import load_config, merge, parse_overrides
from ppnas.errors import ConfigError
from ppnas.fbnet.derive import STRUCTURE_FILE, export_subnet, load_subnet
from ppnas.fbnet.lut import ensure_lut
from ppnas.fbnet.search import CHECKPOINT, PROBABILITIES_PNG, SUBNET_WEIGHTS, run_search
from ppnas.fbnet.settings import fbnet_config
from ppnas.fbnet.train import retrain
from ppnas.history import History
from ppnas.tasks.landmarks import load_landmark_data


def _setup(config: pathlib.Path, *overrides: str):  # noqa: ANN202
    cfg = fbnet_config(merge(load_config(str(config)), parse_overrides(overrides)))
    lut, _ = ensure_lut(cfg.lut_path, cfg.spec, cfg.table_file, cfg.missing_keys, rebuild=False)
    return cfg, lut, load_landmark_data(cfg.raw, cfg.seed)


def _epochs(save_dir: str):  # noqa: ANN202
    return [r for r in History.in_dir(save_dir).read() if r["kind"] == "epoch"]


@pytest.fixture(scope="module")
def searched(tiny_landmarks: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One uninterrupted 2-epoch search and one stopped after epoch 1, then resumed to 2 (searched stem, head, skip)."""
    folder = tmp_path_factory.mktemp("fbnet_search")
    config = tiny_config(folder, tiny_landmarks, Supernet=TINY_SEARCHED)
    whole = _setup(config, f"save_dir={folder}/whole")
    outcome = run_search(*whole, quiet=True, vdl_dir=str(folder / "vdl"))
    first = _setup(config, f"save_dir={folder}/resumed", "Search.epochs=1")
    run_search(*first, quiet=True)
    lines = open(History.in_dir(first[0].save_dir).path).readlines()
    with open(History.in_dir(first[0].save_dir).path, "w") as f:  # killed after the checkpoint, before the line
        f.writelines(line for line in lines if '"kind": "epoch"' not in line)
    resumed_outcome = run_search(*_setup(config, f"save_dir={folder}/resumed"), resume=True, quiet=True)
    return {"config": config, "whole": whole, "outcome": outcome, "resumed": resumed_outcome, "folder": folder}


def test_search_records_every_epoch_with_probabilities_and_writes_the_png(searched: dict) -> None:
    cfg, lut, _ = searched["whole"]
    records = _epochs(cfg.save_dir)
    assert [(r["epoch"], r["phase"]) for r in records] == [(1, "warmup"), (2, "search")]
    assert records[0]["arch_loss"] is None and records[1]["arch_loss"] is not None
    assert records[1]["temperature"] == pytest.approx(5.0 * cfg.search["anneal_rate"])
    assert records[0]["probabilities"][0] == pytest.approx([1 / 4] * 4)  # warm-up leaves alpha alone
    assert records[1]["probabilities"][0] != pytest.approx([1 / 4] * 4)
    assert all(0 < r["nme"] < 10 and r["nme_norm"] == "eyes" for r in records)
    assert all(0 < r["expected_searched"] < r["expected_latency"] and r["latency_unit"] == "MFLOPs" for r in records)
    assert [r["lr"] for r in records] == pytest.approx([1e-3, 0.5e-3])  # cosine over 2 epochs
    assert records[1]["predicted"] == lut.total(
        [s.candidates.index(n) for s, n in zip(cfg.spec.layers, records[1]["choices"])]
    )
    assert os.path.getsize(os.path.join(cfg.save_dir, PROBABILITIES_PNG)) > 10_000
    logs = [f for _, _, files in os.walk(searched["folder"] / "vdl") for f in files if f.startswith("vdlrecords")]
    assert len(logs) == 1
    structure = yaml.safe_load(open(searched["outcome"].structure_path))
    assert structure["choices"] == searched["outcome"].choices == records[1]["choices"]


def test_resumed_search_equals_the_uninterrupted_one(searched: dict) -> None:
    resumed_dir = str(searched["folder"] / "resumed")
    whole, resumed = _epochs(searched["whole"][0].save_dir), _epochs(resumed_dir)
    assert [r["epoch"] for r in resumed] == [1, 2]  # the lost line is back, once
    for a, b in zip(whole, resumed):
        assert a["nme"] == pytest.approx(b["nme"], rel=1e-5)
        np.testing.assert_allclose(np.concatenate(a["probabilities"]), np.concatenate(b["probabilities"]), rtol=1e-5)
    assert searched["resumed"].choices == searched["outcome"].choices
    with pytest.raises(ConfigError, match=f"already holds a search: resume it with -r {resumed_dir}"):
        run_search(*_setup(searched["config"], f"save_dir={resumed_dir}"), quiet=True)


def test_derived_subnet_reuses_the_supernet_weights_then_retrains_and_exports(searched: dict) -> None:
    cfg, _, data = searched["whole"]
    supernet = paddle.load(os.path.join(cfg.save_dir, CHECKPOINT))["model"]
    structure = os.path.join(cfg.save_dir, STRUCTURE_FILE)
    subnet = load_subnet(structure, os.path.join(cfg.save_dir, SUBNET_WEIGHTS))
    for prefix, index in subnet.backbone.slot_prefixes().items():
        chosen = cfg.spec.layers[index].candidates.index(subnet.choices[index])
        for key, value in subnet.state_dict().items():
            if key.startswith(prefix) and not key.startswith(prefix + "body.0."):  # the head's first conv is cut
                source = f"{prefix}ops.{chosen}.{key[len(prefix) :]}"
                np.testing.assert_array_equal(value.numpy(), supernet[source].numpy())
    np.testing.assert_array_equal(subnet.state_dict()["aux.fc.0.weight"].numpy(), supernet["aux.fc.0.weight"].numpy())
    before = subnet.state_dict()["backbone.stem.conv.0.weight"].numpy().copy()
    record = retrain(subnet, data, cfg.retrain, cfg.save_dir, resume=False, quiet=True)
    assert record["epoch"] == 1 and 0 < record["nme"] < 10
    assert not np.array_equal(before, subnet.state_dict()["backbone.stem.conv.0.weight"].numpy())
    assert [r["kind"] for r in History.in_dir(cfg.save_dir).read()].count("retrain") == 1
    out = os.path.join(cfg.save_dir, "inference")
    image = data.test[0][0][None]
    weights = os.path.join(cfg.save_dir, "final.pdparams")
    paddle.save(subnet.state_dict(), weights)
    assert export_subnet(structure, weights, out, image) <= 1e-5
    assert os.path.isfile(os.path.join(out, "model.pdmodel")) and os.path.isfile(os.path.join(out, "deploy.yaml"))
    rebuilt = load_subnet(structure, weights)
    np.testing.assert_allclose(rebuilt(paddle.to_tensor(image))[0].numpy(), subnet(paddle.to_tensor(image))[0].numpy())


def _cli(capsys: pytest.CaptureFixture, *argv: str):  # noqa: ANN202
    return run_tool(capsys, "fbnet", *argv)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ['Supernet.stages=[{"name": "s0", "layers": 1, "channels": 8, "candidates": []}]'],
            "stage 's0' has no candidates",
        ),
        (
            ['Supernet.stages=[{"name": "s0", "layers": 1, "channels": 8, "candidates": [mb_k9_res]}]'],
            "unknown candidate block 'mb_k9_res' in stage 's0'; valid: gh_k3, gh_k5, mb_k3_e2_res,",
        ),
        (["Search.max_latency=1000"], "no architecture meets Search.max_latency (flops in [-inf, 1000] FLOPs): the"),
        (["Data.dataset_dir=/no/such/set"], "dataset folder not found: /no/such/set (make the demo set with: python"),
        (["Search.mode=pow"], "Search.mode must be one of mul, add, target, got 'pow'"),
        (["Search.mode=target"], "Search.mode target needs Search.target_latency (the whole model's, in the LUT"),
        (
            ["Search.mode=target", "Search.target_latency=1000"],
            "no architecture meets Search.target_latency (flops in [-inf, 1000] FLOPs): the",
        ),
        (["Data.nme_norm=pupils"], "Data.nme_norm must be one of eyes, nni, got 'pupils'"),
        (["Retrain.lr_schedule=step"], "Retrain.lr_schedule must be one of cosine, constant, got 'step'"),
        (["baseline=mobilenetv2"], "baseline must be one of mobilenetv3_pfld or null, got 'mobilenetv2'"),
        (["Serch.epochs=3"], "unknown key 'Serch' in the FBNet config (did you mean 'Search'?)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture, tiny_landmarks: pathlib.Path, tmp_path: pathlib.Path, overrides: list, expected: str
) -> None:
    config = tiny_config(tmp_path, tiny_landmarks)
    code, _, err = _cli(capsys, "-c", str(config), "--phase", "search", "--quiet", "-o", *overrides)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err


def test_lut_of_another_config_is_refused(capsys: pytest.CaptureFixture, tiny_landmarks, tmp_path) -> None:
    config = tiny_config(tmp_path, tiny_landmarks)
    code, out, _ = _cli(capsys, "-c", str(config), "--phase", "build_lut")
    assert code == 0 and json.loads(out)["action"] == "built"
    code, out, _ = _cli(capsys, "-c", str(config), "--phase", "build_lut")
    assert code == 0 and json.loads(out)["action"] == "reused"
    code, _, err = _cli(capsys, "-c", str(config), "--phase", "search", "-o", "Supernet.head_channels=24")
    assert code == 2 and "lut.json was built for another config (supernet differ): run --phase build_lut" in err
    code, out, _ = _cli(capsys, "-c", str(config), "--phase", "build_lut", "-o", "Supernet.head_channels=24")
    assert code == 0 and json.loads(out)["action"] == "rebuilt"


def test_a_bad_list_line_is_named_with_file_and_line(capsys: pytest.CaptureFixture, tiny_landmarks, tmp_path) -> None:
    data = tmp_path / "data"
    (data / "test_data").mkdir(parents=True)
    (data / "train_data").mkdir()
    lines = (tiny_landmarks / "train_data" / "list.txt").read_text().splitlines()
    lines[3] = " ".join(lines[3].split()[:-1])  # roll missing
    (data / "train_data" / "list.txt").write_text(
        "\n".join(lines).replace("imgs/", f"{tiny_landmarks}/train_data/imgs/")
    )
    (data / "test_data" / "list.txt").write_text((tiny_landmarks / "test_data" / "list.txt").read_text())
    code, _, err = _cli(capsys, "-c", str(tiny_config(tmp_path, data)), "--phase", "search", "--quiet")
    expected = f"{data}/train_data/list.txt:4: expected 216 values (image path, 212 coordinates, pitch yaw roll)"
    assert code == 2 and err.strip().splitlines() == [f"error: {expected}, got 215"]


def test_baseline_phase_trains_mobilenetv3_pfld_from_scratch_and_times_it(
    capsys: pytest.CaptureFixture, tiny_landmarks: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    config = str(tiny_config(tmp_path, tiny_landmarks, baseline="mobilenetv3_pfld"))
    code, out, err = _cli(capsys, "-c", config, "--phase", "baseline", "--quiet")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["baseline"] == "mobilenetv3_pfld" and summary["choices"] == ["mobilenetv3_pfld"]
    assert summary["epoch"] == 1 and 0 < summary["nme"] < 10 and summary["nme_norm"] == "eyes"
    assert summary["latency_ms_measured"] > 0 and os.path.isfile(
        os.path.join(summary["inference_model"], "model.pdmodel")
    )
    save_dir = tmp_path / "out"
    assert [r["kind"] for r in History.in_dir(str(save_dir / "baseline")).read()] == ["retrain"]
    code, _, err = _cli(capsys, "-c", config, "--phase", "baseline", "--quiet")
    assert code == 2 and f"already holds a baseline training: resume it with -r {save_dir}" in err
    code, out, _ = _cli(capsys, "-c", config, "--phase", "baseline", "--quiet", "-r", str(save_dir))
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["nme"] == summary["nme"]  # nothing retrained
