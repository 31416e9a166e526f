"""The shared export: save the Paddle Inference model and deploy config, check it, optionally convert to ONNX.

Checks, on one fixed input: Paddle Inference's outputs against the found dygraph model's, and with ONNX,
onnxruntime's against Paddle Inference's. Float outputs must agree within |a - b| <= ATOL + RTOL * |b|;
integer outputs (class maps, box counts) may differ in at most LABEL_TOLERANCE of their elements (a pixel
whose two best logits tie to 1e-8 can go either way). The largest difference is printed either way.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ppnas.errors import ExportError
from ppnas.export import adapter
from ppnas.export import onnx as onnx_export
from ppnas.export.inference import MODEL_PREFIX, run_inference, save_inference_model
from ppnas.export.model import Exportable, ExportRequest

RTOL = 1e-3
ATOL = 1e-4
LABEL_TOLERANCE = 1e-3


@dataclass
class Agreement:
    """How closely two runs of the same model agree on the sample input."""

    max_abs_diff: float  # over float outputs
    largest_value: float  # the largest |value| of the float outputs compared against
    differing_labels: int  # integer elements that differ
    label_count: int  # integer elements compared
    output_count: int  # elements compared in all

    def describe(self) -> str:
        parts = []
        if self.label_count < self.output_count:
            parts.append(
                f"max abs difference {self.max_abs_diff:.3g} on float outputs up to {self.largest_value:.3g} "
                f"(tolerance |a-b| <= {ATOL:g} + {RTOL:g}*|b|)"
            )
        if self.label_count:
            parts.append(f"{self.differing_labels} of {self.label_count} integer output values differ")
        return ", ".join(parts)


def _canonical(array: np.ndarray, unordered_rows: bool) -> np.ndarray:
    if unordered_rows and array.ndim == 2 and array.shape[0] > 1:
        return array[np.lexsort(array.T[::-1])]
    return array


def compare(
    what: str, got: Sequence[np.ndarray], expected: Sequence[np.ndarray], unordered_rows: bool = False
) -> Agreement:
    """`got` against `expected`, output by output; an ExportError names the first output that disagrees."""
    if len(got) != len(expected):
        raise ExportError(f"{what}: {len(got)} outputs, expected {len(expected)}")
    worst, largest, differing, labels, total = 0.0, 0.0, 0, 0, 0
    for index, (a, b) in enumerate(zip(got, expected)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise ExportError(f"{what}: output {index} has shape {list(a.shape)}, expected {list(b.shape)}")
        total += b.size
        if np.issubdtype(b.dtype, np.integer):
            wrong = int(np.count_nonzero(a != b))
            if wrong > LABEL_TOLERANCE * b.size:
                raise ExportError(f"{what}: output {index} differs in {wrong} of {b.size} elements")
            differing, labels = differing + wrong, labels + b.size
            continue
        a, b = _canonical(a.astype("float64"), unordered_rows), _canonical(b.astype("float64"), unordered_rows)
        diff = np.abs(a - b)
        worst = max(worst, float(diff.max(initial=0.0)))
        largest = max(largest, float(np.abs(b).max(initial=0.0)))
        if np.any(diff > ATOL + RTOL * np.abs(b)):
            raise ExportError(
                f"{what}: output {index} differs by up to {float(diff.max()):.3g} "
                f"(tolerance {ATOL:g} + {RTOL:g}*|expected|)"
            )
    return Agreement(worst, largest, differing, labels, total)


@dataclass
class ExportResult:
    model_dir: str
    files: List[str]
    inference_vs_dygraph: Agreement
    onnx_vs_inference: Optional[Agreement] = None

    def summary(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"model_dir": self.model_dir, "files": self.files}
        out["inference_vs_dygraph_max_abs_diff"] = self.inference_vs_dygraph.max_abs_diff
        if self.onnx_vs_inference is not None:
            out["onnx_vs_inference_max_abs_diff"] = self.onnx_vs_inference.max_abs_diff
        return out


def export_exportable(
    exportable: Exportable, out_dir: str, onnx: bool = False, opset: int = onnx_export.DEFAULT_OPSET
) -> ExportResult:
    """Save, write the deploy config, check; with `onnx`, convert and check the ONNX model too."""
    if onnx:
        onnx_export.check_available()
    os.makedirs(out_dir, exist_ok=True)
    save_inference_model(exportable.layer, exportable.input_spec, out_dir)
    files = [os.path.join(out_dir, f"{MODEL_PREFIX}.pdmodel"), os.path.join(out_dir, f"{MODEL_PREFIX}.pdiparams")]
    files.append(exportable.write_deploy_config(out_dir))
    inference = run_inference(out_dir, exportable.sample_inputs)
    result = ExportResult(
        model_dir=out_dir,
        files=files,
        inference_vs_dygraph=compare(
            "Paddle Inference vs dygraph", inference, exportable.reference, exportable.unordered_rows
        ),
    )
    if onnx:
        path = onnx_export.convert(out_dir, opset)
        files.append(path)
        result.onnx_vs_inference = compare(
            f"ONNX (onnxruntime, opset {opset}) vs Paddle Inference",
            onnx_export.run_onnx(path, exportable.sample_inputs),
            inference,
            exportable.unordered_rows,
        )
    return result


def export_model(
    family: str, request: ExportRequest, out_dir: str, onnx: bool = False, opset: int = onnx_export.DEFAULT_OPSET
) -> ExportResult:
    """Rebuild the found model of `family` from the request's files and export it into `out_dir`."""
    if onnx:
        onnx_export.check_available()  # before the rebuilding and saving
    request.check_files()
    return export_exportable(adapter(family)(request), out_dir, onnx, opset)
