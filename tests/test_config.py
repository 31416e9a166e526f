"""YAML loading: _BASE_ inheritance, PaddleDetection tags, overrides, and the errors users see."""

import ppnas  # noqa: F401  # isort: skip
import pytest
import yaml
from conftest import ROOT

from ppnas.config import CONFIG_DIR_KEY, check_keys, load_config, merge, parse_overrides, resolve_path
from ppnas.errors import ConfigError


def test_base_inheritance_merges_mappings_and_later_files_win(tmp_path):
    (tmp_path / "a.yml").write_text("x: 1\nblock: {p: 1, q: 2}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("_BASE_: ../a.yml\nblock: {q: 3}\ny: 2\n")
    (tmp_path / "c.yml").write_text("_BASE_: [sub/b.yml]\nx: 9\n")
    cfg = load_config(str(tmp_path / "c.yml"))
    assert cfg["x"] == 9 and cfg["y"] == 2
    assert cfg["block"] == {"p": 1, "q": 3}
    assert cfg[CONFIG_DIR_KEY] == str(tmp_path)


def test_base_cycle_is_reported(tmp_path):
    (tmp_path / "a.yml").write_text("_BASE_: b.yml\n")
    (tmp_path / "b.yml").write_text("_BASE_: a.yml\n")
    with pytest.raises(ConfigError, match="_BASE_ cycle"):
        load_config(str(tmp_path / "a.yml"))


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=rf"YAML syntax error at {path}:\d+"):
        load_config(str(path))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.yml"))


def test_ppdet_tags_load_as_name_key(tmp_path):
    path = tmp_path / "t.yml"
    path.write_text("TrainDataset:\n  !WIDERFaceDataSet\n    dataset_dir: d\n    anno_path: a.txt\n")
    assert load_config(str(path))["TrainDataset"] == {
        "name": "WIDERFaceDataSet",
        "dataset_dir": "d",
        "anno_path": "a.txt",
    }


def test_overrides_parse_types_and_nest():
    opts = parse_overrides(["search_steps=10", "Constraint.max_constraint=1.5e7", "server_ip=", "kernel_choices=[3]"])
    assert opts == {"search_steps": 10, "Constraint": {"max_constraint": 1.5e7}, "server_ip": "", "kernel_choices": [3]}
    assert merge({"Constraint": {"ctype": "flops"}}, opts)["Constraint"] == {"ctype": "flops", "max_constraint": 1.5e7}


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="override 'search_steps' has no '='"):
        parse_overrides(["search_steps"])


def test_unknown_key_names_the_closest_and_lists_all():
    with pytest.raises(ConfigError) as err:
        check_keys({"serch_steps": 3}, ["search_steps", "save_dir"], where="detection config")
    message = str(err.value)
    assert "unknown key 'serch_steps' in detection config (did you mean 'search_steps'?)" in message
    assert "valid keys: save_dir, search_steps" in message


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    cfg = {CONFIG_DIR_KEY: str(tmp_path)}
    assert resolve_path(cfg, "t.txt") == str(tmp_path / "t.txt")
    assert resolve_path(cfg, "/abs/t.txt") == "/abs/t.txt"
    assert resolve_path(cfg, None) is None


@pytest.mark.parametrize(
    "tool, required",
    [
        ("train_nas", ["-c", "x.yml"]),
        ("latency", ["-c", "x.yml", "--tokens", "1"]),
        ("build_latency_table", ["-c", "x.yml", "--out", "t.txt"]),
        ("nas_server", ["-c", "x.yml"]),
        ("fbnet", ["-c", "x.yml", "--phase", "search"]),
        ("bignas", ["-c", "x.yml", "--phase", "search"]),
    ],
)
def test_repeated_o_merges_in_every_tool(tool, required):
    import importlib.util

    from conftest import tool_entry

    spec = importlib.util.spec_from_file_location(f"tool_{tool}", tool_entry(tool))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.parse_args([*required, "-o", "a=1", "b.c=2", "-o", "d=3"])
    assert args.opt == ["a=1", "b.c=2", "d=3"]
    assert parse_overrides(args.opt) == {"a": 1, "b": {"c": 2}, "d": 3}


def test_a_path_typed_with_o_is_relative_to_the_working_directory_one_in_the_yaml_to_the_yaml(tmp_path, monkeypatch):
    from fbnet_helpers import tiny_config

    from ppnas.fbnet.settings import fbnet_config
    from ppnas.oneshot.settings import load_oneshot_config
    from ppnas.tasks.segmentation_config import split_config

    folder = tmp_path / "configs"
    folder.mkdir()
    shell = tmp_path / "shell"
    shell.mkdir()
    monkeypatch.chdir(shell)
    fbnet = tiny_config(folder, tmp_path / "data", LUT={"table_file": "tables/in_yaml.txt"})
    assert fbnet_config(load_config(str(fbnet))).table_file == str(folder / "tables" / "in_yaml.txt")
    typed = merge(load_config(str(fbnet)), parse_overrides(["LUT.table_file=tables/typed.txt"]))
    assert fbnet_config(typed).table_file == str(shell / "tables" / "typed.txt")
    (folder / "bignas.yml").write_text(f"_BASE_: {ROOT / 'configs/demo/blazeface_bignas_demo.yml'}\nsupernet_dir: sn\n")
    assert load_oneshot_config(str(folder / "bignas.yml"))["supernet_dir"] == str(folder / "sn")
    assert load_oneshot_config(str(folder / "bignas.yml"), ["supernet_dir=sn"])["supernet_dir"] == str(shell / "sn")
    seg_cfg = {
        CONFIG_DIR_KEY: str(folder),
        "train_dataset": {"dataset_root": "data/a"},
        "val_dataset": {"dataset_root": "data/a"},
        "epochs": 1,
        "SLIM": {"NAS_SPACE_NAME": "MobileNetV2SpaceSeg"},
    }
    seg = split_config(seg_cfg, ["train_dataset.dataset_root", "b"]).paddleseg  # PaddleSeg's KEY VALUE pairs
    assert (seg["train_dataset"]["dataset_root"], seg["val_dataset"]["dataset_root"]) == (
        str(shell / "b"),
        str(folder / "data" / "a"),
    )
    assert yaml.safe_dump(typed["LUT"]) == "table_file: tables/typed.txt\n"  # a typed value dumps as plain text
