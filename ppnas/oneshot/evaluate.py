"""Inherited-weight evaluation of a subnet of any registered supernet: BN calibrated on the subnet, the supernet's
weights sliced into the subnet's plain model, the task's metric at the subnet's input size."""

import itertools
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle

from ppnas.constraint import Constraint, Measurement
from ppnas.engine.protocols import IterCallback
from ppnas.engine.seeding import seed_everything
from ppnas.oneshot.adapters import adapter_for
from ppnas.oneshot.algorithm import calibrate_bn
from ppnas.oneshot.checkpoint import Checkpoint
from ppnas.oneshot.export import subnet_state_dict
from ppnas.oneshot.pricing import SubnetPricer
from ppnas.oneshot.space import Subnet
from ppnas.oneshot.supernet import Supernet, build_supernet, record_structure
from ppnas.oneshot.train import epoch_batches

# Calibration batches are fetched once and reused for every subnet when they fit in this much memory (the demo's
# 4 x 16 images at 160 px: 20 MB); larger ones (WIDER FACE's 50 x 8 at 640 px: 2 GB) are fetched again each time.
CALIBRATION_CACHE_BYTES = 256 * 2**20


def _in_order(dataset: Any, batch_size: int, shuffle: bool, drop_last: bool) -> paddle.io.BatchSampler:
    """Calibration batches in file order: the same images for every subnet."""
    return paddle.io.BatchSampler(dataset, batch_size=batch_size, shuffle=False, drop_last=drop_last)


def _nbytes(batch: Mapping[str, Any]) -> int:
    return sum(int(np.prod(v.shape)) * 4 for v in batch.values() if isinstance(v, paddle.Tensor))


class SupernetEvaluator:
    """Inherited-weight evaluation of subnets: BN calibration (calib_batches, calib_transforms, calib_file), then
    the task's metric."""

    def __init__(self, cfg: Mapping[str, Any], supernet: Supernet, adapter: Any) -> None:
        self.cfg = cfg
        self.supernet = supernet
        self.adapter = adapter
        self.seed = int(cfg["seed"])
        self.calib_batches = int(cfg["calib_batches"])
        self.interpolation = str(cfg["interpolation_type"])
        self.transforms = str(cfg["calib_transforms"])
        self.loader = adapter.calibration_loader(_in_order, self.transforms, cfg["calib_file"])
        # an eval-transformed image runs at the size the task scores it at: whole images keep theirs
        self.resize = not (self.transforms == "eval" and adapter.whole_images)
        self._cached: Optional[List[Dict[str, Any]]] = None

    @classmethod
    def from_checkpoint(cls, cfg: Mapping[str, Any], phase: str = "search") -> "SupernetEvaluator":
        adapter = adapter_for(cfg)
        supernet = build_supernet(cfg)
        Checkpoint.of(cfg).load_weights(supernet, cfg, phase)
        return cls(cfg, supernet, adapter)

    def calibration_batches(self) -> List[Dict[str, Any]]:
        """The first `calib_batches` batches of the train set (or `calib_file`) in file order, cycled, through the
        train transforms seeded by `seed` or the eval transforms (`calib_transforms`): the same images for every
        subnet (kept in memory when they fit CALIBRATION_CACHE_BYTES)."""
        if self._cached is not None:
            return self._cached
        indices = itertools.islice(
            itertools.cycle(epoch_batches(self.loader.batch_sampler, self.seed, 0)), self.calib_batches
        )
        seed_everything(self.seed)  # the train transforms' random draws
        batches = [self.adapter.fetch(self.loader, index) for index in indices]
        if sum(_nbytes(b) for b in batches) <= CALIBRATION_CACHE_BYTES:
            self._cached = batches
        return batches

    def inherit(self, model: paddle.nn.Layer, subnet: Subnet) -> paddle.nn.Layer:
        """Calibrate the supernet's BN on `subnet` and load its sliced weights into `model` (its plain model)."""
        self.supernet.set_subnet(subnet)
        calibrate_bn(self.supernet, self.adapter, self.calibration_batches(), self.interpolation, self.resize)
        model.set_state_dict(subnet_state_dict(self.supernet, model, subnet))
        return model

    def evaluate(self, tokens: Sequence[int]) -> float:
        subnet = self.supernet.space.decode(tokens)
        model = self.inherit(self.supernet.plain_model(subnet), subnet)
        return self.adapter.evaluate(model, subnet.image_size)


class SupernetTask:
    """The engine's Task whose reward is the inherited metric (nothing is trained)."""

    def __init__(self, evaluator: SupernetEvaluator) -> None:
        self.evaluator = evaluator
        self.supernet = evaluator.supernet
        self.adapter = evaluator.adapter
        self.kind = self.adapter.kind
        self.space = self.supernet.space
        self.space_name = self.space.name
        self.input_shape = list(self.space.image_size_list[-1])
        self.report_module = self.supernet.report_module  # its write_fragment and hints name the exported files
        self._built: Optional[Tuple[paddle.nn.Layer, Subnet]] = None
        self._pricers: List[SubnetPricer] = []  # one per constraint priced (sample_accuracy has two)

    def decode(self, tokens: Sequence[int]) -> Dict[str, Any]:
        return record_structure(self.supernet, self.space.decode(tokens))

    def measure_shape(self, tokens: Sequence[int]) -> List[int]:
        """The input a subnet is measured at: its own resolution."""
        return list(self.space.decode(tokens).image_size)

    def price(self, constraint: Constraint, tokens: Sequence[int]) -> Measurement:
        """The constraint's Measurement of the subnet at its own resolution, from cached parts (pricing.py)."""
        pricer = next((p for p in self._pricers if p.constraint is constraint), None)
        if pricer is None:
            pricer = SubnetPricer(self.supernet, constraint, self.measurable)
            self._pricers.append(pricer)
        return pricer.measure(self.space.decode(tokens))

    def build(self, tokens: Sequence[int]) -> paddle.nn.Layer:
        subnet = self.space.decode(tokens)
        model = self.supernet.plain_model(subnet)
        self._built = (model, subnet)  # run_search evaluates the model it has just built
        return model

    def measurable(self, model: paddle.nn.Layer) -> paddle.nn.Layer:
        return self.adapter.measurable(model)

    def train_and_evaluate(self, model: paddle.nn.Layer, on_iter: Optional[IterCallback] = None) -> float:
        if self._built is None or self._built[0] is not model:
            raise RuntimeError("train_and_evaluate must follow build() of the same model")
        subnet = self._built[1]
        return self.adapter.evaluate(self.evaluator.inherit(model, subnet), subnet.image_size)

    def export(self, tokens: Sequence[int], model: paddle.nn.Layer, save_dir: str) -> List[str]:
        return self.supernet.export(self.space.decode(tokens), model, save_dir)

    def summary(self, tokens: Sequence[int]) -> str:
        return self.supernet.summary(self.space.decode(tokens))
