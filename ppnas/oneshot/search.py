"""Search over the trained supernet (`--phase search`): the detection search's loop with inherited-weight rewards.

The shared loop (`ppnas.sanas.runner.run_task` -> `run_search`) draws tokens, builds PaddleDetection's
BlazeFace at them, checks the shared Constraint BEFORE any evaluation, records every subnet to
history.jsonl in the detection search's format and exports its best subnet, so `tools/report.py` works
unchanged. Only the reward differs: instead of training, `SupernetTask.train_and_evaluate` calibrates the
supernet's BN on the subnet, slices its weights into the built model and takes AP@0.5 with the detection
task's evaluation. Sampling modes: `random` and `traverse` (controllers below) and `sanas` (the project's
annealing controller, the default of run_task).
"""

import itertools
import json
import os
import random
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import paddle
from tqdm import tqdm

from ppnas.constraint import Constraint
from ppnas.errors import ConfigError, SearchFinished
from ppnas.history import CandidateRecord, History
from ppnas.oneshot.algorithm import calibrate_bn
from ppnas.oneshot.export import subnet_state_dict
from ppnas.oneshot.supernet import BlazeFaceSupernet
from ppnas.oneshot.train import Checkpoint, epoch_batches, fetch
from ppnas.report import Window, plot_sample_distribution
from ppnas.sanas.search import IterCallback, seed_everything

# The report reads a search's fragment writer, training and export hints from the task's module (search_meta.json):
from ppnas.tasks.detection import EXPORT_HINT, FULL_TRAIN_HINT, BlazeFaceTask, write_fragment  # noqa: F401

SEARCH_MODES = ("random", "traverse", "sanas")
SAMPLE_FLOPS_PNG = "sample_flops.png"
SAMPLE_FLOPS_JSON = "sample_flops.json"
MAX_RANDOM_DRAWS = 1_000_000  # a random controller that cannot find an unseen subnet stops there


def check_subnet_tokens(value: Any, space: Any) -> List[int]:
    """`subnet_tokens` as given on the command line (`2,1,3,8,2,1,2,1,0` or a YAML list), checked."""
    if value is None or value == "":
        raise ConfigError("this phase needs a subnet: -o subnet_tokens=2,1,3,8,2,1,2,1,0 (9 tokens)")
    items = value if isinstance(value, (list, tuple)) else str(value).replace("[", "").replace("]", "").split(",")
    try:
        tokens = [int(str(t).strip()) for t in items]
    except ValueError:
        raise ConfigError(f"subnet_tokens must be integers separated by commas, got {value!r}") from None
    space.decode(tokens)  # the space's own check: length and ranges, one line
    return tokens


def _in_order(dataset: Any, batch_size: int, shuffle: bool, drop_last: bool) -> paddle.io.BatchSampler:
    """Calibration batches in file order: the same images for every subnet."""
    return paddle.io.BatchSampler(dataset, batch_size=batch_size, shuffle=False, drop_last=drop_last)


class SupernetEvaluator:
    """Inherited-weight evaluation of subnets: BN calibration on train batches, then AP@0.5."""

    def __init__(self, cfg: Mapping[str, Any], supernet: BlazeFaceSupernet, task: BlazeFaceTask) -> None:
        self.cfg = cfg
        self.supernet = supernet
        self.task = task
        self.seed = int(cfg["seed"])
        self.calib_batches = int(cfg["calib_batches"])
        if self.calib_batches < 1:
            raise ConfigError(f"calib_batches must be at least 1, got {self.calib_batches}")
        self.loader = task.train_loader(_in_order)

    @classmethod
    def from_checkpoint(cls, cfg: Mapping[str, Any], phase: str = "search") -> "SupernetEvaluator":
        task = BlazeFaceTask(cfg)
        supernet = BlazeFaceSupernet(task.space, cfg)
        Checkpoint(cfg["save_dir"]).load_weights(supernet, cfg, phase)
        return cls(cfg, supernet, task)

    def calibration_batches(self) -> Iterator[Dict[str, paddle.Tensor]]:
        batches = epoch_batches(self.loader.batch_sampler, self.seed, 0)
        seed_everything(self.seed)  # the train transforms' random draws: the same for every subnet
        for indices in itertools.islice(itertools.cycle(batches), self.calib_batches):
            yield fetch(self.loader, indices)

    def inherit(self, model: paddle.nn.Layer, structure: Mapping[str, Any]) -> paddle.nn.Layer:
        """Calibrate the supernet's BN on `structure` and load its sliced weights into `model` (ppdet's BlazeFace)."""
        self.supernet.set_subnet(structure)
        calibrate_bn(self.supernet, self.calibration_batches(), self.calib_batches)
        model.set_state_dict(subnet_state_dict(self.supernet, model))
        return model

    def evaluate(self, tokens: Sequence[int]) -> float:
        model = self.task.build(tokens)
        return self.task.evaluate(self.inherit(model, self.task.decode(tokens)))


class SupernetTask:
    """The Task of ppnas.sanas.search whose reward is the inherited AP (nothing is trained)."""

    kind = "detection"

    def __init__(self, evaluator: SupernetEvaluator) -> None:
        self.evaluator = evaluator
        self.detection = evaluator.task
        self.space_name = self.detection.space_name
        self.space = self.detection.space
        self.input_shape = self.detection.input_shape
        self._built: Optional[Tuple[paddle.nn.Layer, Dict[str, Any]]] = None

    def decode(self, tokens: Sequence[int]) -> Dict[str, Any]:
        return self.detection.decode(tokens)

    def build(self, tokens: Sequence[int]) -> paddle.nn.Layer:
        model = self.detection.build(tokens)
        self._built = (model, self.decode(tokens))  # run_search evaluates the model it has just built
        return model

    def measurable(self, model: paddle.nn.Layer) -> paddle.nn.Layer:
        return self.detection.measurable(model)

    def train_and_evaluate(self, model: paddle.nn.Layer, on_iter: Optional[IterCallback] = None) -> float:
        if self._built is None or self._built[0] is not model:
            raise RuntimeError("train_and_evaluate must follow build() of the same model")
        return self.detection.evaluate(self.evaluator.inherit(model, self._built[1]))

    def export(self, tokens: Sequence[int], model: paddle.nn.Layer, save_dir: str) -> List[str]:
        return self.detection.export(tokens, model, save_dir)

    def summary(self, tokens: Sequence[int]) -> str:
        return self.detection.summary(tokens)


class _SamplingController:
    """The Controller protocol for samplers that learn nothing from rewards; already recorded subnets are
    skipped, so a resumed search goes on where it stopped."""

    def __init__(self, history: History) -> None:
        self.seen: Set[Tuple[int, ...]] = {tuple(r["tokens"]) for r in history.read()}

    def recorded(self, record: CandidateRecord) -> None:
        """Never draw a recorded subnet again; nothing to save: the history is the state."""
        self.seen.add(tuple(record.tokens))

    def info(self) -> Dict[str, Any]:
        return {}

    def close(self) -> None:
        """Nothing to release."""


class RandomController(_SamplingController):
    """Uniform draws over the space, each subnet at most once."""

    def __init__(self, range_table: Sequence[int], seed: int, history: History) -> None:
        super().__init__(history)
        self.range_table = list(range_table)
        self.rng = random.Random(seed)

    def next_tokens(self) -> List[int]:
        for _ in range(MAX_RANDOM_DRAWS):
            tokens = tuple(self.rng.randrange(n) for n in self.range_table)
            if tokens not in self.seen:
                self.seen.add(tokens)
                return list(tokens)
        raise SearchFinished(f"no unseen subnet in {MAX_RANDOM_DRAWS} random draws")


def traverse_tokens(range_table: Sequence[int], stride: int) -> Iterator[List[int]]:
    """Every token list whose tokens are multiples of `stride` (0, stride, 2*stride, ... per position)."""
    if stride < 1:
        raise ConfigError(f"traverse_stride must be at least 1, got {stride}")
    for tokens in itertools.product(*[range(0, n, stride) for n in range_table]):
        yield list(tokens)


class TraverseController(_SamplingController):
    """The space enumerated with a stride, in order; the search ends when it is exhausted."""

    def __init__(self, range_table: Sequence[int], stride: int, history: History) -> None:
        super().__init__(history)
        self.order = traverse_tokens(range_table, stride)

    def next_tokens(self) -> List[int]:
        for tokens in self.order:
            if tuple(tokens) not in self.seen:
                self.seen.add(tuple(tokens))
                return tokens
        raise SearchFinished("the traversal has visited every subnet")


def sampling_controller(cfg: Mapping[str, Any], range_table: Sequence[int], history: History) -> Optional[Any]:
    """The controller of `search_mode`; None for sanas (run_task opens the SANAS controller itself)."""
    mode = cfg["search_mode"]
    if mode not in SEARCH_MODES:
        raise ConfigError(f"search_mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
    if mode == "random":
        return RandomController(range_table, int(cfg["seed"]), history)
    if mode == "traverse":
        return TraverseController(range_table, int(cfg["traverse_stride"]), history)
    return None


def constraint_meta(constraint: Constraint) -> Dict[str, Any]:
    """The window as the report reads it from search_meta.json."""
    return {
        "ctype": constraint.ctype,
        "min_constraint": constraint.min_constraint,
        "max_constraint": constraint.max_constraint,
        "unit": constraint.window_text().split("]")[-1].strip(),
    }


def sample_flops(cfg: Mapping[str, Any], constraint: Constraint, quiet: bool = False) -> Dict[str, Any]:
    """Draw `flops_samples` random subnets, measure each as the search does, plot the distribution."""
    task = BlazeFaceTask(cfg)
    count = int(cfg["flops_samples"])
    if count < 1:
        raise ConfigError(f"flops_samples must be at least 1, got {count}")
    rng = random.Random(int(cfg["seed"]))

    def measure(tokens: List[int]) -> Dict[str, Any]:
        m = constraint.measure(task.measurable(task.build(tokens)), task.input_shape)
        return {
            "tokens": tokens,
            "flops": m.flops,
            "params": m.params,
            "latency_ms": m.latency_ms,
            "inside": constraint.admits(m),
        }

    samples = [
        measure([rng.randrange(n) for n in task.space.range_table()])
        for _ in tqdm(range(count), desc="sample_flops", unit="subnet", disable=quiet)
    ]
    baseline = measure(list(cfg["init_tokens"] or task.space.init_tokens()))
    save_dir = cfg["save_dir"]
    os.makedirs(save_dir, exist_ok=True)
    window = Window.from_meta(constraint_meta(constraint))
    title = f"{count} random subnets of {task.space_name} at {task.input_shape[-1]} px"
    png = plot_sample_distribution(samples, baseline, window, title, os.path.join(save_dir, SAMPLE_FLOPS_PNG))
    flops = sorted(s["flops"] for s in samples)
    summary = {
        "samples": count,
        "inside_window": sum(s["inside"] for s in samples),
        "window": constraint.window_text(),
        "baseline": baseline,
        "baseline_flops_percentile": 100.0 * sum(f <= baseline["flops"] for f in flops) / count,
        "flops_quantiles": {q: flops[min(count - 1, int(q / 100 * count))] for q in (5, 25, 50, 75, 95)},
        "png": png,
    }
    with open(os.path.join(save_dir, SAMPLE_FLOPS_JSON), "w", encoding="utf-8") as f:
        json.dump({**summary, "subnets": samples}, f)
    return summary
