"""The export's agreement check: detections as sets of rows, class maps with a tie allowance, floats by tolerance."""

import zlib  # noqa: F401  # isort: skip  # before paddle (see ppnas/__init__.py)
import pathlib

import numpy as np
import pytest

from ppnas.errors import ExportError
from ppnas.export.run import compare

BOXES = np.array([[0, 0.9, 10, 10, 20, 20], [0, 0.8, 30, 30, 40, 44], [0, 0.8, 5, 6, 7, 8]], dtype="float32")


def test_detections_compare_as_a_set_of_rows():
    swapped = BOXES[[0, 2, 1]] * np.float32(1 + 1e-4)  # two equal scores in the other order, float noise
    agreement = compare("check", [swapped, np.array([3])], [BOXES, np.array([3])], unordered_rows=True)
    assert agreement.unmatched_rows == 0 and agreement.row_count == 3
    assert agreement.max_abs_diff == pytest.approx(44e-4, rel=1e-3) and agreement.largest_value == 44
    assert "0 of 3 detections unmatched" in agreement.describe()


def test_a_moved_box_or_a_lost_one_is_an_error():
    moved = BOXES.copy()
    moved[1, 4] += 1.0
    with pytest.raises(ExportError, match="check: output 0: 1 of 3 rows have no match"):
        compare("check", [moved, np.array([3])], [BOXES, np.array([3])], unordered_rows=True)
    with pytest.raises(ExportError, match=r"output 1 \(counts\) is \[2\], expected \[3\]"):
        compare("check", [BOXES, np.array([2])], [BOXES, np.array([3])], unordered_rows=True)


def test_class_maps_allow_one_tie_in_a_thousand_and_floats_their_tolerance():
    labels = np.zeros([1, 50, 40], dtype="int32")
    one_off = labels.copy()
    one_off[0, 0, 0] = 1
    assert compare("check", [one_off], [labels]).differing_labels == 1
    many_off = labels.copy()
    many_off[0, :3, 0] = 1
    with pytest.raises(ExportError, match="output 0 differs in 3 of 2000 elements"):
        compare("check", [many_off], [labels])
    logits = np.linspace(-5, 5, 100, dtype="float32")
    assert compare("check", [logits * (1 + 5e-4)], [logits]).max_abs_diff == pytest.approx(2.5e-3, rel=1e-3)
    with pytest.raises(ExportError, match="output 0 differs by up to 0.05"):
        compare("check", [logits * 1.01], [logits])
    with pytest.raises(ExportError, match=r"output 0 has shape \[1, 50, 41\], expected \[1, 50, 40\]"):
        compare("check", [np.zeros([1, 50, 41], "int32")], [labels])


def _detections(count: int, rng: np.random.Generator) -> np.ndarray:
    boxes = np.sort(rng.uniform(0, 100, [count, 4]), axis=1)
    return np.concatenate([np.zeros([count, 1]), rng.uniform(0.2, 0.9, [count, 1]), boxes], 1).astype("float32")


def test_a_detection_at_a_score_cut_off_may_be_on_one_side_only_and_a_confident_one_may_not():
    kept = _detections(39, np.random.default_rng(0))
    at_threshold = np.array([[0, 0.01004, 3, 4, 50, 60]], "float32")  # 0.00996 on the other side: cut
    agreement = compare(
        "check",
        [np.vstack([kept, at_threshold]), np.array([40])],
        [kept, np.array([39])],
        unordered_rows=True,
        score_cutoff=0.01,
    )
    assert agreement.rows_at_cutoff == 1 and agreement.unmatched_rows == 0
    assert "1 more on one side only, at a score cut-off" in agreement.describe()
    lowest = kept[np.argmin(kept[:, 1])].copy()  # keep_top_k: the other side's lowest kept score is a cut too
    lowest[2:] += 7
    lowest[1] -= 2e-4
    assert compare("check", [np.vstack([kept, lowest])], [kept], unordered_rows=True).rows_at_cutoff == 1
    confident = np.array([[0, 0.7, 3, 4, 50, 60]], "float32")
    with pytest.raises(ExportError, match="output 0: 1 of 40 rows have no match"):
        compare("check", [np.vstack([kept, confident])], [kept], unordered_rows=True, score_cutoff=0.01)


def test_a_failed_check_leaves_nothing_in_the_output_folder_and_a_passed_one_moves_every_file_there(tmp_path):
    import paddle

    from ppnas.export.model import image_model
    from ppnas.export.run import export_exportable

    def deploy_config(folder: str) -> str:
        path = pathlib.Path(folder) / "deploy.yaml"
        path.write_text("Deploy: {}\n")
        return str(path)

    paddle.seed(0)
    exportable = image_model(paddle.nn.Conv2D(3, 2, 1), [None, 3, 8, 8], [1, 3, 8, 8], deploy_config, "x")
    truth = exportable.reference
    exportable.reference = [r + 1.0 for r in truth]  # a model that does not compute what dygraph did
    with pytest.raises(ExportError, match="Paddle Inference vs dygraph: output 0 differs by up to 1"):
        export_exportable(exportable, str(tmp_path / "out"))
    assert list(tmp_path.iterdir()) == []  # neither the output folder nor the work folder is left
    exportable.reference = truth
    result = export_exportable(exportable, str(tmp_path / "out"))
    names = ["deploy.yaml", "model.pdiparams", "model.pdmodel"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix != ".info") == names
    assert sorted(result.files) == [str(tmp_path / "out" / n) for n in names] and list(tmp_path.iterdir()) == [
        tmp_path / "out"
    ]
