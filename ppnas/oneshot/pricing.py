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

from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Tuple

import paddle

from latency.estimate import OpClasses, classify_ops, nearest_key, price_ops
from latency.flops import trace_with_flops
from latency.fusion import fusable_kind, fused_ops, table_fuses
from ppnas.constraint import Constraint, Measurement, count_params
from ppnas.errors import ConfigError

IMAGE = "image"  # the traced program's input variable (latency.opkeys)
Shape = Tuple[int, ...]


@dataclass(frozen=True)
class PricePart:
    """One part of a subnet's plain model: `key` holds every setting its ops depend on besides its input shape,
    `layer` gives the part's layer (called on a cache miss only, with a function returning the subnet's plain
    model, built on its first call: a part may be cut from it or, cheaper, built alone), `source` is the index of
    the part whose output it reads (None: the image)."""

    key: Hashable
    layer: Callable[[Callable[[], paddle.nn.Layer]], paddle.nn.Layer]
    source: Optional[int]


@dataclass
class PartPrice:
    """A part traced alone at one input shape."""

    flops: int
    params: int
    classes: Optional[OpClasses]  # None without a table
    output_shape: Optional[Shape]  # None when the part returns several tensors (nothing may read it)
    exact: bool  # False: a fold crosses its boundary (see the module docstring)


class _Output(paddle.nn.Layer):
    """The part, remembering the name of the variable it returns (its output's shape feeds the next part)."""

    def __init__(self, part: paddle.nn.Layer) -> None:
        super().__init__()
        self.part = part
        self.output: Optional[str] = None

    def forward(self, x: paddle.Tensor) -> Any:
        y = self.part(x)
        self.output = y.name if isinstance(y, paddle.static.Variable) else None
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
        self.parts: Dict[Tuple[Hashable, Shape], PartPrice] = {}
        self.substitutes: Dict[str, Optional[str]] = {}  # missing key -> nearest_key's choice (a table scan each)

    def measure_full(self, subnet: Any) -> Measurement:
        """The reference: one trace of the subnet's whole plain model."""
        return self.constraint.measure(self.measurable(self.supernet.plain_model(subnet)), subnet.image_size)

    def measure(self, subnet: Any) -> Measurement:
        parts = None if self.full_trace else self.supernet.price_parts(subnet)
        if parts is None:
            return self.measure_full(subnet)
        image = tuple(subnet.image_size)
        model: List[paddle.nn.Layer] = []  # the subnet's plain model, built on the first miss only

        def plain() -> paddle.nn.Layer:
            if not model:
                model.append(self.supernet.plain_model(subnet))
            return model[0]

        outputs: List[Optional[Shape]] = []
        priced: List[PartPrice] = []
        for index, part in enumerate(parts):
            shape = image if part.source is None else outputs[part.source]
            if shape is None:
                raise ConfigError(f"price part {index} ({part.key}) reads a part that returns several tensors")
            cached = self.parts.get((part.key, shape))
            if cached is None:
                cached = self.parts[(part.key, shape)] = self._trace(part.layer(plain), shape)
            priced.append(cached)
            outputs.append(cached.output_shape)
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

    def _trace(self, layer: paddle.nn.Layer, shape: Shape) -> PartPrice:
        part = _Output(layer)
        traced, flops = trace_with_flops(part, shape)
        output = tuple(traced.shape(part.output)) if part.output else None
        table, classes, exact = self.constraint.table, None, True
        if table is not None:
            ops = traced.ops()
            fuses = table_fuses(table)
            classes = classify_ops(ops, table, fused_ops(ops, fuses))
            boundary = {IMAGE, part.output}
            exact = not any(fusable_kind(op) in fuses and boundary.intersection(op.inputs) for op in ops)
        return PartPrice(flops, count_params(layer), classes, output, exact)

    def _nearest(self, key: str, table: Any) -> Optional[str]:
        if key not in self.substitutes:
            self.substitutes[key] = nearest_key(key, table)
        return self.substitutes[key]


def subnet_pricer(
    supernet: Any, constraint: Constraint, cfg: Mapping[str, Any], full_trace: bool = False
) -> SubnetPricer:
    """The pricer the one-shot phases share (the task's measurable model, as the search measures it)."""
    from ppnas.oneshot.adapters import adapter_class

    return SubnetPricer(supernet, constraint, adapter_class(cfg).measurable, full_trace)
