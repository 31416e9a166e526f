"""Pricing one-shot subnets at the speed of the search: the Constraint's measurement summed over cached parts.

`Constraint.measure` traces the whole plain model of every subnet (tens of ms at 640 px). But the op keys, the
FLOPs and the params of one part of a network (the stem, a block, a head branch) depend only on that part's own
settings and on the shape of its input, and a space of 10^5 subnets has a few hundred distinct parts. So a
supernet that lists its subnet's parts (`Supernet.price_parts`) is priced by tracing each distinct (part, input
shape) once, with the same trace as `Constraint.measure` (latency.flops.trace_with_flops: same keys, same FLOPs
rules), caching what the table makes of its ops (latency.estimate.OpClasses), its FLOPs, params and output shape,
and summing. The table's lookup, missing-key policy and calibration then apply to the summed keys exactly as
they apply to the whole model's (latency.estimate.price_ops), so the result is the full trace's.

Why the sum is exact:
- keys and FLOPs are per op and per counted layer call, and every op of the model runs in exactly one part;
- params: the parts hold every parameter of the model once (the supernet's contract, checked by the tests);
- a part's input shape comes from the cached output shape of the part feeding it, never from arithmetic, and
  is in the cache key with the part's settings;
- fusion (a table whose engine folds BN/bias/activations into the conv before, latency/fusion.py) looks at an
  op's producer and at how many ops read a tensor, which can cross a part boundary. A part in which an op the
  table folds reads the part's input or its output is marked `exact=False`, and a subnet with such a part is
  priced by the full trace; elsewhere every producer and every reader of the tensors the fold looks at lies in
  the part, so the part's folds are the whole model's.
"""

import contextlib
import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle

from latency.estimate import OpClasses, classify_ops, nearest_key, price_ops
from latency.flops import trace_with_flops
from latency.fusion import fusable_kind, fused_ops, table_fuses
from ppnas.constraint import Constraint, Measurement, count_params
from ppnas.oneshot.adapters import adapter_class

IMAGE = "image"  # the traced program's input variable (latency.opkeys)
EXTRA_INPUT = "price_input_"  # a part's further inputs: static inputs of its program
Shape = Tuple[int, ...]


Source = Optional[Tuple[int, int]]  # (index of a part, which of its output tensors); None: the image


@dataclass(frozen=True)
class PricePart:
    """One part of a subnet's plain model.

    `key` holds every setting its ops depend on besides its input shapes; `layer` gives the part's layer (called
    on a cache miss only, with a function returning the subnet's plain model, built on its first call: a part may
    be cut from it or, cheaper, built alone); `inputs` are what the layer's forward takes, in order (the first is
    the traced program's input, the others static inputs of the same program)."""

    key: Hashable
    layer: Callable[[Callable[[], paddle.nn.Layer]], paddle.nn.Layer]
    inputs: Tuple[Source, ...]


def after(index: int) -> Tuple[Source, ...]:
    """The inputs of a part reading the first output of part `index`."""
    return ((index, 0),)


@dataclass
class PartPrice:
    """A part traced alone at its input shapes."""

    flops: int
    params: int
    classes: Optional[OpClasses]  # None without a table
    outputs: Tuple[Shape, ...]  # the shapes of the tensors it returns, in order
    exact: bool  # False: a fold crosses its boundary (see the module docstring)


@contextlib.contextmanager
def kept_rng() -> Iterator[None]:
    """Run the body without moving paddle's, numpy's or Python's global RNG: building a layer draws its initial
    weights, and what a phase draws next must not depend on how many parts (or models) pricing built (a resumed
    run starts with an empty cache)."""
    state = paddle.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        paddle.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])


class _Part(paddle.nn.Layer):
    """The part on the traced input and static inputs of `extra` shapes, remembering the names of the tensors it
    returns (their shapes feed the parts that read them)."""

    def __init__(self, part: paddle.nn.Layer, extra: Sequence[Shape]) -> None:
        super().__init__()
        self.part = part
        self.extra = list(extra)
        self.inputs = [IMAGE] + [f"{EXTRA_INPUT}{i}" for i in range(1, len(self.extra) + 1)]
        self.outputs: List[str] = []

    def forward(self, x: paddle.Tensor) -> Any:
        extra = [paddle.static.data(name, list(shape), "float32") for name, shape in zip(self.inputs[1:], self.extra)]
        y = self.part(x, *extra)
        self.outputs = [v.name for v in (y if isinstance(y, (list, tuple)) else [y])]  # their shapes feed other parts
        return y


class SubnetPricer:
    """`constraint`'s Measurement of a subnet of `supernet`, summed over cached parts when the supernet lists them
    (`full_trace=True`, or a supernet without `price_parts`: `Constraint.measure` of the whole plain model)."""

    def __init__(
        self,
        supernet: Any,
        constraint: Constraint,
        measurable: Callable[[paddle.nn.Layer], paddle.nn.Layer],
        full_trace: bool = False,
    ) -> None:
        self.supernet = supernet
        self.constraint = constraint
        self.measurable = measurable
        self.full_trace = full_trace
        self.parts: Dict[Tuple[Hashable, Tuple[Shape, ...]], PartPrice] = {}
        self.substitutes: Dict[str, Optional[str]] = {}  # missing key -> nearest_key's choice (a table scan each)

    def measure_full(self, subnet: Any) -> Measurement:
        """The reference: one trace of the subnet's whole plain model."""
        with kept_rng():
            return self.constraint.measure(self.measurable(self.supernet.plain_model(subnet)), subnet.image_size)

    def measure(self, subnet: Any) -> Measurement:
        """The subnet's Measurement at its own image size (the full trace's, see the module docstring)."""
        parts = None if self.full_trace else self.supernet.price_parts(subnet)
        if parts is None:
            return self.measure_full(subnet)
        image = tuple(subnet.image_size)
        model: List[paddle.nn.Layer] = []  # the subnet's plain model, built on the first miss only

        def plain() -> paddle.nn.Layer:
            if not model:
                model.append(self.supernet.plain_model(subnet))
            return model[0]

        priced: List[PartPrice] = []
        for part in parts:
            shapes = tuple(image if source is None else priced[source[0]].outputs[source[1]] for source in part.inputs)
            cached = self.parts.get((part.key, shapes))
            if cached is None:
                with kept_rng():
                    cached = self.parts[(part.key, shapes)] = self._trace(part.layer(plain), shapes)
            priced.append(cached)
        if not all(p.exact for p in priced):
            return self.measure_full(subnet)
        measurement = Measurement(flops=float(sum(p.flops for p in priced)), params=sum(p.params for p in priced))
        table = self.constraint.table
        if table is not None:
            classes = OpClasses()
            for p in priced:
                classes.extend(p.classes)
            estimate = price_ops(classes, table, self.constraint.missing_keys, self._nearest)
            measurement.latency = estimate.total
            measurement.latency_unit = estimate.unit
            measurement.latency_ms = estimate.latency_ms
            measurement.substitutions = list(estimate.substitutions)
        return measurement

    def _trace(self, layer: paddle.nn.Layer, shapes: Tuple[Shape, ...]) -> PartPrice:
        part = _Part(layer, shapes[1:])
        traced, flops = trace_with_flops(part, shapes[0])
        outputs = tuple(tuple(traced.shape(name)) for name in part.outputs)
        table, classes, exact = self.constraint.table, None, True
        if table is not None:
            ops = traced.ops()
            fuses = table_fuses(table)
            classes = classify_ops(ops, table, fused_ops(ops, fuses))
            boundary = {*part.inputs, *part.outputs}
            exact = not any(fusable_kind(op) in fuses and boundary.intersection(op.inputs) for op in ops)
        return PartPrice(flops, count_params(layer), classes, outputs, exact)

    def _nearest(self, key: str, table: Any) -> Optional[str]:
        if key not in self.substitutes:
            self.substitutes[key] = nearest_key(key, table)
        return self.substitutes[key]


def subnet_pricer(
    supernet: Any, constraint: Constraint, cfg: Mapping[str, Any], full_trace: bool = False
) -> SubnetPricer:
    """The pricer the one-shot phases share (the task's measurable model, as the search measures it)."""
    return SubnetPricer(supernet, constraint, adapter_class(cfg).measurable, full_trace)
