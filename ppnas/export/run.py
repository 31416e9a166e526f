"""The shared export: save the Paddle Inference model and deploy config, check it, optionally convert to ONNX
and MNN.

Checks, on one fixed input: Paddle Inference's outputs against the found dygraph model's, and with ONNX (MNN),
onnxruntime's (MNN's) against Paddle Inference's. Float outputs must agree within |a - b| <= ATOL + RTOL * |b|;
integer outputs (class maps) may differ in at most LABEL_TOLERANCE of their elements (a pixel whose two
best logits tie to 1e-8 can go either way); detections are compared as sets of rows (see `compare`).
The largest difference is printed either way. Everything is built and checked in a temporary folder beside
`out_dir` and moved into it only when every check passed: a failed export leaves nothing behind.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle

from latency.convert import DEFAULT_OPSET, check_available
from latency.engine import MODEL_PREFIX, save_inference_model
from ppnas.errors import ExportError
from ppnas.export import adapter
from ppnas.export import mnn as mnn_export
from ppnas.export import onnx as onnx_export
from ppnas.export.inference import io_names, run_inference
from ppnas.export.model import Exportable, ExportRequest

RTOL = 1e-3
ATOL = 1e-4
LABEL_TOLERANCE = 1e-3
ROW_TOLERANCE = 0.01
SCORE_TOLERANCE = 1e-3  # a detection this close to a score cut-off may be kept on one side only


@dataclass
class Agreement:
    """How closely two runs of the same model agree on the sample input."""

    max_abs_diff: float = 0.0  # over the float values compared (of matched rows, for detections)
    largest_value: float = 0.0  # the largest |value| among them
    float_count: int = 0
    differing_labels: int = 0  # integer elements that differ
    label_count: int = 0
    unmatched_rows: int = 0  # detections without a counterpart within tolerance
    row_count: int = 0
    rows_at_cutoff: int = 0  # detections on one side only, whose score sits at a cut-off (accepted)

    def describe(self) -> str:
        parts = []
        if self.float_count:
            parts.append(
                f"max abs difference {self.max_abs_diff:.3g} on float outputs up to {self.largest_value:.3g} "
                f"(tolerance |a-b| <= {ATOL:g} + {RTOL:g}*|b|)"
            )
        if self.row_count:
            text = f"{self.unmatched_rows} of {self.row_count} detections unmatched"
            if self.rows_at_cutoff:
                text += f" ({self.rows_at_cutoff} more on one side only, at a score cut-off)"
            parts.append(text)
        if self.label_count:
            parts.append(f"{self.differing_labels} of {self.label_count} integer output values differ")
        return ", ".join(parts)


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) <= ATOL + RTOL * np.abs(b)


def match_rows(got: np.ndarray, expected: np.ndarray) -> List[Any]:
    """(i, j) pairs: row j of `expected` matched to the first free row i of `got` within tolerance."""
    free = np.ones(len(got), dtype=bool)
    pairs = []
    for j, row in enumerate(expected):
        close = free & np.all(_close(got, row), axis=1)
        if close.any():
            i = int(np.argmax(close))
            free[i] = False
            pairs.append((i, j))
    return pairs


def compare(
    what: str,
    got: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    unordered_rows: bool = False,
    score_cutoff: Optional[float] = None,
) -> Agreement:
    """`got` against `expected`, output by output; an ExportError names the first output that disagrees.

    With `unordered_rows` (detections after NMS) a 2-D output is a set of rows [class, score, box], matched
    one to one, and integer outputs are their counts. A row found on one side only is accepted when its
    score is within SCORE_TOLERANCE of a cut-off: `score_cutoff` (the NMS score threshold), or the lowest
    score the other side kept (where keep_top_k or nms_top_k cut it): floating-point noise moves such a box
    across the cut on one side only. Of the other rows, up to ROW_TOLERANCE may lack a match (two boxes
    whose scores tie to 1e-6 can trade places at NMS).
    """
    if len(got) != len(expected):
        raise ExportError(f"{what}: {len(got)} outputs, expected {len(expected)}")
    out = Agreement()
    for index, (a, b) in enumerate(zip(got, expected)):
        a, b = np.asarray(a), np.asarray(b)
        integer = np.issubdtype(b.dtype, np.integer)
        if unordered_rows and b.ndim == 2 and not integer and a.ndim == 2 and a.shape[1] == b.shape[1]:
            pairs = match_rows(a.astype("float64"), b.astype("float64"))
            at_cut = _rows_at_cutoff(a, b, pairs, score_cutoff)
            rows = max(len(a), len(b)) - at_cut
            if rows - len(pairs) > ROW_TOLERANCE * rows:
                raise ExportError(
                    f"{what}: output {index}: {rows - len(pairs)} of {rows} rows have no match (beyond {at_cut} "
                    f"on one side only at a score cut-off)"
                )
            out.unmatched_rows += rows - len(pairs)
            out.row_count += rows
            out.rows_at_cutoff += at_cut
            a = a[[i for i, _ in pairs]]
            b = b[[j for _, j in pairs]]
        elif unordered_rows and integer and a.shape == b.shape:  # counts: the rows kept at a cut-off may differ
            if np.any(np.abs(a - b) > ROW_TOLERANCE * np.abs(b) + out.rows_at_cutoff):
                raise ExportError(f"{what}: output {index} (counts) is {a.tolist()}, expected {b.tolist()}")
            continue
        if a.shape != b.shape:
            raise ExportError(f"{what}: output {index} has shape {list(a.shape)}, expected {list(b.shape)}")
        if integer:
            wrong = int(np.count_nonzero(a != b))
            if wrong > LABEL_TOLERANCE * b.size:
                raise ExportError(f"{what}: output {index} differs in {wrong} of {b.size} elements")
            out.differing_labels += wrong
            out.label_count += b.size
            continue
        a, b = a.astype("float64"), b.astype("float64")
        diff = np.abs(a - b)
        if not np.all(_close(a, b)):
            raise ExportError(
                f"{what}: output {index} differs by up to {float(diff.max()):.3g} "
                f"(tolerance {ATOL:g} + {RTOL:g}*|expected|)"
            )
        out.max_abs_diff = max(out.max_abs_diff, float(diff.max(initial=0.0)))
        out.largest_value = max(out.largest_value, float(np.abs(b).max(initial=0.0)))
        out.float_count += b.size
    return out


def _rows_at_cutoff(a: np.ndarray, b: np.ndarray, pairs: List[Any], score_cutoff: Optional[float]) -> int:
    """How many of the larger side's surplus of unmatched rows sit at a score cut-off (see `compare`)."""
    lone_a = np.delete(a, [i for i, _ in pairs], axis=0)
    lone_b = np.delete(b, [j for _, j in pairs], axis=0)

    def at_cut(lone: np.ndarray, other: np.ndarray) -> int:
        cutoffs = [c for c in (score_cutoff, float(other[:, 1].min()) if len(other) else None) if c is not None]
        scores = lone[:, 1].astype("float64")
        return int(sum(any(abs(s - c) <= SCORE_TOLERANCE for c in cutoffs) for s in scores))

    surplus = abs(len(lone_a) - len(lone_b))  # a row on one side only shows as a surplus; a moved one does not
    if len(lone_a) > len(lone_b):
        return min(surplus, at_cut(lone_a, b))
    return min(surplus, at_cut(lone_b, a))


@dataclass
class ExportResult:
    model_dir: str
    files: List[str]
    inference_vs_dygraph: Agreement
    onnx_vs_inference: Optional[Agreement] = None
    mnn_vs_inference: Optional[Agreement] = None

    def summary(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"model_dir": self.model_dir, "files": self.files}
        out["inference_vs_dygraph_max_abs_diff"] = self.inference_vs_dygraph.max_abs_diff
        if self.onnx_vs_inference is not None:
            out["onnx_vs_inference_max_abs_diff"] = self.onnx_vs_inference.max_abs_diff
        if self.mnn_vs_inference is not None:
            out["mnn_vs_inference_max_abs_diff"] = self.mnn_vs_inference.max_abs_diff
        return out


def check_converters(onnx: bool, mnn: bool) -> None:
    """Fail before any work when a converter or runtime the export needs is not installed."""
    if onnx:
        check_available("onnx")
    if mnn:
        check_available("mnn")


def export_exportable(
    exportable: Exportable, out_dir: str, onnx: bool = False, opset: int = DEFAULT_OPSET, mnn: bool = False
) -> ExportResult:
    """Save, write the deploy config, check; with `onnx` (`mnn`), convert and check the ONNX (MNN) model too.
    Built in a temporary folder and moved into `out_dir` only when every check passed."""
    check_converters(onnx, mnn)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}-", dir=parent)
    try:
        result = _export_into(exportable, work, onnx, opset, mnn)
        os.makedirs(out_dir, exist_ok=True)
        for name in os.listdir(work):
            os.replace(os.path.join(work, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.model_dir = out_dir
    result.files = [os.path.join(out_dir, os.path.basename(path)) for path in result.files]
    return result


def _export_into(exportable: Exportable, folder: str, onnx: bool, opset: int, mnn: bool) -> ExportResult:
    with paddle.utils.unique_name.guard():  # names from 0, whatever this process saved before: the output fetch
        save_inference_model(exportable.layer, exportable.input_spec, folder)  # names are stable (OUTPUT_NAMES)
    files = [os.path.join(folder, f"{MODEL_PREFIX}.pdmodel"), os.path.join(folder, f"{MODEL_PREFIX}.pdiparams")]
    files.append(exportable.write_deploy_config(folder))
    inference = run_inference(folder, exportable.sample_inputs)
    rows = {"unordered_rows": exportable.unordered_rows, "score_cutoff": exportable.score_cutoff}
    result = ExportResult(
        model_dir=folder,
        files=files,
        inference_vs_dygraph=compare("Paddle Inference vs dygraph", inference, exportable.reference, **rows),
    )
    if onnx:
        path = onnx_export.convert_onnx(folder, opset)
        files.append(path)
        result.onnx_vs_inference = compare(
            f"ONNX (onnxruntime, opset {opset}) vs Paddle Inference",
            onnx_export.run_onnx(path, exportable.sample_inputs),
            inference,
            **rows,
        )
    if mnn:
        path = mnn_export.convert_mnn(folder, opset)
        if not onnx:  # the ONNX model MNN's was converted from stays beside it
            files.append(os.path.join(folder, onnx_export.ONNX_FILE))
        files.append(path)
        result.mnn_vs_inference = compare(
            f"MNN (from ONNX opset {opset}) vs Paddle Inference",
            mnn_export.run_mnn(path, exportable.sample_inputs, *io_names(folder)),
            inference,
            **rows,
        )
    return result


def export_model(
    family: str,
    request: ExportRequest,
    out_dir: str,
    onnx: bool = False,
    opset: int = DEFAULT_OPSET,
    mnn: bool = False,
) -> ExportResult:
    """Rebuild the found model of `family` from the request's files and export it into `out_dir`."""
    check_converters(onnx, mnn)  # before the rebuilding and saving
    request.check_files()
    return export_exportable(adapter(family)(request), out_dir, onnx, opset, mnn)
