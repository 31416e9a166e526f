"""The latency Constraint as both searches configure it: detection `Constraint:` block, segmentation SLIM keys."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import pathlib
import shutil

import pytest
from seg_helpers import make_tiny_config

from latency.builder import collect_ops
from ppnas.candidates import load_candidates
from ppnas.config import CONFIG_DIR_KEY
from ppnas.constraint import Constraint
from ppnas.tasks.segmentation_config import load_seg_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLISHED = [2, 1, 3, 8, 2, 1, 2, 1, 0]  # BlazeFace-NAS, 3x3 space


def test_detection_constraint_block_with_a_table_next_to_the_config(tmp_path, latency_855_path):
    shutil.copy(latency_855_path, tmp_path / "latency_855.txt")
    block = {"ctype": "latency", "max_constraint": 57489, "min_constraint": 18000, "table_file": "latency_855.txt"}
    constraint = Constraint.from_config(block, {CONFIG_DIR_KEY: str(tmp_path)})
    assert constraint.table_file == str(tmp_path / "latency_855.txt")
    source = load_candidates(str(ROOT / "configs" / "demo" / "blazeface_demo.yml"))
    source.set_input_size(640)
    measured = constraint.measure(source.measurable(PUBLISHED), source.input_shape)
    assert measured.latency == pytest.approx(21117.0) and measured.latency_unit == "us"
    assert measured.latency_ms == pytest.approx(21.117)
    assert constraint.admits(measured)
    assert not Constraint(ctype="latency", max_constraint=20000, table_file=constraint.table_file).admits(measured)
    assert constraint.window_text() == "latency in [18000, 57489] us"


def test_segmentation_slim_keys_price_a_deeplab_candidate(tmp_path):
    config = make_tiny_config(tmp_path)
    source = load_candidates(str(config))
    tokens = source.init_tokens
    model = source.measurable(tokens)
    ops = collect_ops([model], source.input_shape)
    # a table pricing every op at 1 us: the estimate is then the number of priced ops
    (tmp_path / "unit.txt").write_text("test\tcpu\tus\n" + "".join(f"{key}\t1\n" for key in ops), encoding="utf-8")
    assert any(key.startswith("interp,bilinear") for key in ops)  # resized to a runtime shape: still keyed
    # typed on the command line: relative to the working directory, so given in full here
    overrides = ["SLIM.NAS_CONSTRAINT_TYPE", "latency", "SLIM.NAS_CONSTRAINT_TABLE", str(tmp_path / "unit.txt")]
    seg = load_seg_config(str(config), [*overrides, "SLIM.NAS_CONSTRAINT_MAX", "100000"])
    constraint = seg.constraint()
    measured = constraint.measure(model, source.input_shape)
    assert measured.latency > 100 and constraint.admits(measured)  # DeepLabV3+ runs a few hundred ops
    seg = load_seg_config(str(config), [*overrides, "SLIM.NAS_CONSTRAINT_MAX", str(int(measured.latency) - 1)])
    assert not seg.constraint().admits(measured)


def test_the_shipped_855_table_serves_the_original_config():
    """configs/blazeface.yml's `table_file: latency_855.txt` finds the copy shipped beside it, with no ../shared."""
    from ppnas.config import load_config

    cfg = load_config(str(ROOT / "configs" / "blazeface.yml"))
    constraint = Constraint.from_config(cfg["Constraint"], cfg)
    assert constraint.table_file == str(ROOT / "configs" / "latency_855.txt")
    assert pathlib.Path(constraint.table_file).read_text().splitlines()[0] == "op_type\t855\tus"
    assert len(pathlib.Path(constraint.table_file).read_text().splitlines()) == 596  # header + 595 conv keys
