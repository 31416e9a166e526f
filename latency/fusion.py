"""Ops an engine folds into the conv before them, so that they cost nothing in a whole model.

Timed alone, a batch norm, a bias add or a ReLU costs what any one-op model costs; in a real network
onnxruntime and MNN fold them into the conv that feeds them (measured here: conv+BN+ReLU runs exactly as
long as the conv, docs/latency.md). A table records what its engine folds in the header setting
`fuses=batch_norm|bias|relu...` (written by the builder from the engine adapter), and the estimate prices
such an op at 0 when it reads the output of a conv (or of an op already folded into one) that nothing else
reads. A table without the setting (latency_855.txt, Paddle Inference without MKLDNN) folds nothing.
"""

from collections import Counter
from typing import Collection, List, Sequence, Set

from latency.opkeys import OpRecord
from latency.table import ACTIVATIONS, LatencyTable

FUSES_KEY = "fuses"
FUSES_SEP = "|"
CONV_TYPES = frozenset({"conv2d", "depthwise_conv2d"})
BIAS = "bias"  # an elementwise add of a broadcast constant (a conv's bias, a separate op in Paddle programs)
FUSABLE = frozenset({"batch_norm", BIAS, *ACTIVATIONS})


def fusable_kind(op: OpRecord) -> str:
    """What `op` is when an engine could fold it into a conv: 'batch_norm', 'bias', an activation, or ''."""
    if op.op_type == "batch_norm":
        return "batch_norm"
    if op.op_type == "elementwise_add" and op.spec.get("y_dims") not in (None, op.spec.get("dims")):
        return BIAS
    return op.op_type if op.op_type in ACTIVATIONS else ""


def table_fuses(table: LatencyTable) -> List[str]:
    return [kind for kind in table.settings.get(FUSES_KEY, "").split(FUSES_SEP) if kind]


def fused_ops(ops: Sequence[OpRecord], fuses: Collection[str]) -> Set[int]:
    """Indexes of the ops folded into the conv before them, for an engine that folds the kinds `fuses`."""
    if not fuses:
        return set()
    readers = Counter(name for op in ops for name in op.inputs)
    folded_into_conv: Set[str] = set()  # outputs of a conv, or of an op folded into one
    fused = set()
    for index, op in enumerate(ops):
        if op.op_type in CONV_TYPES:
            folded_into_conv.update(op.outputs)
            continue
        sources = [name for name in op.inputs if name in folded_into_conv]
        if fusable_kind(op) in fuses and sources and all(readers[name] == 1 for name in sources):
            fused.add(index)
            folded_into_conv.update(op.outputs)
    return fused
