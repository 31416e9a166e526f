"""Data-parallel training on this machine: samples per second with 1 and with 2 processes of 1 thread each.

python bench/dp_scaling.py [--iters 30] [--warmup 5] [--batch 8] [--size 160] [--repeats 2]

A BlazeFace (the search space's initial structure) trained with the detection task's own loop (ppdet reader,
shard sampler, DataParallel, RMSProp, SSD loss) on a generated WIDER-layout set at `--size` px, `--batch`
images per process (per rank, as in PaddleDetection: 2 processes train 2 x batch images a step). Once in one
process, once under `python -m paddle.distributed.launch --nproc_per_node 2` (gloo), OMP_NUM_THREADS=1 each.
Samples per second = iterations x batch x processes / seconds, timed on rank 0 from the end of the
`--warmup`-th iteration to the last, so start-up and the first steps are left out; the best of `--repeats`
runs of each. speedup_2_procs = samples/s with 2 processes / samples/s with 1.
Prints one JSON object and writes bench/results/dp_scaling.json.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

ROOT = pathlib.Path(__file__).resolve().parents[1]
for _folder in (str(ROOT), str(ROOT / "bench")):
    if _folder not in sys.path:
        sys.path.insert(0, _folder)


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=30, help="timed iterations per run")
    parser.add_argument("--warmup", type=int, default=5, help="iterations before the timing starts")
    parser.add_argument("--batch", type=int, default=8, help="images per process and step")
    parser.add_argument("--size", type=int, default=160, help="image side, px")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting; the best counts")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_config(folder: pathlib.Path, args: argparse.Namespace) -> pathlib.Path:
    import yaml

    from ppnas.demo.wider import make_wider_demo

    data = folder / "wider"
    # enough images that no epoch ends inside the timed window of 2 processes
    make_wider_demo(str(data), train=2 * args.batch * (args.iters + args.warmup), val=1, size=args.size, seed=0)
    resize = {"Resize": {"target_size": [args.size, args.size], "keep_ratio": False, "interp": 1}}
    cfg = {
        "_BASE_": [str(ROOT / "configs" / "demo" / "blazeface_demo.yml")],
        "input_size": args.size,
        "max_iters": args.warmup + args.iters,
        "TrainDataset": {"dataset_dir": str(data)},
        "EvalDataset": {"dataset_dir": str(data)},
        "TrainReader": {
            "sample_transforms": [{"Decode": {}}, resize, {"NormalizeBox": {}}, {"PadBox": {"num_max_boxes": 8}}],
            "batch_size": args.batch,
            "shuffle": True,
        },
    }
    path = folder / "bench.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def worker(config: str, out: str, warmup: int) -> None:
    """Train one candidate; rank 0 writes the seconds from iteration `warmup` to the last."""
    import paddle

    from ppnas import parallel
    from ppnas.config import load_config
    from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults

    paddle.set_device("cpu")
    task = BlazeFaceTask(with_search_defaults(load_config(config)))
    paddle.seed(0)
    model = task.build(task.space.init_tokens())
    stamps: Dict[int, float] = {}
    task._train(model, lambda iteration, total, loss: stamps.__setitem__(iteration, time.perf_counter()))
    if parallel.is_main():
        last = max(stamps)
        result = {"iterations": last - warmup, "seconds": stamps[last] - stamps[warmup]}
        pathlib.Path(out).write_text(json.dumps({**result, "processes": parallel.world_size()}))


def run(config: pathlib.Path, processes: int, args: argparse.Namespace, folder: pathlib.Path) -> Dict[str, Any]:
    out = folder / f"run_{processes}.json"
    script = [str(pathlib.Path(__file__).resolve()), "--warmup", str(args.warmup), "--worker", str(config), str(out)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        launch = ["-m", "paddle.distributed.launch", "--nproc_per_node", str(processes)]
        command = [sys.executable, *launch, "--log_dir", str(folder / "log"), *script]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout.decode(errors='replace')[-3000:]}")
    timing = json.loads(out.read_text())
    samples = timing["iterations"] * args.batch * processes
    return {**timing, "samples": samples, "samples_per_second": round(samples / timing["seconds"], 3)}


def main(argv: List[str]) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker, warmup=args.warmup)
        return
    from common import machine, save_result

    with tempfile.TemporaryDirectory(prefix="ppnas_dp_scaling_") as tmp:
        folder = pathlib.Path(tmp)
        config = write_config(folder, args)
        runs: Dict[int, List[Dict[str, Any]]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for processes in (1, 2):  # interleaved, so that a change of load hits both settings
                runs[processes].append(run(config, processes, args, folder))
    best = {n: max(r["samples_per_second"] for r in runs[n]) for n in runs}
    save_result(
        "dp_scaling",
        {
            "benchmark": "dp_scaling",
            "command": " ".join(["python bench/dp_scaling.py", *argv]),
            "model": f"BlazeFace, initial tokens, {args.size}x{args.size} px, batch {args.batch} per process",
            "threads_per_process": 1,
            "samples_per_second_1_proc": best[1],
            "samples_per_second_2_procs": best[2],
            "speedup_2_procs": round(best[2] / best[1], 3),
            "runs": {f"{n}_procs": runs[n] for n in runs},
            "machine": machine(),
            "note": "2 CPU cores shared with other jobs while this ran (see load_average_1m); no target is set",
        },
    )


if __name__ == "__main__":
    main(sys.argv[1:])
