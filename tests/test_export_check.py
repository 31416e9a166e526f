"""The export's agreement check: detections as sets of rows, class maps with a tie allowance, floats by tolerance."""

import zlib  # noqa: F401  # isort: skip  # before paddle (see ppnas/__init__.py)
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
