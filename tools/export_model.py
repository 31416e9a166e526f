"""Export a found model for deployment: Paddle Inference (+ its family's deploy config), optionally ONNX and MNN.

    python tools/export_model.py --family detection --config configs/demo/blazeface_demo.yml \
        --structure output/blazeface_demo/blazeface_nas.yml --weights output/blazeface_demo/best_model.pdparams \
        --out output/blazeface_demo/inference [--onnx] [--mnn]

Writes model.pdmodel, model.pdiparams and infer_cfg.yml (detection, for PaddleDetection's
deploy/python/infer.py) or deploy.yaml (segmentation, for PaddleSeg's), with --onnx model.onnx, with --mnn
model.mnn beside model.onnx; checks Paddle Inference against the dygraph model, and onnxruntime and MNN
against Paddle Inference, on one input.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
from typing import List, Optional

from latency.convert import DEFAULT_OPSET
from ppnas.cli import run_main
from ppnas.device import select_device
from ppnas.export import family_names
from ppnas.export.model import ExportRequest
from ppnas.export.run import export_model


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, choices=family_names(), help="which search found the model")
    parser.add_argument("--structure", required=True, help="the structure file the search wrote (config fragment)")
    parser.add_argument("--weights", required=True, help="the weights the search wrote (.pdparams)")
    parser.add_argument("-c", "--config", default=None, help="the search config (detection, segmentation)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--input_size", type=int, default=None, help="side of the square input (family default)")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx (needs ppnas[onnx])")
    parser.add_argument("--mnn", action="store_true", help="also write model.mnn (needs ppnas[onnx,mnn])")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset")
    parser.add_argument(
        "--output_op", default="argmax", help="segmentation: argmax (class map), softmax or none (logits)"
    )
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    select_device(False)  # exporting runs the model once; a GPU would change nothing in the files
    request = ExportRequest(
        structure=args.structure,
        weights=args.weights,
        config=args.config,
        input_size=args.input_size,
        options={"output_op": args.output_op},
    )
    result = export_model(args.family, request, args.out, onnx=args.onnx, opset=args.opset, mnn=args.mnn)
    print(f"Paddle Inference vs dygraph on one input: {result.inference_vs_dygraph.describe()}")
    if result.onnx_vs_inference is not None:
        print(f"ONNX (onnxruntime) vs Paddle Inference on the same input: {result.onnx_vs_inference.describe()}")
    if result.mnn_vs_inference is not None:
        print(f"MNN vs Paddle Inference on the same input: {result.mnn_vs_inference.describe()}")
    for path in result.files:
        print(f"wrote {path}")
    print(json.dumps(result.summary()))
    return 0


if __name__ == "__main__":
    run_main(main)
