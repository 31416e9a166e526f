"""Inherited-weight evaluation of a subnet: BN calibrated on the subnet, the supernet's weights sliced into
PaddleDetection's own BlazeFace at that subnet, AP@0.5 with the detection task's evaluation."""

import itertools
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import paddle

from ppnas.engine.protocols import IterCallback
from ppnas.engine.seeding import seed_everything
from ppnas.errors import ConfigError
from ppnas.oneshot.algorithm import calibrate_bn
from ppnas.oneshot.checkpoint import Checkpoint
from ppnas.oneshot.export import subnet_state_dict
from ppnas.oneshot.supernet import BlazeFaceSupernet
from ppnas.oneshot.train import epoch_batches, fetch
from ppnas.tasks.detection import BlazeFaceTask

# The report reads a search's fragment writer, training and export hints from the task's module (search_meta.json
# names SupernetTask's module): an exported subnet is the detection task's BlazeFace, so they are the detection task's.
from ppnas.tasks.detection import EXPORT_HINT, FULL_TRAIN_HINT, write_fragment  # noqa: F401, E402  # isort: skip


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
        Checkpoint.of(cfg).load_weights(supernet, cfg, phase)
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
    """The engine's Task whose reward is the inherited AP (nothing is trained)."""

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
