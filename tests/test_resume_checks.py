"""`-r` resumes the search the save_dir holds, or stops with one line naming what the config changed."""

import ppnas  # noqa: F401  # isort: skip
import json
import shutil
import sys

import pytest
from conftest import ROOT, write_det_config

from ppnas.cli import run_main
from ppnas.errors import ControllerError
from ppnas.history import History
from ppnas.samplers.annealing import LocalController

MAY_CHANGE = (
    "Only search_steps and training settings (max_iters, datasets, readers, optimizer, learning rate, seed, "
    "max_rejects, max_failures, device) may change on resume: set the keys above back, or start a new search "
    "with another save_dir"
)


def _train_nas(*argv):
    """tools/train_nas.py in-process, as the shell runs it; its exit code."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import train_nas
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as stop:
        run_main(train_nas.main, ["--quiet", *argv])
    return stop.value.code


@pytest.fixture(scope="module")
def one_step_search(tmp_path_factory, tiny_wider):
    """A finished 1-step detection search: its config and save_dir."""
    folder = tmp_path_factory.mktemp("searched")
    config = write_det_config(folder, tiny_wider, search_steps=1)
    assert _train_nas("-c", str(config)) == 0
    return config, folder / "out"


def _copy(one_step_search, tmp_path):
    config, save_dir = one_step_search
    copy = tmp_path / "out"
    shutil.copytree(save_dir, copy)
    return config, copy


def _refused(capsys, one_step_search, tmp_path, *overrides):
    config, save_dir = _copy(one_step_search, tmp_path)
    meta = (save_dir / "search_meta.json").read_bytes()
    code, err = _train_nas("-c", str(config), "-r", str(save_dir), "-o", *overrides), capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert (save_dir / "search_meta.json").read_bytes() == meta, "a refused resume rewrote the search's record"
    prefix = f"error: -r {save_dir} holds another search (see {save_dir}/search_meta.json): "
    assert err.startswith(prefix) and err.strip().endswith(MAY_CHANGE), err
    return err.strip()[len(prefix) : -len(MAY_CHANGE) - 2]


def test_changed_kernel_choices_and_input_size_are_each_named(capsys, tmp_path, one_step_search):
    differences = _refused(capsys, one_step_search, tmp_path, "kernel_choices=[3, 5]", "input_size=96")
    assert differences.split("; ") == [  # the demo config's kernel_choices is [3]
        "kernel_choices is [3, 5] in the config, [3] in the search",
        "range_table is [7, 9, 12, 12, 6, 6, 6, 6, 2] in the config, [6, 8, 12, 12, 6, 6, 6, 6, 1] in the search",
        "init_tokens is [2, 1, 3, 8, 2, 1, 2, 1, 1] in the config, [2, 1, 3, 8, 2, 1, 2, 1, 0] in the search",
        "input_shape is [1, 3, 96, 96] in the config, [1, 3, 64, 64] in the search",
    ]


@pytest.mark.parametrize(
    "override, difference",
    [
        ("Constraint.ctype=params", 'Constraint.ctype is "params" in the config, "flops" in the search'),
        (
            "Constraint.max_constraint=500000000",
            "Constraint.max_constraint is 500000000 in the config, 1000000000 in the search",
        ),
        ("init_temperature=5.0", "init_temperature is 5.0 in the config, 10.24 in the search"),
    ],
)
def test_changed_constraint_or_annealing_is_named(capsys, tmp_path, one_step_search, override, difference):
    assert _refused(capsys, one_step_search, tmp_path, override) == difference


def test_a_save_dir_recorded_before_the_check_is_compared_on_what_it_recorded(capsys, tmp_path, one_step_search):
    config, save_dir = one_step_search
    older = tmp_path / "older"
    older.mkdir()
    meta = json.loads((save_dir / "search_meta.json").read_text())
    del meta["search"]
    shutil.copytree(save_dir, older / "out")
    (older / "out" / "search_meta.json").write_text(json.dumps(meta))
    code = _train_nas("-c", str(config), "-r", str(older / "out"), "-o", "Constraint.min_constraint=5")
    err = capsys.readouterr().err
    assert code == 2 and "Constraint.min_constraint is 5 in the config, 0 in the search." in err


def test_a_checkpoint_of_another_space_is_refused_by_the_controller(one_step_search):
    _, save_dir = one_step_search
    other = [2] * 9  # a space whose first token takes 0 or 1: the search's tokens start with 2
    with pytest.raises(ControllerError, match=r"its tokens \[2, 1, .*\] do not fit this search space's range table"):
        LocalController(other, [0] * 9).load(str(save_dir))


def test_more_steps_and_other_training_settings_resume(capsys, tmp_path, one_step_search):
    config, save_dir = _copy(one_step_search, tmp_path)
    code = _train_nas("-c", str(config), "-r", str(save_dir), "-o", "search_steps=2", "max_iters=3")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"resuming the search in {save_dir}: 1/2 steps done" in out
    assert [r["step"] for r in History.in_dir(str(save_dir)).trained()] == [1, 2]
    meta = json.loads((save_dir / "search_meta.json").read_text())
    assert meta["options"]["search_steps"] == 2 and meta["search"]["kernel_choices"] == [3]  # still the same search


def test_the_segmentation_search_refuses_a_detection_search(capsys, tmp_path, one_step_search):
    import importlib.util

    from seg_helpers import make_tiny_config

    _, save_dir = _copy(one_step_search, tmp_path)
    spec = importlib.util.spec_from_file_location("slim_nas_train", ROOT / "slim" / "nas" / "train.py")
    seg_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seg_train)
    with pytest.raises(SystemExit) as stop:
        run_main(seg_train.main, ["--cfg", str(make_tiny_config(tmp_path)), "-r", str(save_dir), "--quiet"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    for difference in (
        'kind is "segmentation" in the config, "detection" in the search',
        'search_space is "MobileNetV2SpaceSeg" in the config, "BlazeFaceNasSpace" in the search',
        "kernel_choices is null in the config, [3] in the search",
        "output_stride is 16 in the config, null in the search",
        "init_temperature is null in the config, 10.24 in the search",
    ):
        assert difference in err, err.split("; ")
