"""The segmentation half of bench/oneshot_ranking.py (`--task segmentation`; see its docstring): from-scratch
mIoU of subnets of the DeepLabV3+ supernet with several seeds, their noise, and the ranking by inherited mIoU.

The from-scratch runs go into bench/scratch_reference.py's cache (one cache for every task: its key, reader
and writer; a segmentation run's key holds its backbone structure, seed, schedule and data), so a killed run
resumes and a finished one is never trained again."""

import ppnas  # noqa: F401  # isort: skip
import json
import os
import pathlib
import random
import statistics
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from common import machine
from scipy.stats import kendalltau
from scratch_reference import CACHE, append_record, pair_taus, read_cache, run_key, split_taus
from supernet_training import supernet_cpu_seconds, train_counted

from ppnas.config import override_pairs
from ppnas.constraint import Constraint
from ppnas.demo.cityscapes import make_cityscapes_demo
from ppnas.engine.seeding import seed_everything
from ppnas.oneshot.adapters import adapter_class
from ppnas.oneshot.checkpoint import Checkpoint
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.supernet import build_supernet
from ppnas.tasks.segmentation import DeepLabTask
from ppnas.tasks.segmentation_config import load_seg_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "demo" / "cityscape_bignas_demo.yaml")
SEG_SEEDS = (0, 1, 2)
SEG_EPOCHS = 30  # 300 iterations of batch 4 on the 40 demo train images; mIoU after the last epoch
SEG_VAL_IMAGES = 40
# the demo set's generator arguments: the train images are the demo's (written first, same seed)
DATA = {
    "generator": "ppnas.demo.cityscapes.make_cityscapes_demo",
    "train": 40,
    "val": SEG_VAL_IMAGES,
    "size": [128, 256],
    "seed": 0,
}
DATA_DIR = ROOT / "output" / "seg_ranking_data" / "t40_v40_s128x256_seed0"
SUPERNET_DIR = ROOT / "output" / "seg_ranking_supernet"
PICK_SEED = 0
# Subnets are spread over the 5th-95th percentile of random subnets' FLOPs at the crop (sample_flops of the
# demo config: 206-279 MFLOPs), wider than the demo's search window [210, 240]: a ranking test needs subnets
# whose true mIoU differs by more than the seed noise.
PICK_WINDOW = (2.05e8, 2.8e8)


def data_dir() -> pathlib.Path:
    """The data folder, generated unless a complete copy is there (a marker is written last)."""
    marker = DATA_DIR / "generated.json"
    if not marker.exists():
        make_cityscapes_demo(str(DATA_DIR), DATA["train"], DATA["val"], tuple(DATA["size"]), DATA["seed"])
        marker.write_text(json.dumps(DATA) + "\n")
    return DATA_DIR


def data_overrides(folder: pathlib.Path) -> List[str]:
    return [
        f"train_dataset.dataset_root={folder}",
        f"train_dataset.train_path={folder / 'train_list.txt'}",
        f"val_dataset.dataset_root={folder}",
        f"val_dataset.val_path={folder / 'val_list.txt'}",
    ]


def pick_subnets(cfg: Mapping[str, Any], count: int) -> List[Dict[str, Any]]:
    """One subnet per equal-width FLOPs bin of PICK_WINDOW: the first seeded uniform draw in it."""
    supernet, measurable = build_supernet(cfg), adapter_class(cfg).measurable
    constraint = Constraint(ctype="flops")
    low, high = PICK_WINDOW
    width, rng, picked = (high - low) / count, random.Random(PICK_SEED), {}
    for _ in range(5000):
        tokens = [rng.randrange(n) for n in supernet.space.range_table()]
        subnet = supernet.space.decode(tokens)
        flops = constraint.measure(measurable(supernet.plain_model(subnet)), subnet.image_size).flops
        if low <= flops <= high:
            picked.setdefault(
                min(int((flops - low) / width), count - 1),
                {"tokens": tokens, "flops": flops, "structure": supernet.structure(subnet)},
            )
        if len(picked) == count:
            break
    return [picked[b] for b in sorted(picked)]


def scratch_task(folder: pathlib.Path) -> DeepLabTask:
    """The segmentation search's training, SEG_EPOCHS epochs, evaluated after the last one."""
    pairs = [*data_overrides(folder), f"epochs={SEG_EPOCHS}", f"SLIM.NAS_START_EVAL_EPOCH={SEG_EPOCHS - 1}"]
    return DeepLabTask(load_seg_config(CONFIG, override_pairs(pairs)), quiet=True)


def schedule_of(task: DeepLabTask) -> Dict[str, Any]:
    dic = task.seg.paddleseg
    return {
        "epochs": SEG_EPOCHS,
        "batch_size": dic["batch_size"],
        "crop": task.input_shape[2:],
        "learning_rate": dic["lr_scheduler"]["learning_rate"],
    }


def scratch_miou(task: DeepLabTask, subnet: Mapping[str, Any], seed: int) -> Dict[str, Any]:
    """One from-scratch run (its cached record when this key ran before)."""
    schedule = schedule_of(task)
    key = run_key(subnet["structure"], seed, schedule, DATA)
    known = read_cache(CACHE).get(key)
    if known is not None:
        return known
    start, wall = time.thread_time(), time.perf_counter()
    seed_everything(seed)
    miou = task.train_and_evaluate(task.build_structure(subnet["structure"]))
    record = {
        "structure": subnet["structure"],
        "seed": int(seed),
        "schedule": schedule,
        "data": DATA,
        "miou": float(miou),
        "tokens": subnet["tokens"],
        "flops": subnet["flops"],
        "cpu_seconds": time.thread_time() - start,
        "wall_seconds": time.perf_counter() - wall,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    append_record(record, CACHE)
    print(f"seed {seed} {subnet['tokens']}: mIoU {miou:.4f} in {record['cpu_seconds']:.0f} s CPU", flush=True)
    return record


def inherited(cfg: Mapping[str, Any], subnets: Sequence[Mapping[str, Any]], reuse: Optional[str]) -> Dict[str, Any]:
    """The supernet (a finished demo run's, or trained here to the config's max_iters, resumable) and each
    subnet's inherited mIoU with its thread CPU time."""
    from ppnas.oneshot.evaluate import SupernetEvaluator

    cfg = {**cfg, "supernet_dir": os.path.abspath(reuse) if reuse else None}
    if not reuse:
        cfg["save_dir"] = str(SUPERNET_DIR)
        train_counted(cfg)
    state = Checkpoint.of(cfg).state()
    evaluator = SupernetEvaluator.from_checkpoint(cfg)
    evaluator.evaluate(subnets[0]["tokens"])  # warm-up: the calibration batches are fetched once
    out = []
    for subnet in subnets:
        start = time.thread_time()
        out.append({"miou": evaluator.evaluate(subnet["tokens"]), "cpu_seconds": time.thread_time() - start})
    return {
        "runs": out,
        "supernet_iters": state["iteration"],
        "supernet_train_wall_seconds": state["train_seconds"],
        "supernet_train_cpu_seconds": None if reuse else supernet_cpu_seconds(cfg),
        "supernet": reuse or str(SUPERNET_DIR),
    }


def segmentation_ranking(count: int, stage: str, reuse: Optional[str]) -> Optional[Dict[str, Any]]:
    folder = data_dir()
    cfg = load_oneshot_config(CONFIG, data_overrides(folder))
    subnets = pick_subnets(cfg, count)
    task = scratch_task(folder)
    runs = {s: [scratch_miou(task, subnet, s) for subnet in subnets] for s in SEG_SEEDS}  # seed-major
    if stage == "scratch":
        return None
    matrix = [[runs[s][i]["miou"] for s in SEG_SEEDS] for i in range(len(subnets))]
    reference = [statistics.mean(row) for row in matrix]
    found = inherited(cfg, subnets, reuse)
    scores = [r["miou"] for r in found["runs"]]
    tau = kendalltau(scores, reference)
    splits = split_taus(matrix)
    known = [t["tau"] for t in splits if t["tau"] is not None]
    scratch_cpu = statistics.mean(r["cpu_seconds"] for seed_runs in runs.values() for r in seed_runs)
    eval_cpu = statistics.mean(r["cpu_seconds"] for r in found["runs"])
    return {
        "task": "segmentation",
        "kendall_tau": float(tau.statistic),
        "kendall_p_value": float(tau.pvalue),
        "reference_tau_ceiling": statistics.mean(known) if known else None,
        "reference_split_taus": splits,
        "reference_pair_taus": pair_taus(
            {str(i): dict(zip(SEG_SEEDS, row)) for i, row in enumerate(matrix)}, SEG_SEEDS
        ),
        "reference_seeds": list(SEG_SEEDS),
        "reference_seed_std_median": statistics.median(statistics.stdev(row) for row in matrix),
        "eval_cpu_seconds_per_subnet": eval_cpu,
        "scratch_cpu_seconds_per_run": scratch_cpu,
        "speedup_per_subnet": scratch_cpu / eval_cpu,
        # every cost: the supernet's training + one evaluation per subnet, against one training per subnet
        "total_cpu_seconds_oneshot": (found["supernet_train_cpu_seconds"] or 0.0) + eval_cpu * len(subnets),
        "total_cpu_seconds_scratch_one_seed": scratch_cpu * len(subnets),
        "break_even_subnets": (found["supernet_train_cpu_seconds"] or 0.0) / (scratch_cpu - eval_cpu),
        "supernet_iters": found["supernet_iters"],
        "supernet_train_wall_seconds": found["supernet_train_wall_seconds"],
        "supernet_train_cpu_seconds": found["supernet_train_cpu_seconds"],
        "supernet": found["supernet"],
        "schedule": schedule_of(task),
        "data": DATA,
        "pick_window_flops": list(PICK_WINDOW),
        "calib_batches": int(cfg["calib_batches"]),
        "subnets": [
            {
                "tokens": s["tokens"],
                "flops": s["flops"],
                "inherited_miou": score,
                "scratch_miou_by_seed": row,
                "scratch_miou_mean": mean,
            }
            for s, score, row, mean in zip(subnets, scores, matrix, reference)
        ],
        "machine": {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }
