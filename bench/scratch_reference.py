"""From-scratch reference for the demo detection task: cached, resumable, reusable by other benchmarks.

`scratch_ap(structure_or_tokens, seed, schedule, data)` trains one BlazeFace from scratch with the detection
task's own training (`BlazeFaceTask.train_and_evaluate`, everything seeded by `seed`) and returns its AP@0.5.
Each result is appended to a JSON-lines cache (bench/results/scratch_reference.jsonl) as soon as it is known,
keyed by the decoded structure, the seed, the schedule and the data's generator arguments; a call whose key
is in the cache returns the cached result without training. A killed run loses only the run in progress.

As a script it builds the reference set of issue 16 (subnets stratified by FLOPs over the demo window, the
hand-made tokens, BlazeFace-NAS_V2; several seeds each), then writes the noise report:

    python bench/scratch_reference.py run        # trains what the cache lacks (resumable: run it again)
    python bench/scratch_reference.py report     # bench/results/scratch_reference.json from the cache
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import dataclasses
import itertools
import json
import logging
import os
import pathlib
import random
import statistics
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import paddle
from common import RESULTS, machine, save_result
from ppdet.metrics import VOCMetric
from scipy.stats import kendalltau

from ppnas.cli import run_main
from ppnas.config import load_config, merge
from ppnas.constraint import Constraint
from ppnas.demo.wider import make_wider_demo
from ppnas.engine.seeding import seed_everything
from ppnas.spaces import build_space
from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "configs" / "demo" / "blazeface_demo.yml"
CACHE = RESULTS / "scratch_reference.jsonl"
DATA_ROOT = ROOT / "output" / "scratch_reference_data"
DEMO_INPUT = 160  # the side at which the demo's FLOPs window [8, 14] MFLOPs is stated
DEMO_WINDOW = (8e6, 14e6)
IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50 ... 0.95, as COCO's AP averages them
PROGRESS_POINTS = 4  # a run records its APs at 1/4, 2/4, 3/4 of its iterations too
PROGRESS_IOUS = (0.5, 0.75)  # there only two thresholds: an evaluation at ten costs ~15 s of CPU
HAND_MADE_TOKENS = [2, 1, 3, 8, 2, 1, 2, 1, 0]  # the example's init tokens, kernel token at 3x3
NAS_V2 = {  # PaddleDetection model zoo, BlazeFace-NAS_V2 (3x3 only)
    "blaze_filters": [[12, 12], [12, 12, 2], [12, 12]],
    "double_blaze_filters": [[12, 16, 32, 2], [32, 32, 32], [32, 16, 72, 2], [72, 24, 72]],
    "use_5x5kernel": False,
}

StructureOrTokens = Union[Sequence[int], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How one candidate trains: iterations, RMSProp base LR (ppdet's warm-up of the demo config stays),
    batch size and the square input side (train and eval Resize)."""

    max_iters: int
    base_lr: float = 0.01
    batch_size: int = 16
    input_size: int = 160

    def key(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DemoData:
    """A generated WIDER-layout set: the arguments of `ppnas.demo.wider.make_wider_demo` (the same arguments
    write the same files: the generator is seeded)."""

    train: int = 100
    val: int = 30
    size: int = 160
    max_faces: int = 3
    seed: int = 0
    hard: bool = False  # the generator's hard variant: capacity shows (the default set is solved by every subnet)

    def fingerprint(self) -> Dict[str, Any]:
        fields = dataclasses.asdict(self)
        if not self.hard:  # records of the default set were cached before the hard variant existed
            fields.pop("hard")
        return {"generator": "ppnas.demo.wider.make_wider_demo", **fields}

    def folder(self, root: pathlib.Path = DATA_ROOT) -> pathlib.Path:
        hard = "_hard" if self.hard else ""
        return root / f"wider_t{self.train}_v{self.val}_s{self.size}_f{self.max_faces}_seed{self.seed}{hard}"

    def ensure(self, root: pathlib.Path = DATA_ROOT) -> pathlib.Path:
        """The set's folder, generated unless a complete copy is there (a marker is written last)."""
        folder = self.folder(root)
        marker = folder / "generated.json"
        if not marker.exists():
            make_wider_demo(str(folder), self.train, self.val, self.size, self.max_faces, self.seed, self.hard)
            marker.write_text(json.dumps(self.fingerprint()) + "\n")
        return folder


@dataclasses.dataclass
class ScratchResult:
    ap: float
    seed: int
    structure: Dict[str, Any]
    schedule: Dict[str, Any]
    data: Dict[str, Any]
    cpu_seconds: float  # thread CPU time of build + train + evaluate
    train_cpu_seconds: float
    wall_seconds: float
    flops: float  # at the schedule's input size
    params: int
    ap_iou: Dict[str, float] = dataclasses.field(default_factory=dict)  # IoU threshold -> AP, final model
    ap_50_95: Optional[float] = None
    progress: List[Dict[str, Any]] = dataclasses.field(default_factory=list)  # APs at 1/4, 1/2, 3/4, end
    cached: bool = False
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


def normalise_structure(structure: Mapping[str, Any]) -> Dict[str, Any]:
    """The BlazeNet keys that define a candidate, as plain ints and lists (a stable cache key)."""
    return {
        "blaze_filters": [[int(c) for c in b] for b in structure["blaze_filters"]],
        "double_blaze_filters": [[int(c) for c in b] for b in structure["double_blaze_filters"]],
        "use_5x5kernel": bool(structure.get("use_5x5kernel", False)),
    }


def decode(structure_or_tokens: StructureOrTokens, kernel_choices: Sequence[int] = (3,)) -> Dict[str, Any]:
    """A BlazeNet structure dict as it is, or tokens of BlazeFaceNasSpace (the demo's 3x3-only lists)."""
    if isinstance(structure_or_tokens, Mapping):
        return normalise_structure(structure_or_tokens)
    space = build_space("BlazeFaceNasSpace", kernel_choices=list(kernel_choices))
    return normalise_structure(space.token2arch([int(t) for t in structure_or_tokens])[0])


def cache_key(structure: Mapping[str, Any], seed: int, schedule: Schedule, data: DemoData) -> str:
    return run_key(normalise_structure(structure), seed, schedule.key(), data.fingerprint())


def run_key(structure: Mapping[str, Any], seed: int, schedule: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """The key of one from-scratch run of any task: its structure, seed, schedule and data, as JSON (another
    task's benchmark keeps its runs in a cache of its own with the same key, reader and writer)."""
    body = {"structure": structure, "seed": int(seed), "schedule": dict(schedule), "data": dict(data)}
    return json.dumps(body, sort_keys=True)


def read_cache(path: pathlib.Path = CACHE) -> Dict[str, Dict[str, Any]]:
    """key -> record; a line cut short by a kill is skipped (that run is simply trained again)."""
    records: Dict[str, Dict[str, Any]] = {}
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        records[record_key(record)] = record
    return records


def record_key(record: Mapping[str, Any]) -> str:
    return run_key(record["structure"], record["seed"], record["schedule"], record["data"])


def append_record(record: Mapping[str, Any], path: pathlib.Path = CACHE) -> None:
    """One line, flushed to disk before the next run starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cut = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a", encoding="utf-8") as f:
        # a line cut by a kill stays alone on its line (skipped when read) instead of swallowing this one
        f.write(("\n" if cut else "") + json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def task_config(schedule: Schedule, data_dir: pathlib.Path) -> Dict[str, Any]:
    """The demo detection config with the schedule and the data folder put in."""
    cfg = load_config(str(DEMO_CONFIG))
    size = [schedule.input_size, schedule.input_size]
    readers = {}
    for name in ("TrainReader", "EvalReader"):
        reader = dict(cfg[name])
        reader["sample_transforms"] = [_resized(t, size) for t in reader["sample_transforms"]]
        readers[name] = reader
    readers["TrainReader"]["batch_size"] = schedule.batch_size
    overrides = {
        "max_iters": schedule.max_iters,
        "input_size": schedule.input_size,
        "LearningRate": {"base_lr": schedule.base_lr},
        "TrainDataset": {"dataset_dir": str(data_dir)},
        "EvalDataset": {"dataset_dir": str(data_dir)},
        **readers,
    }
    return with_search_defaults(merge(cfg, overrides))


def _resized(transform: Mapping[str, Any], size: List[int]) -> Dict[str, Any]:
    if "Resize" in transform:
        return {"Resize": {**transform["Resize"], "target_size": list(size)}}
    return dict(transform)


_TASKS: Dict[Tuple[Schedule, DemoData], BlazeFaceTask] = {}


def task_for(schedule: Schedule, data: DemoData, data_root: pathlib.Path = DATA_ROOT) -> BlazeFaceTask:
    """One task per (schedule, data): readers are parsed once and reused, as a search reuses them."""
    if (schedule, data) not in _TASKS:
        _TASKS[(schedule, data)] = BlazeFaceTask(task_config(schedule, data.ensure(data_root)))
    return _TASKS[(schedule, data)]


def measure(task: BlazeFaceTask, structure: Mapping[str, Any]) -> Tuple[float, int]:
    """FLOPs and params at the task's input size, without training."""
    m = Constraint(ctype="flops").measure(task.measurable(task.build_structure(structure)), task.input_shape)
    return m.flops, m.params


def iou_metric(threshold: float, folder: str) -> VOCMetric:
    """ppdet's VOCMetric as the task's `voc_metric` builds it, at another IoU threshold."""
    label_list = os.path.join(folder, "label_list.txt")
    with open(label_list, "w", encoding="utf-8") as f:
        f.write("face\n")
    return VOCMetric(label_list, class_num=1, overlap_thresh=threshold, map_type="integral", evaluate_difficult=True)


def evaluate_ious(task: BlazeFaceTask, model: paddle.nn.Layer, thresholds: Sequence[float] = IOUS) -> Dict[str, float]:
    """Integral AP at each IoU threshold from one pass over the eval set (the task's loader and metric class):
    AP@0.5 saturates on the demo data, stricter thresholds still separate subnets."""
    task._loaders()
    with tempfile.TemporaryDirectory(prefix="ppnas_iou_") as folder:
        metrics = {f"{t:.2f}": iou_metric(t, folder) for t in thresholds}
    model.eval()
    with paddle.no_grad():
        for data in task._eval_loader:
            outputs = model(data)
            for metric in metrics.values():
                metric.update(data, outputs)
                metric.results = {key: [] for key in metric.results}  # only a bbox.json would read them
    quiet = logging.getLogger(VOCMetric.__module__)
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        for metric in metrics.values():
            metric.accumulate()
    finally:
        quiet.setLevel(level)
    model.train()
    return {name: float(metric.get_results()["bbox"][0]) for name, metric in metrics.items()}


def progress_points(max_iters: int, count: int = PROGRESS_POINTS) -> List[int]:
    """Iterations before the end at which a run also records its APs (evaluation draws no random numbers,
    so they leave the run as it is): enough to see whether the schedule is still rising."""
    return [max_iters * i // count for i in range(1, count)]


def train_one(task: BlazeFaceTask, structure: Mapping[str, Any], seed: int) -> Dict[str, Any]:
    """The task's own training and evaluation of a fresh model, every RNG seeded by `seed` first; then the
    same model's AP at stricter IoU thresholds. CPU times are of this thread, without the extra evaluations."""
    marks: Dict[str, float] = {"extra_cpu": 0.0}
    progress: List[Dict[str, Any]] = []
    points = set(progress_points(task.max_iters))

    def on_iter(iteration: int, total: int, loss: float) -> None:
        if iteration in points:
            before = time.thread_time()
            progress.append({"iter": iteration, "loss": loss, "ap_iou": evaluate_ious(task, model, PROGRESS_IOUS)})
            marks["extra_cpu"] += time.thread_time() - before
        if iteration == total:
            marks["train_cpu"] = time.thread_time() - marks["extra_cpu"]

    start_wall, start_cpu = time.perf_counter(), time.thread_time()
    seed_everything(seed)
    model = task.build_structure(structure)
    ap = task.train_and_evaluate(model, on_iter=on_iter)
    cpu = time.thread_time() - start_cpu - marks["extra_cpu"]
    wall = time.perf_counter() - start_wall
    after = time.thread_time()
    final = evaluate_ious(task, model)
    progress.append({"iter": task.max_iters, "ap_iou": final})
    return {
        "ap": float(ap),
        "ap_iou": final,
        "ap_50_95": statistics.mean(final.values()),
        "progress": progress,
        "cpu_seconds": cpu,
        "train_cpu_seconds": marks["train_cpu"] - start_cpu,
        "extra_eval_cpu_seconds": marks["extra_cpu"] + time.thread_time() - after,
        "wall_seconds": wall,
    }


def scratch_ap(
    structure_or_tokens: StructureOrTokens,
    seed: int,
    schedule: Schedule,
    data: DemoData,
    cache: pathlib.Path = CACHE,
    kernel_choices: Sequence[int] = (3,),
    extra: Optional[Mapping[str, Any]] = None,
) -> ScratchResult:
    """AP@0.5 of one subnet trained from scratch; the cached result when this key was trained before.

    `structure_or_tokens`: a BlazeNet dict (blaze_filters, double_blaze_filters, use_5x5kernel) or tokens of
    BlazeFaceNasSpace with `kernel_choices`. `extra` (e.g. tokens, a label) is stored with a new record."""
    structure = decode(structure_or_tokens, kernel_choices)
    key = cache_key(structure, seed, schedule, data)
    known = read_cache(cache).get(key)
    if known is not None:
        return _result(known, cached=True)
    task = task_for(schedule, data)
    flops, params = measure(task, structure)
    timing = train_one(task, structure, seed)
    record = {
        "structure": structure,
        "seed": int(seed),
        "schedule": schedule.key(),
        "data": data.fingerprint(),
        "flops": flops,
        "params": params,
        **timing,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "extra": dict(extra or {}),
    }
    append_record(record, cache)
    return _result(record, cached=False)


def _result(record: Mapping[str, Any], cached: bool) -> ScratchResult:
    fields = {f.name for f in dataclasses.fields(ScratchResult)} - {"cached"}
    return ScratchResult(**{k: record[k] for k in fields if k in record}, cached=cached)


# --- the reference set of issue 16 -----------------------------------------------------------------------

# Chosen from the learning curves (bench/results/scratch_learning_curve_*.json, bench/results/scratch_reference.md).
# On the default demo set AP@0.5 reaches >= 0.999 by 800 iterations at 160 px for every subnet: nothing left to rank.
# On the hard variant (up to 8 small, blurred, covered faces and face-like blobs; 300 val images) the smallest
# subnet of the window reaches 0.64 / 0.87 / 0.88 / 0.89 / 0.94 after 400 / 600 / 800 / 1000 / 1600 iterations:
# 800 is where the rise has slowed, at about 186 s of CPU a run (54 runs: 2.8 CPU-hours on one thread).
REFERENCE_SCHEDULE = Schedule(max_iters=800, base_lr=0.01, batch_size=16, input_size=160)
REFERENCE_DATA = DemoData(train=1000, val=300, max_faces=8, hard=True)
REFERENCE_SEEDS = (0, 1, 2)
REFERENCE_BINS = 16
PICK_SEED = 0


def window_at(input_size: int) -> Tuple[float, float]:
    """The demo window scaled to `input_size`: every conv's FLOPs scale with the feature-map area, so the
    same subnets are inside it at any size whose feature maps divide evenly."""
    scale = (input_size / DEMO_INPUT) ** 2
    return DEMO_WINDOW[0] * scale, DEMO_WINDOW[1] * scale


def stratified_tokens(task: BlazeFaceTask, bins: int, seed: int, draws: int = 20000) -> List[Dict[str, Any]]:
    """One subnet per equal-width FLOPs bin of the window, the first seeded uniform draw that lands in it."""
    low, high = window_at(task.input_shape[-1])
    width = (high - low) / bins
    rng = random.Random(seed)
    picked: Dict[int, Dict[str, Any]] = {}
    for _ in range(draws):
        tokens = [rng.randrange(n) for n in task.space.range_table()]
        flops = Constraint(ctype="flops").measure(task.measurable(task.build(tokens)), task.input_shape).flops
        if low <= flops <= high:
            picked.setdefault(min(int((flops - low) / width), bins - 1), {"tokens": tokens, "flops": flops})
        if len(picked) == bins:
            break
    return [{"label": f"bin{b:02d}", **picked[b]} for b in sorted(picked)]


def reference_members(schedule: Schedule, data: DemoData, bins: int = REFERENCE_BINS) -> List[Dict[str, Any]]:
    """The stratified subnets, then the hand-made tokens and BlazeFace-NAS_V2 (label, tokens?, structure)."""
    task = task_for(schedule, data)
    members = stratified_tokens(task, bins, PICK_SEED)
    members.append({"label": "hand_made", "tokens": HAND_MADE_TOKENS})
    members.append({"label": "nas_v2", "structure": NAS_V2})
    for member in members:
        member["structure"] = decode(member.get("structure") or member["tokens"])
    return members


def reference_runs(
    members: Sequence[Mapping[str, Any]], seeds: Sequence[int], shard: Tuple[int, int] = (0, 1)
) -> List[Tuple[int, Mapping[str, Any]]]:
    """(seed, member) pairs: the stratified subnets first (the ranking needs only them), seed-major so a partial
    run already has every member at the first seeds; then the hand-made tokens and NAS_V2. `shard` (index, count)
    keeps every count-th pair from index: one process per core shares the list without training a run twice."""
    ranked = [m for m in members if m["label"].startswith("bin")]
    extras = [m for m in members if not m["label"].startswith("bin")]
    index, count = shard
    return [*itertools.product(seeds, ranked), *itertools.product(seeds, extras)][index::count]


def run_reference(
    schedule: Schedule, data: DemoData, seeds: Sequence[int], bins: int, shard: Tuple[int, int] = (0, 1)
) -> None:
    """Trains this shard's runs of the reference set (`reference_runs`)."""
    for seed, member in reference_runs(reference_members(schedule, data, bins), seeds, shard):
        extra = {"label": member["label"], "tokens": member.get("tokens")}
        result = scratch_ap(member["structure"], seed, schedule, data, extra=extra)
        state = "cached" if result.cached else f"{result.cpu_seconds:.0f} s CPU"
        print(f"seed {seed} {member['label']}: AP {result.ap:.4f} ({state})", flush=True)


# what a reference AP can be: the task's own AP@0.5 (the search's reward), and stricter thresholds
METRICS = {
    "ap50": lambda r: r["ap"],
    "ap75": lambda r: r["ap_iou"]["0.75"],
    "ap_50_95": lambda r: r["ap_50_95"],
}


def split_taus(aps: List[List[float]]) -> List[Dict[str, Any]]:
    """Kendall tau between seed i alone and the mean of the other seeds, over subnets, for each i."""
    out = []
    for i in range(len(aps[0])):
        alone = [row[i] for row in aps]
        rest = [statistics.mean(row[:i] + row[i + 1 :]) for row in aps]
        tau = kendalltau(alone, rest)
        out.append({"seed_index": i, "tau": _number(tau.statistic), "p_value": _number(tau.pvalue)})
    return out


def pair_taus(runs: Mapping[str, Mapping[int, float]], seeds: Sequence[int]) -> List[Dict[str, Any]]:
    """Kendall tau between two seeds over the subnets that have both (usable while a run is partial)."""
    out = []
    for a, b in itertools.combinations(seeds, 2):
        both = [v for v in runs.values() if a in v and b in v]
        if len(both) >= 3:
            tau = kendalltau([v[a] for v in both], [v[b] for v in both])
            out.append({"seeds": [a, b], "subnets": len(both), "tau": _number(tau.statistic)})
    return out


def _number(value: float) -> Optional[float]:
    """NaN (a constant column: every AP tied) as null in JSON."""
    return None if value != value else float(value)


def member_rows(
    records: Mapping[str, Mapping[str, Any]],
    members: List[Dict[str, Any]],
    schedule: Schedule,
    data: DemoData,
    seeds: Sequence[int],
) -> List[Dict[str, Any]]:
    """Per member and metric: the APs by seed, their mean, sample std and spread (max - min)."""
    rows = []
    for member in members:
        done = {s: records[k] for s in seeds if (k := cache_key(member["structure"], s, schedule, data)) in records}
        row: Dict[str, Any] = {"label": member["label"], "tokens": member.get("tokens"), "seeds": sorted(done)}
        if done:
            first = next(iter(done.values()))
            row.update(flops=first["flops"], params=first["params"])
            row["cpu_seconds_mean"] = statistics.mean(r["cpu_seconds"] for r in done.values())
        for name, read in METRICS.items():
            values = {s: read(r) for s, r in done.items()}
            row[name] = {"by_seed": values}
            if values:
                row[name].update(
                    mean=statistics.mean(values.values()), spread=max(values.values()) - min(values.values())
                )
                row[name]["std"] = statistics.stdev(values.values()) if len(values) > 1 else None
        rows.append(row)
    return rows


def metric_noise(rows: List[Dict[str, Any]], name: str, seeds: Sequence[int]) -> Dict[str, Any]:
    """Seed noise of one metric over the stratified subnets, against the spread of their seed means."""
    bins = [r for r in rows if r["label"].startswith("bin")]
    complete = [r for r in bins if len(r[name]["by_seed"]) == len(seeds)]
    taus = split_taus([[r[name]["by_seed"][s] for s in seeds] for r in complete]) if len(complete) >= 3 else []
    known = [t["tau"] for t in taus if t["tau"] is not None]
    means = [r[name]["mean"] for r in complete]
    return {
        "complete_subnets": len(complete),
        "split_taus": taus,
        "tau_ceiling": statistics.mean(known) if known else None,
        "pair_taus": pair_taus({r["label"]: r[name]["by_seed"] for r in bins}, seeds),
        "seed_std_median": statistics.median(r[name]["std"] for r in complete) if complete else None,
        "seed_mean_range": [min(means), max(means)] if means else None,
        "seed_mean_std_across_subnets": statistics.stdev(means) if len(means) > 1 else None,
    }


def noise_report(schedule: Schedule, data: DemoData, seeds: Sequence[int], bins: int) -> Dict[str, Any]:
    """Per member the seed spread; over the stratified subnets with every seed done, the split taus, for
    AP@0.5 (`reference_tau_ceiling`) and the stricter metrics."""
    rows = member_rows(read_cache(), reference_members(schedule, data, bins), schedule, data, seeds)
    noise = {name: metric_noise(rows, name, seeds) for name in METRICS}
    runs = [r for r in read_cache().values() if r["schedule"] == schedule.key() and r["data"] == data.fingerprint()]
    return {
        "schedule": schedule.key(),
        "data": data.fingerprint(),
        "seeds": list(seeds),
        "window_flops": list(window_at(schedule.input_size)),
        "runs_done": len(runs),
        "runs_planned": len(rows) * len(seeds),
        "cpu_seconds_per_run": statistics.mean(r["cpu_seconds"] for r in runs) if runs else None,
        "reference_tau_ceiling": noise["ap50"]["tau_ceiling"],
        "noise": noise,
        "members": rows,
        "machine": {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }


def shard_arg(text: str) -> Tuple[int, int]:
    """`--shard 0/2` -> (0, 2)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected INDEX/COUNT such as 0/2, got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"INDEX must be in [0, COUNT), got {text!r}")
    return index, count


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--bins", type=int, default=REFERENCE_BINS)
    parser.add_argument("--shard", type=shard_arg, default=(0, 1), help="INDEX/COUNT: this process's share of runs")
    args = parser.parse_args(argv)
    if args.action == "run":
        # run_main handles SIGTERM like Ctrl-C, in one line (paddle's own handler dumps and aborts slowly)
        run_reference(REFERENCE_SCHEDULE, REFERENCE_DATA, REFERENCE_SEEDS, args.bins, args.shard)
    save_result("scratch_reference", noise_report(REFERENCE_SCHEDULE, REFERENCE_DATA, REFERENCE_SEEDS, args.bins))
    return 0


if __name__ == "__main__":
    run_main(main)
