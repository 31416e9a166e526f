"""What does a deployed model cost per image, against the dygraph model the search trained?

python bench/export.py [--repeats 10] [--det-size 640] [--seg-size 256]

For each family, the init structure of its space (BlazeFace at 640, BlazeFace's deploy size; DeepLabV3+ with
stock MobileNetV2 at 256x256) is exported with tools/export_model.py's code, ONNX included, and one image
is run `repeats` times (after 3 warm-up runs) by the dygraph model (eval, no_grad), Paddle Inference
(IR optimisation on; MKLDNN off, and on as the deploy tools' --enable_mkldnn) and onnxruntime (CPU
provider), each on 1 thread (OMP/MKL and onnxruntime's intra-op pool). Median wall and thread-CPU time per
image, and the export's own wall time. Weights are freshly initialised: speed does not depend on training
(the check's differences on such weights say little: the tests and the README give them on trained ones).
Prints one JSON object and writes bench/results/export.json.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os  # isort: skip

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before paddle loads its math libraries: 1 thread everywhere
import argparse
import statistics
import tempfile
import time
from typing import Any, Callable, Dict

import onnxruntime
import paddle
import paddle2onnx
from common import machine, save_result

from latency.engine import EngineSettings
from ppnas.config import load_config
from ppnas.export import adapter
from ppnas.export.inference import fed_predictor
from ppnas.export.model import ExportRequest, feeds_by_name
from ppnas.export.run import export_model
from ppnas.spaces import build_space
from ppnas.tasks.detection import build_blazeface, write_fragment
from ppnas.tasks.segmentation import write_fragment as write_seg_fragment
from ppnas.tasks.segmentation_config import config_with_model, paddleseg_config, read_paddleseg_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DET_CONFIG = os.path.join(ROOT, "configs", "blazeface.yml")
SEG_CONFIG = os.path.join(ROOT, "configs", "demo", "cityscape_demo.yaml")
WARMUP = 3


def median_ms(run: Callable[[], Any], repeats: int) -> Dict[str, float]:
    """Median wall time and median CPU time of this thread per run: on 1 thread all three engines compute in
    the calling thread, so the CPU time leaves out what other processes on this shared machine take."""
    for _ in range(WARMUP):
        run()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return {"wall_ms": round(statistics.median(wall) * 1e3, 2), "cpu_ms": round(statistics.median(cpu) * 1e3, 2)}


def detection_files(folder: str) -> ExportRequest:
    cfg = load_config(DET_CONFIG)
    space = build_space("BlazeFaceNasSpace", kernel_choices=cfg.get("kernel_choices", [3, 5]))
    structure = dict(space.token2arch(space.init_tokens())[0])
    write_fragment(structure, os.path.join(folder, "blazeface_nas.yml"))
    paddle.save(build_blazeface(structure, cfg).state_dict(), os.path.join(folder, "best_model.pdparams"))
    return ExportRequest(
        os.path.join(folder, "blazeface_nas.yml"), os.path.join(folder, "best_model.pdparams"), DET_CONFIG
    )


def segmentation_files(folder: str) -> ExportRequest:
    space = build_space("MobileNetV2SpaceSeg")
    fragment = os.path.join(folder, "deeplabv3p_nas.yml")
    write_seg_fragment(
        space.token2arch(space.init_tokens())[0].to_dict(), fragment, read_paddleseg_yaml(SEG_CONFIG)["model"]
    )
    model = paddleseg_config(config_with_model(SEG_CONFIG, fragment)).model
    paddle.save(model.state_dict(), os.path.join(folder, "model.pdparams"))
    return ExportRequest(fragment, os.path.join(folder, "model.pdparams"), SEG_CONFIG)


def bench_family(family: str, request: ExportRequest, folder: str, repeats: int) -> Dict[str, Any]:
    exportable = adapter(family)(request)  # the same object the export saves: its sample input and forward
    start = time.perf_counter()
    result = export_model(family, request, os.path.join(folder, "inference"), onnx=True)
    export_seconds = time.perf_counter() - start
    feeds = exportable.sample_inputs
    tensors = (
        [{k: paddle.to_tensor(v) for k, v in feeds.items()}]
        if len(feeds) > 1
        else [paddle.to_tensor(v) for v in feeds.values()]
    )
    layer = exportable.layer

    def dygraph() -> None:
        with paddle.no_grad():
            layer(*tensors)

    predictors = {  # MKLDNN off, and on as the deploy tools' --enable_mkldnn
        mkldnn: fed_predictor(result.model_dir, feeds, EngineSettings(threads=1, mkldnn=mkldnn)) for mkldnn in (0, 1)
    }
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        os.path.join(result.model_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    onnx_feeds = feeds_by_name([i.name for i in session.get_inputs()], feeds)
    shape = list(next(iter(v for k, v in feeds.items() if v.ndim == 4)).shape)
    return {
        "input_shape": shape,
        "export_seconds": round(export_seconds, 1),
        "dygraph": median_ms(dygraph, repeats),
        "paddle_inference": median_ms(predictors[0].run, repeats),
        "paddle_inference_mkldnn": median_ms(predictors[1].run, repeats),
        "onnxruntime": median_ms(lambda: session.run(None, onnx_feeds), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--det-size", type=int, default=640)
    parser.add_argument("--seg-size", type=int, default=256)
    args = parser.parse_args()
    paddle.set_device("cpu")
    out: Dict[str, Any] = {"machine": machine(), "threads": 1, "repeats": args.repeats}
    out["versions"] = {
        "paddle": paddle.__version__,
        "onnxruntime": onnxruntime.__version__,
        "paddle2onnx": paddle2onnx.__version__,
    }
    with tempfile.TemporaryDirectory(prefix="ppnas_bench_export_") as folder:
        det = detection_files(folder)
        det.input_size = args.det_size
        out["detection"] = bench_family("detection", det, os.path.join(folder, "det"), args.repeats)
        seg = segmentation_files(folder)
        seg.input_size = args.seg_size
        out["segmentation"] = bench_family("segmentation", seg, os.path.join(folder, "seg"), args.repeats)
    out["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    save_result("export", out)


if __name__ == "__main__":
    main()
