"""Each search's report names the export command of the candidate whose weights it saved."""

import zlib  # noqa: F401  # isort: skip  # before paddle (see ppnas/__init__.py)
import json

from ppnas.constraint import Constraint
from ppnas.engine.meta import META_FILE, write_meta
from ppnas.engine.options import SearchOptions
from ppnas.history import CandidateRecord, History
from ppnas.report.build import write_report
from ppnas.report.search import REPORT_MD
from ppnas.spaces import build_space
from ppnas.tasks.detection import BlazeFaceTask
from ppnas.tasks.segmentation import DeepLabTask


def _meta_of(task_class, tmp_path, config):
    """search_meta.json as the runner writes it for a task of `task_class` (no data needed to write it)."""
    options = SearchOptions(
        space_name="Space", search_steps=3, save_dir=str(tmp_path), config_path=config, kind=task_class.kind
    )
    write_meta(options, Constraint(), task_class.__module__, [1, 3, 64, 64], {})
    return json.loads((tmp_path / META_FILE).read_text())


def test_runner_writes_each_familys_export_command(tmp_path):
    det = _meta_of(BlazeFaceTask, tmp_path, "configs/demo/blazeface_demo.yml")["export_hint"]
    assert det == (
        f"python tools/export_model.py --family detection -c configs/demo/blazeface_demo.yml "
        f"--structure {tmp_path}/blazeface_nas.yml --weights {tmp_path}/best_model.pdparams --out {tmp_path}/inference"
    )
    seg = _meta_of(DeepLabTask, tmp_path, "configs/demo/cityscape_demo.yaml")["export_hint"]
    assert seg == (
        f"python tools/export_model.py --family segmentation -c configs/demo/cityscape_demo.yaml "
        f"--structure {tmp_path}/best_model/deeplabv3p_nas.yml --weights {tmp_path}/best_model/model.pdparams "
        f"--out {tmp_path}/inference"
    )


def test_report_names_the_export_command_of_the_best_candidate(tmp_path):
    meta = _meta_of(BlazeFaceTask, tmp_path, "configs/demo/blazeface_demo.yml")
    space = build_space("BlazeFaceNasSpace")
    history = History.in_dir(str(tmp_path))
    for step, reward in ((1, 0.4), (2, 0.7), (3, 0.7)):  # the earlier of two equal rewards is the one saved
        tokens = space.init_tokens()
        tokens[0] = step
        structure = dict(space.token2arch(tokens)[0])
        record = CandidateRecord(tokens, "trained", structure=structure, step=step, reward=reward, flops=1e6)
        history.append(record)
    write_report(str(tmp_path))
    text = (tmp_path / REPORT_MD).read_text()
    deploy = text.split("## Deploy", 1)[1].split("## ", 1)[0]
    assert "best candidate (step 2, reward 0.7000)" in deploy
    assert f"```\n{meta['export_hint']}\n```" in deploy
