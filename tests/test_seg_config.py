"""The segmentation config: KEY VALUE overrides (SEG.md semantics), SLIM keys, paths, the constraint."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os

import pytest
from seg_helpers import ISSUE_PAIRS, make_tiny_config

from ppnas.errors import ConfigError
from ppnas.tasks.segmentation_config import (
    SLIM_DEFAULTS,
    apply_overrides,
    load_seg_config,
    parse_override_pairs,
    parse_value,
)


@pytest.mark.parametrize(
    "text, value",
    [
        ("23333", 23333),
        ("True", True),
        ("-1", -1),
        ("0.5", 0.5),
        ("", ""),
        ("127.0.0.1", "127.0.0.1"),
        ("MobileNetV2SpaceSeg", "MobileNetV2SpaceSeg"),
        ("[1, 2]", [1, 2]),
        ("None", None),
        ("'x'", "x"),
    ],
)
def test_values_are_python_literals_or_strings(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_odd_count_is_rejected_naming_the_key():
    with pytest.raises(ConfigError, match="format error.*3 items.*'SLIM.NAS_SEED' has no value"):
        parse_override_pairs(["SLIM.NAS_PORT", "1", "SLIM.NAS_SEED"])
    with pytest.raises(ConfigError, match="'--use_gpu' is among the trailing"):
        parse_override_pairs(["SLIM.NAS_PORT", "1", "--use_gpu", "x"])


def test_unknown_key_is_rejected_naming_it():
    cfg = {"SLIM": dict(SLIM_DEFAULTS), "model": {"num_classes": 4}}
    with pytest.raises(ConfigError, match=r"Non-existent config key: SLIM.NAS_PROT \(did you mean SLIM.NAS_PORT\?\)"):
        apply_overrides(cfg, parse_override_pairs(["SLIM.NAS_PROT", "1"]))
    with pytest.raises(ConfigError, match="Non-existent config key: model.aspp"):
        apply_overrides(cfg, [("model.aspp", 1)])
    apply_overrides(cfg, parse_override_pairs(["model.num_classes", "7", "iters", "5"]))
    assert cfg["model"]["num_classes"] == 7 and cfg["iters"] == 5


def test_issue_command_overrides(tmp_path):
    path = make_tiny_config(tmp_path)
    pairs = [*ISSUE_PAIRS, "batch_size", "2"]
    seg = load_seg_config(str(path), pairs)
    assert seg.slim["NAS_PORT"] == 23333 and seg.slim["NAS_ADDRESS"] == ""
    assert seg.slim["NAS_SEARCH_STEPS"] == 2 and seg.slim["NAS_START_EVAL_EPOCH"] == -1
    assert seg.slim["NAS_IS_SERVER"] is True and seg.slim["NAS_SEED"] == 0  # from the YAML
    assert seg.slim["NAS_CONSTRAINT_TYPE"] == "flops"  # a default
    assert seg.paddleseg["batch_size"] == 2 and "SLIM" not in seg.paddleseg
    # dataset paths resolve against the config's folder, whatever the working directory
    assert seg.paddleseg["train_dataset"]["dataset_root"] == str(tmp_path / "data")
    assert seg.paddleseg["val_dataset"]["val_path"] == str(tmp_path / "data" / "val_list.txt")


@pytest.mark.parametrize(
    "pairs, message",
    [
        (["SLIM.NAS_PORT", "abc"], "SLIM.NAS_PORT must be int, got 'abc'"),
        (["SLIM.NAS_IS_SERVER", "1"], "SLIM.NAS_IS_SERVER must be bool, got 1"),
        (["SLIM.NAS_SEARCH_STEPS", "0"], "NAS_SEARCH_STEPS must be at least 1"),
        (["SLIM.NAS_SPACE_NAME", ""], "SLIM.NAS_SPACE_NAME is empty"),
        (["epochs", "0"], "epochs must be a positive integer"),
    ],
)
def test_bad_values_are_rejected(tmp_path, pairs, message):
    with pytest.raises(ConfigError, match=message):
        load_seg_config(str(make_tiny_config(tmp_path)), pairs)


def test_unknown_slim_key_in_yaml(tmp_path):
    path = make_tiny_config(tmp_path, SLIM={"NAS_SPACE_NAME": "MobileNetV2SpaceSeg", "NAS_STEPS": 3})
    with pytest.raises(ConfigError, match="Non-existent config key: SLIM.NAS_STEPS"):
        load_seg_config(str(path))


def test_constraint_keys(tmp_path):
    path = make_tiny_config(tmp_path)
    seg = load_seg_config(
        str(path),
        [
            "SLIM.NAS_CONSTRAINT_TYPE",
            "latency",
            "SLIM.NAS_CONSTRAINT_MAX",
            "1.5e9",
            "SLIM.NAS_CONSTRAINT_TABLE",
            "tables/seg.txt",
            "SLIM.NAS_CONSTRAINT_MISSING",
            "nearest",
        ],
    )
    constraint = seg.constraint()
    assert constraint.ctype == "latency" and constraint.max_constraint == 1.5e9 and constraint.min_constraint is None
    assert constraint.table_file == os.path.join(os.getcwd(), "tables", "seg.txt")  # typed: from the shell
    assert constraint.missing_keys == "nearest"
    bad = load_seg_config(str(path), ["SLIM.NAS_CONSTRAINT_MIN", "10", "SLIM.NAS_CONSTRAINT_MAX", "5"])
    with pytest.raises(ConfigError, match="SLIM.NAS_CONSTRAINT_.*window is empty"):
        bad.constraint()
