"""The report: Pareto selection on hand-made histories, and the files tools/report.py writes."""

import zlib  # noqa: F401  # isort: skip  # before paddle (see ppnas/__init__.py)
import importlib.util
import json
import logging
import os
from dataclasses import asdict

import cv2
import pytest

from ppnas.cli import EXIT_USER_ERROR, run_main
from ppnas.engine.meta import META_FILE
from ppnas.errors import ConfigError, PpnasError
from ppnas.history import CandidateRecord, History
from ppnas.report.build import write_report
from ppnas.report.figures.style import FIGURE_DPI, FIGURE_INCHES
from ppnas.report.markdown import CURVE_PNG, PARETO_PNG
from ppnas.report.search import REPORT_MD
from ppnas.report.selection import Window, best_so_far, choose_axis, pareto_front, rewarded, top_candidates

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SHAPE = (round(FIGURE_INCHES[1] * FIGURE_DPI), round(FIGURE_INCHES[0] * FIGURE_DPI), 3)  # rows, cols, BGR


def trained(step, reward, latency_ms=None, flops=1e8, client="local", t=None, tokens=None):
    return asdict(
        CandidateRecord(
            tokens=tokens or [step, 0],
            status="trained",
            structure={"width": step},
            step=step,
            reward=reward,
            flops=flops,
            params=1000 * step,
            latency_ms=latency_ms,
            client=client,
            time=1000.0 + step if t is None else t,
        )
    )


def unrewarded(status, latency_ms, flops=1e8, t=0.0):
    reason = "latency out of the window" if status == "rejected" else "RuntimeError: boom"
    record = CandidateRecord(
        tokens=[9, 9], status=status, flops=flops, params=5, latency_ms=latency_ms, reason=reason, time=t
    )
    return asdict(record)


def steps(records):
    return [r["step"] for r in records]


# --- Pareto front, window, ranking: pure functions -------------------------------------------------
def test_front_excludes_dominated_points():
    records = [
        trained(1, 0.50, latency_ms=10.0),
        trained(2, 0.70, latency_ms=20.0),
        trained(3, 0.40, latency_ms=15.0),  # dominated by 1: costlier and worse
        trained(4, 0.60, latency_ms=30.0),  # dominated by 2
        trained(5, 0.80, latency_ms=35.0),
        unrewarded("rejected", 1.0),  # cheapest of all, but has no reward
        unrewarded("failed", 2.0),
    ]
    assert steps(pareto_front(records, "latency_ms")) == [1, 2, 5]


def test_front_ties():
    records = [
        trained(1, 0.70, latency_ms=20.0),
        trained(2, 0.65, latency_ms=20.0),  # same cost, lower reward: dominated
        trained(3, 0.70, latency_ms=25.0),  # same reward, higher cost: dominated
        trained(4, 0.70, latency_ms=20.0),  # equal on both to step 1: kept, after it (history order)
        trained(5, 0.50, latency_ms=10.0),
    ]
    assert steps(pareto_front(records, "latency_ms")) == [5, 1, 4]
    # the same when the tie partner comes first in the file
    assert steps(pareto_front(list(reversed(records)), "latency_ms")) == [5, 1, 4]


def test_front_leaves_out_candidates_outside_the_window():
    window = Window.from_meta({"ctype": "latency", "min_constraint": 12000, "max_constraint": 40000, "unit": "us"})
    assert (window.key, window.low, window.high) == ("latency_ms", 12.0, 40.0)
    records = [
        trained(1, 0.50, latency_ms=10.0),  # too fast: below the window
        trained(2, 0.60, latency_ms=12.0),  # on the lower bound: inside
        trained(3, 0.95, latency_ms=40.5),  # best of all, but above the window
        trained(4, 0.70, latency_ms=40.0),  # on the upper bound: inside
        trained(5, 0.99, latency_ms=None),  # not measured: cannot be inside
    ]
    assert steps(pareto_front(records, "latency_ms", window)) == [2, 4]
    assert steps(pareto_front(records, "latency_ms")) == [1, 2, 4, 3]
    assert steps(top_candidates(records, 5, "latency_ms", window)) == [4, 2]


def test_window_units_and_open_bounds():
    flops = Window.from_meta({"ctype": "flops", "min_constraint": None, "max_constraint": 3e8, "unit": "FLOPs"})
    assert (flops.key, flops.low, flops.high, flops.text) == ("flops", None, 3e8, "flops <= 3e+08 FLOPs")
    assert flops.admits(trained(1, 0.5, flops=3e8)) and not flops.admits(trained(1, 0.5, flops=3.01e8))
    seconds = Window.from_meta({"ctype": "latency", "min_constraint": 0.01, "max_constraint": None, "unit": "s"})
    assert (seconds.low, seconds.high) == (10.0, None)
    assert seconds.describe() == "latency >= 0.01 s = >= 10 ms"
    unbounded = Window.from_meta({"ctype": "flops", "min_constraint": None, "max_constraint": None})
    assert unbounded.describe() == "flops not bounded" and not unbounded.bounded
    assert Window.from_meta(None) is None
    with pytest.raises(ConfigError, match="unknown latency unit 'fortnights'"):
        Window.from_meta({"ctype": "latency", "min_constraint": 1, "max_constraint": 2, "unit": "fortnights"})


def test_ranking_and_order():
    records = [
        trained(1, 0.60, latency_ms=30.0, t=5.0),
        trained(2, 0.75, latency_ms=25.0, t=3.0),
        trained(3, 0.75, latency_ms=20.0, t=4.0),  # ties step 2 on reward, cheaper: ranks first
        trained(4, 0.10, latency_ms=5.0, t=1.0),
    ]
    assert steps(top_candidates(records, 3, "latency_ms")) == [3, 2, 1]
    assert steps(rewarded(records)) == [4, 2, 3, 1]  # clients interleave: order by finishing time
    assert best_so_far([0.1, 0.75, 0.75, 0.6]) == [0.1, 0.75, 0.75, 0.75]


def test_axis_is_the_constrained_quantity_else_latency_else_flops():
    with_latency = [trained(1, 0.5, latency_ms=3.0, flops=2.5e9)]
    without = [trained(1, 0.5, flops=2.5e9)]
    assert choose_axis(with_latency, None).key == "latency_ms"
    flops_axis = choose_axis(without, None)
    assert (flops_axis.key, flops_axis.divisor) == ("flops", 1e9) and "FLOPs (G" in flops_axis.label
    params_window = Window.from_meta({"ctype": "params", "min_constraint": 1, "max_constraint": 2e6})
    assert choose_axis(with_latency, params_window).key == "params"


# --- the files ------------------------------------------------------------------------------------
FRAGMENT_MODULE = """
import json


def write(structure, path):
    with open(path, "w") as f:
        json.dump({"Backbone": structure}, f)
"""


def _history(save_dir, records, tail=""):
    history = History.in_dir(str(save_dir))
    for record in records:
        history.append(CandidateRecord(**record))
    if tail:
        with open(history.path, "a", encoding="utf-8") as f:
            f.write(tail)
    return history


def _search(tmp_path):
    """12 trained candidates (latency 10..32 ms), 3 rejected, 1 failed; window [14000, 28000] us."""
    rewards = [0.31, 0.52, 0.48, 0.66, 0.61, 0.70, 0.58, 0.74, 0.69, 0.80, 0.77, 0.83]
    records = [trained(i + 1, r, latency_ms=10.0 + 2 * i, flops=1e8 * (i + 1)) for i, r in enumerate(rewards)]
    records += [unrewarded("rejected", 35.0 + i, t=1000.5 + i) for i in range(3)]
    records.append(unrewarded("failed", 21.0, t=1003.5))
    save_dir = tmp_path / "search"
    _history(save_dir, records)
    meta = {
        "kind": "detection",
        "space": "BlazeFaceNasSpace",
        "config": "configs/demo/blazeface_demo.yml",
        "ctype": "latency",
        "min_constraint": 14000,
        "max_constraint": 28000,
        "unit": "us",
        "fragment_writer": "ppnas_test_fragments:write",
        "full_train_hint": "python tools/train.py -c face.yml -o _BASE_+={fragment}",
    }
    (save_dir / META_FILE).write_text(json.dumps(meta))
    return save_dir, records


def _markdown_rows(text, heading):
    """The body rows of the first table after `heading`, as lists of cells."""
    lines = text.split(heading, 1)[1].strip().splitlines()
    table = []
    for line in lines:
        if not line.startswith("|"):
            if table:
                break
            continue
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table[2:]  # after the header and the |---| line


def test_report_files_match_the_history(tmp_path, monkeypatch, capsys):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "ppnas_test_fragments.py").write_text(FRAGMENT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    save_dir, records = _search(tmp_path)
    out = tmp_path / "out"
    result = write_report(str(save_dir), str(out), top=3)

    for name in (PARETO_PNG, CURVE_PNG):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape == PNG_SHAPE
        assert image.std() > 10  # something is drawn, not a blank canvas

    # inside [14, 28] ms: steps 3..10 (latency 14..28); best rewards there: 10 (0.80), 8 (0.74), 6 (0.70)
    assert steps(result["top"]) == [10, 8, 6]
    assert steps(result["front"]) == [3, 4, 6, 8, 10]
    assert result["counts"] == {"trained": 12, "rejected": 3, "failed": 1}
    text = (out / REPORT_MD).read_text()
    rows = _markdown_rows(text, "## Top 3 candidates under the constraint")
    assert rows == [
        ["1", "10", "0.8000", "28.00", "1000.0", "10.0", "10,0"],
        ["2", "8", "0.7400", "24.00", "800.0", "8.0", "8,0"],
        ["3", "6", "0.7000", "20.00", "600.0", "6.0", "6,0"],
    ]
    assert "- constraint: latency in [14000, 28000] us = [14, 28] ms" in text
    assert "- candidates: 12 trained, 3 rejected by the constraint, 1 failed" in text
    assert f"![Pareto front]({PARETO_PNG})" in text and "RuntimeError: boom" in text

    fragments = result["fragments"]
    assert [os.path.basename(p) for p in fragments] == [
        f"rank{n}_local_step{s}.yml" for n, s in [(1, 10), (2, 8), (3, 6)]
    ]
    assert json.loads(open(fragments[0]).read()) == {"Backbone": {"width": 10}}
    assert f"Train it fully:\n\n```bash\npython tools/train.py -c face.yml -o _BASE_+={fragments[0]}\n```" in text

    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "top 3 candidates under the constraint (latency in [14000, 28000] us = [14, 28] ms):"
    assert printed[1].split() == ["rank", "step", "reward", "latency_ms", "MFLOPs", "params_k", "tokens"]
    assert [line.split() for line in printed[2:5]] == rows

    # a second report with a smaller --top leaves no stale fragment behind
    write_report(str(save_dir), str(out), top=1)
    assert os.listdir(out / "candidates") == ["rank1_local_step10.yml"]


def test_report_without_metadata(tmp_path):
    records = [trained(1, 0.5, flops=2e8), trained(2, 0.6, flops=1e8, client="b"), trained(3, 0.4, flops=3e8)]
    _history(tmp_path, records)
    result = write_report(str(tmp_path))  # out_dir defaults to save_dir
    assert steps(result["top"]) == [2, 1, 3] and steps(result["front"]) == [2]
    assert result["fragments"] == [] and not (tmp_path / "candidates").exists()
    assert cv2.imread(str(tmp_path / PARETO_PNG)).shape == PNG_SHAPE
    text = (tmp_path / REPORT_MD).read_text()
    assert "constraint: unknown (no search_meta.json" in text and "Train it fully" not in text
    assert "| rank | step | client | reward |" in text  # two clients: say which one found what


def test_half_written_line_is_skipped_with_a_warning(tmp_path, caplog):
    history = _history(tmp_path, [trained(1, 0.5, latency_ms=3.0), trained(2, 0.6, latency_ms=4.0)], tail='{"tok')
    with caplog.at_level(logging.WARNING):
        result = write_report(str(tmp_path))
    assert f"{history.path}:3 is not a complete JSON record; skipped" in caplog.text
    assert steps(result["top"]) == [2, 1]


def test_nothing_to_report(tmp_path):
    with pytest.raises(PpnasError, match="no history.jsonl in .*nothing to report"):
        write_report(str(tmp_path))
    (tmp_path / "history.jsonl").write_text("")
    with pytest.raises(PpnasError, match="holds no complete record yet: nothing to report"):
        write_report(str(tmp_path))
    _history(tmp_path, [unrewarded("rejected", 90.0), unrewarded("failed", 20.0)])
    with pytest.raises(PpnasError, match=r"no candidate has been trained yet \(1 rejected, 1 failed; last reason"):
        write_report(str(tmp_path))
    assert not (tmp_path / PARETO_PNG).exists()


def test_bad_metadata_names_the_file(tmp_path):
    _history(tmp_path, [trained(1, 0.5)])
    (tmp_path / META_FILE).write_text('{"ctype": "latency",\n "unit": }')
    with pytest.raises(ConfigError, match=r"search_meta.json:2 is not valid JSON"):
        write_report(str(tmp_path))
    (tmp_path / META_FILE).write_text(json.dumps({"ctype": "latency", "min_constraint": 1, "max_constraint": 2}))
    with pytest.raises(ConfigError, match="ctype is latency but 'unit' is missing"):
        write_report(str(tmp_path))
    meta = {"ctype": "flops", "fragment_writer": "no_such_module:write", "full_train_hint": "train {fragment}"}
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="fragment_writer 'no_such_module:write' cannot be loaded"):
        write_report(str(tmp_path))


def _tool():
    spec = importlib.util.spec_from_file_location("report_tool", os.path.join(ROOT, "tools", "report.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_prints_one_line_for_an_empty_save_dir(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run_main(_tool().main, [str(tmp_path)])
    assert stop.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: no history.jsonl in") and "Traceback" not in err


def test_tool_writes_the_report(tmp_path, capsys):
    _history(tmp_path, [trained(1, 0.5, latency_ms=3.0), trained(2, 0.6, latency_ms=4.0)])
    with pytest.raises(SystemExit) as stop:
        run_main(_tool().main, [str(tmp_path), "--out", str(tmp_path / "rep"), "--top", "1"])
    assert stop.value.code == 0
    assert sorted(os.listdir(tmp_path / "rep")) == [PARETO_PNG, REPORT_MD, CURVE_PNG]
    assert capsys.readouterr().out.splitlines()[2].split()[:3] == ["1", "2", "0.6000"]


def test_unbounded_window_is_worded_without_infinities(tmp_path, capsys):
    _history(tmp_path, [trained(1, 0.5), trained(2, 0.6)])
    (tmp_path / META_FILE).write_text(json.dumps({"kind": "segmentation", "ctype": "flops"}))
    write_report(str(tmp_path))
    text = (tmp_path / REPORT_MD).read_text()
    assert "- constraint: flops not bounded\n" in text and "inf" not in text
    assert capsys.readouterr().out.startswith("top 2 candidates (flops not bounded):")


def test_pareto_legend_gives_the_window_in_the_axis_unit_and_steps_are_whole():
    from ppnas.report.figures.curve import search_curve_figure
    from ppnas.report.figures.pareto import pareto_figure

    records = [trained(i, 0.1 * i, flops=(8 + i) * 1e6) for i in range(1, 4)]
    window = Window.from_meta({"ctype": "flops", "min_constraint": 8e6, "max_constraint": 1.35e7})
    axis = choose_axis(records, window)
    assert axis.unit == "MFLOPs"
    figure = pareto_figure(records, axis, window, pareto_front(records, "flops", window), records[-1], None)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "constraint window: flops in [8, 13.5] MFLOPs" in labels
    curve = search_curve_figure(records, None)
    ticks = curve.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_detection_report_trains_the_best_fully_with_a_stock_paddledetection_layout(tmp_path):
    """The printed command, run as printed in a PaddleDetection 2.x layout, gives a config ppdet loads."""
    import shlex
    import shutil

    import yaml
    from ppdet.core.workspace import create
    from ppdet.core.workspace import load_config as ppdet_load_config

    from ppnas.tasks import detection
    from search_space.blazeface import BlazeFaceNasSpace

    structure = BlazeFaceNasSpace(kernel_choices=[3]).decode([3, 5, 4, 6, 1, 2, 3, 4, 0])
    record = {**trained(1, 0.5), "structure": structure}
    save_dir = tmp_path / "search"
    _history(save_dir, [record])
    meta = {"kind": "detection", "ctype": "flops", "fragment_writer": "ppnas.tasks.detection:write_fragment"}
    meta["full_train_hint"] = detection.FULL_TRAIN_HINT
    (save_dir / META_FILE).write_text(json.dumps(meta))
    write_report(str(save_dir))
    text = (save_dir / REPORT_MD).read_text()
    command = text.split("Train it fully:\n\n```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert "blazeface_nas.yml" not in text.split("Train it fully:")[1]  # no config PaddleDetection 2.x lacks
    assert command[0].startswith("# from the root of a PaddleDetection 2.x clone")
    copy, train = (shlex.split(line) for line in command[1:])
    assert train == ["python", "tools/train.py", "-c", "configs/face_detection/rank1_local_step1_1000e.yml"]

    # PaddleDetection's face_detection layout, with the stock bases' model and readers (ours mirror them)
    clone = tmp_path / "PaddleDetection"
    face = clone / "configs" / "face_detection"
    (face / "_base_").mkdir(parents=True)
    (clone / "configs" / "datasets").mkdir()
    shutil.copy(ROOT + "/configs/_base_/blazeface_nas_model.yml", face / "_base_" / "blazeface.yml")
    shutil.copy(ROOT + "/configs/_base_/face_reader.yml", face / "_base_" / "face_reader.yml")
    (face / "_base_" / "optimizer_1000e.yml").write_text("epoch: 1000\n")
    (clone / "configs" / "datasets" / "wider_face.yml").write_text("metric: WiderFace\nnum_classes: 1\n")
    (clone / "configs" / "runtime.yml").write_text("use_gpu: false\n")
    assert copy[0] == "cp" and copy[-1] == "configs/face_detection/"
    for source in copy[1:-1]:
        shutil.copy(source, clone / copy[-1])
    full = clone / train[-1]
    assert yaml.safe_load(full.read_text())["_BASE_"][:-1] == list(detection.STOCK_FACE_BASES)
    cfg = ppdet_load_config(str(full))  # PaddleDetection's own loader
    assert cfg["BlazeNet"]["double_blaze_filters"] == [list(b) for b in structure["double_blaze_filters"]]
    assert [s.channels for s in create(cfg.architecture).backbone.out_shape] == [32, 48]


def test_segmentation_full_training_suggestion_scales_to_the_dataset():
    from ppnas.tasks.segmentation import FULL_TRAIN_HINT

    assert "--epochs 108" in FULL_TRAIN_HINT and "--iters" not in FULL_TRAIN_HINT
    spec = importlib.util.spec_from_file_location("train_seg_tool", os.path.join(ROOT, "tools", "train_seg.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.parse_args(["--config", "c.yml", "--model", "m.yml", "--epochs", "108"]).epochs == 108


def test_a_one_shot_report_says_its_ap_is_inherited_how_to_finetune_and_plots_the_windows_neighbourhood(tmp_path):
    from ppnas.report.figures.pareto import pareto_figure

    records = [trained(i, 0.3 + 0.01 * i, flops=(8 + i) * 1e6, tokens=[i, 1]) for i in range(1, 5)]
    records += [unrewarded("rejected", None, flops=f * 1e6) for f in (2, 7, 15, 60, 90)]
    _history(tmp_path, records)
    meta = {
        "kind": "detection",
        "space": "BlazeFaceNasSpace",
        "config": "/c/bignas.yml",
        "ctype": "flops",
        "min_constraint": 8e6,
        "max_constraint": 14e6,
        "fragment_writer": "ppnas.oneshot.evaluate:write_fragment",
        "options": {"save_dir": "output/bn"},
    }
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    write_report(str(tmp_path))
    text = (tmp_path / REPORT_MD).read_text()
    assert text.startswith("# NAS report: one-shot (BigNAS) detection search, BlazeFaceNasSpace\n")
    assert "- candidates: 4 evaluated, 5 rejected" in text and "weights it inherits from the trained supernet" in text
    assert "evaluated in 0 s (inherited weights)" in text and "trained in" not in text
    finetune = "python tools/bignas.py -c /c/bignas.yml --phase finetune_subnet -o save_dir=output/bn subnet_tokens=4,1"
    assert finetune in text
    window = Window.from_meta(meta)
    axis = choose_axis(records, window)
    figure = pareto_figure(records, axis, window, pareto_front(records, "flops", window), records[3], meta)
    low, high = figure.axes[0].get_xlim()
    assert (low, high) == pytest.approx((5.0, 17.0))  # the window [8, 14] MFLOPs and half its width each side
    assert figure.axes[0].get_ylabel() == "reward (inherited AP@0.5)"
    assert figure.axes[1].get_xlabel().endswith("beyond the view: 3 rejected")
