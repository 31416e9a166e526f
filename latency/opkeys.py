"""List the ops a dygraph model executes for one image and name them with latency-table keys.

The convention is PaddleSlim's (the one latency_855.txt was built with): a key describes one Paddle op as
it runs, batch 1, so a conv2d key never includes its bias or activation (they are separate
elementwise_add / relu ops: flag_bias and flag_relu are 0). Padding is the padding that really applies:
'SAME' is resolved per side the way Paddle's conv kernel does (and forces dilation 1), 'VALID' is 0.

The ops come from the static program Paddle builds for the layer on one image of the given shape: every
op is listed (functional calls such as F.relu and paddle.add included), with its shapes, and no compute
runs, so the cost does not grow with the input size (about 40 ms for BlazeFace at 640). The program is
built by calling the layer's own forward in static mode (no AST conversion: about 15x faster than
`paddle.jit.to_static`); a forward with tensor-dependent Python control flow falls back to `to_static`.
When the program leaves a size open (PaddleSeg resizes to `paddle.shape(x)[2:]`, a runtime value), the
program is run once on zeros with the layer's weights to learn it (a forward's cost, for such models only).

Key extras for non-square shapes follow PaddleSlim: after the base fields come kernel_w (if != kernel_h),
the padding extras, stride_w, dilation_w (each only when it differs). Padding extras: pad_w when
top == bottom and left == right but h != w; bottom, left, right when the padding is asymmetric.
"""

import contextlib
import math
import types
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import paddle

from latency.table import ACTIVATIONS, op_kind
from ppnas.errors import TableError

try:  # Paddle 2.6's private program-building internals: check_paddle_version() guards their use
    from paddle.base import core, framework
    from paddle.base.dygraph.base import _to_static_mode_guard_, switch_to_static_graph
    from paddle.base.unique_name import UniqueNameGenerator
    from paddle.base.unique_name import guard as UniqueNameGuard
    from paddle.jit.dy2static.program_translator import ProgramTranslator
except ImportError:  # another Paddle: the first trace stops with check_paddle_version's message

    def switch_to_static_graph(function: Any) -> Any:
        return function


PADDLE_SERIES = "2.6"  # the Paddle these internals were read from (and tested on)
_version_checked = False

ELTWISE_KIND = {"elementwise_mul": 1, "elementwise_add": 2}
ELTWISE_OPS = {"elementwise_add", "elementwise_sub", "elementwise_mul", "elementwise_div", "elementwise_max"}
INTERP_OPS = {"bilinear_interp_v2": "bilinear", "nearest_interp_v2": "nearest", "bicubic_interp_v2": "bicubic"}
# ops that cost nothing at inference: metadata, constants, and dropout (removed by the inference passes)
FREE_OPS = {
    "feed",
    "fetch",
    "fetch_v2",
    "reshape2",
    "squeeze2",
    "unsqueeze2",
    "shape",
    "fill_constant",
    "assign_value",
    "dropout",
}
SHAPE_ARITHMETIC_MAX = 8  # an op on a 1-D tensor this small computes sizes (slice of paddle.shape(x), cast)
# pool_type field: PaddleSlim's own code cannot tell max from exclusive avg (both 3); ours can
POOL_TYPE = {("max", False): 1, ("max", True): 1, ("avg", False): 2, ("avg", True): 3}


@dataclass
class OpRecord:
    """One executed op: its Paddle type, its table key (None when outside the format family) and the
    parameters the table builder needs to rebuild it alone (`spec`)."""

    op_type: str
    key: Optional[str]
    spec: Dict[str, Any] = field(default_factory=dict)
    free: bool = False  # costs nothing at inference (see FREE_OPS): never priced, never reported
    inputs: Tuple[str, ...] = ()  # the variables it reads and writes (latency/fusion.py follows them)
    outputs: Tuple[str, ...] = ()

    @property
    def kind(self) -> Optional[str]:
        return op_kind(self.key) if self.key else None


def _pairs(values: Sequence[int]) -> Tuple[int, int]:
    values = list(values)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def effective_padding(
    padding: Sequence[int],
    algorithm: str,
    in_hw: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int] = (1, 1),
) -> Tuple[Tuple[int, int, int, int], Tuple[int, int]]:
    """(top, bottom, left, right) padding and the dilation Paddle really uses (paddle's
    UpdatePaddingAndDilation: 'SAME' puts the odd pixel after and sets dilation to 1)."""
    if algorithm == "VALID":
        return (0, 0, 0, 0), tuple(dilation)
    if algorithm == "SAME":
        pads = []
        for size, k, s in zip(in_hw, kernel, stride):
            out = (size + s - 1) // s
            total = max((out - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads), (1, 1)
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1]), tuple(dilation)
    if len(padding) == 4:
        return tuple(padding), tuple(dilation)
    raise TableError(f"cannot read padding {padding}: expected 2 or 4 values")


def _padding_fields(pads: Tuple[int, int, int, int]) -> Tuple[int, List[int]]:
    top, bottom, left, right = pads
    if top == bottom and left == right:
        return top, ([] if top == left else [left])
    return top, [bottom, left, right]


def conv_key(spec: Dict[str, Any]) -> str:
    kh, kw = spec["kernel"]
    sh, sw = spec["stride"]
    dh, dw = spec["dilation"]
    pad, pad_extra = _padding_fields(spec["padding"])
    fields = ["conv", 0, 0, 1, spec["c_in"], spec["h"], spec["w"], spec["c_out"], spec["groups"], kh, pad, sh, dh]
    extras = ([kw] if kw != kh else []) + pad_extra + ([sw] if sw != sh else []) + ([dw] if dw != dh else [])
    return ",".join(str(v) for v in fields + extras)


def conv_spec(
    in_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    algorithm: str,
    dilation: Sequence[int],
    groups: int,
) -> Dict[str, Any]:
    _, c_in, h, w = (int(v) for v in in_shape)
    kernel = (int(weight_shape[2]), int(weight_shape[3]))
    stride = _pairs(stride)
    pads, dilation = effective_padding(padding, algorithm, (h, w), kernel, stride, _pairs(dilation))
    return dict(
        op="conv",
        c_in=c_in,
        h=h,
        w=w,
        c_out=int(weight_shape[0]),
        groups=int(groups),
        kernel=kernel,
        padding=pads,
        stride=stride,
        dilation=dilation,
    )


def fc_spec(in_features: int, out_features: int) -> Dict[str, Any]:
    """A fully connected layer as PaddleSlim prices it: a 1x1 conv on a 1x1 map."""
    return dict(
        op="conv",
        c_in=int(in_features),
        h=1,
        w=1,
        c_out=int(out_features),
        groups=1,
        kernel=(1, 1),
        padding=(0, 0, 0, 0),
        stride=(1, 1),
        dilation=(1, 1),
    )


def _nchw(shape: Sequence[int]) -> Optional[List[int]]:
    shape = [int(v) for v in shape]
    if len(shape) > 4:
        return None
    return shape[1:] + [1] * (4 - len(shape))


@switch_to_static_graph
def _forward_program(layer: paddle.nn.Layer, input_shape: Sequence[int]) -> paddle.static.Program:
    """Run the plain forward on a static input (what to_static does, minus its AST conversion)."""
    main, startup = framework.Program(), framework.Program()
    try:
        with framework.program_guard(main, startup), _to_static_mode_guard_(is_to_static=True):
            with UniqueNameGuard(UniqueNameGenerator()):
                layer(paddle.static.data("image", list(input_shape), "float32"))
    finally:
        # to_static's recorder of the parameters a program uses: only to_static pops it, so without this
        # every traced candidate's parameters would stay referenced for the life of the process
        ProgramTranslator.get_instance()._params_recorder.pop(main)
    return main


@contextlib.contextmanager
def _without_op_callstacks() -> Iterator[None]:
    """Paddle stores the Python stack of every op it appends (traceback.extract_stack in Operator.__init__,
    about a fifth of a trace); the keys never read it: it only feeds the error messages of a running program.
    `traceback` is used nowhere else in paddle.base.framework."""
    saved = framework.traceback
    framework.traceback = types.SimpleNamespace(extract_stack=list)
    try:
        yield
    finally:
        framework.traceback = saved


def check_paddle_version(version: Optional[str] = None) -> None:
    """Stop with a clear message on a Paddle other than PADDLE_SERIES: the tracing relies on its private
    internals (paddle.base.framework program building, the to_static guard, its parameter recorder), which
    other versions rename or change without notice, so a key could silently come out wrong."""
    version = version or paddle.__version__
    if version.split(".")[:2] != PADDLE_SERIES.split("."):
        raise TableError(
            f"latency/opkeys.py was written for Paddle {PADDLE_SERIES}.x (it uses private paddle.base internals) "
            f"and this is Paddle {version}: install paddlepaddle==2.6.2 (constraints.txt)"
        )


def traced_program(layer: paddle.nn.Layer, input_shape: Sequence[int]) -> paddle.static.Program:
    """The static program Paddle builds for `layer` on one float32 image of `input_shape` (eval mode)."""
    global _version_checked
    if not _version_checked:  # once per process
        check_paddle_version()
        _version_checked = True
    was_training = layer.training
    layer.eval()
    try:
        try:
            with _without_op_callstacks():
                return _forward_program(layer, input_shape)
        except (TypeError, ValueError, AssertionError):  # e.g. `if tensor > 0:` on a static Variable
            spec = [paddle.static.InputSpec(list(input_shape), "float32", "image")]
            function = paddle.jit.to_static(layer.forward, input_spec=spec, full_graph=True)
            return function.concrete_program.main_program
    finally:
        if was_training:
            layer.train()


@dataclass
class Trace:
    """A layer's static program on one image, with the shapes the program leaves open (learned by a run)."""

    program: paddle.static.Program
    known: Dict[str, List[int]]

    def shape(self, name: str) -> List[int]:
        dims = self.known.get(name) or list(self.program.global_block().var(name).shape)
        if any(d < 0 for d in dims):
            raise TableError(f"cannot derive op keys or FLOPs: variable '{name}' has an unknown shape {dims}")
        return dims

    def ops(self) -> List[OpRecord]:
        return program_ops(self.program, self.known)


def trace(layer: paddle.nn.Layer, input_shape: Sequence[int]) -> Trace:
    program = traced_program(layer, input_shape)
    unknown = _unknown_shape_vars(program)
    return Trace(program, _run_for_shapes(program, layer, input_shape, unknown) if unknown else {})


def trace_ops(layer: paddle.nn.Layer, input_shape: Sequence[int]) -> List[OpRecord]:
    """Every op of the traced program, in execution order, with its key."""
    return trace(layer, input_shape).ops()


def _unknown_shape_vars(program: paddle.static.Program) -> List[str]:
    """Tensors whose static shape has a -1 (e.g. PaddleSeg resizes to `paddle.shape(x)[2:]`, a runtime value)."""
    block = program.global_block()
    if not any(d < 0 for var in block.vars.values() for d in var.shape):
        return []  # the usual case, seen without walking the ops
    used = {name for op in block.ops for name in (*op.input_arg_names, *op.output_arg_names)}
    unknown = []
    for name in used:
        var = block._find_var_recursive(name)
        if var is not None and var.type == core.VarDesc.VarType.LOD_TENSOR and any(d < 0 for d in var.shape):
            unknown.append(name)
    return sorted(unknown)


@switch_to_static_graph
def _run_for_shapes(
    program: paddle.static.Program, layer: paddle.nn.Layer, input_shape: Sequence[int], names: List[str]
) -> Dict[str, List[int]]:
    """Run the program once on zeros (with the layer's weights) to learn the shapes of `names`."""
    scope, place = paddle.static.Scope(), paddle.CPUPlace()
    block = program.global_block()
    with paddle.static.scope_guard(scope):
        for tensor in [*layer.parameters(), *layer.buffers()]:
            if block.has_var(tensor.name):
                scope.var(tensor.name).get_tensor().set(tensor.numpy(), place)
        feed = {"image": np.zeros(list(input_shape), dtype="float32")}
        # further static inputs (ppnas/oneshot/pricing.py traces a part of a model on several tensors)
        feed.update(
            {v.name: np.zeros(v.shape, "float32") for v in block.vars.values() if v.is_data and v.name not in feed}
        )
        values = paddle.static.Executor(place).run(program, feed=feed, fetch_list=names, return_numpy=False)
    return {name: list(np.array(value).shape) for name, value in zip(names, values)}


def program_ops(program: paddle.static.Program, known: Optional[Dict[str, List[int]]] = None) -> List[OpRecord]:
    """Records of every op of `program`; `known` gives the shapes of tensors the program leaves open."""
    shape = Trace(program, known or {}).shape

    def first(op: Any, slot: str) -> List[int]:
        return shape(op.input(slot)[0])

    records = []
    for op in program.global_block().ops:
        if op.type in FREE_OPS or _is_shape_arithmetic(op, shape):
            record = OpRecord(op.type, None, free=True)
        else:
            record = _record(op, first, shape)
        record.inputs, record.outputs = tuple(op.input_arg_names), tuple(op.output_arg_names)
        records.append(record)
    return records


def _is_shape_arithmetic(op: Any, shape: Any) -> bool:
    names = op.input_arg_names
    if not names:
        return False
    try:
        dims = [shape(name) for name in names]
    except (TableError, ValueError):
        return False
    return all(len(d) <= 1 and (not d or d[0] <= SHAPE_ARITHMETIC_MAX) for d in dims)


def _record(op: Any, first: Any, shape: Any) -> OpRecord:
    kind = op.type
    if kind in ("conv2d", "depthwise_conv2d"):
        spec = conv_spec(
            first(op, "Input"),
            first(op, "Filter"),
            op.attr("strides"),
            op.attr("paddings"),
            op.attr("padding_algorithm"),
            op.attr("dilations"),
            op.attr("groups"),
        )
        return OpRecord(kind, conv_key(spec), spec)
    if kind in ("matmul_v2", "mul") and len(first(op, "Y")) == 2:
        x = first(op, "X")
        spec = fc_spec(math.prod(x[1:]), first(op, "Y")[1])
        return OpRecord(kind, conv_key(spec), spec)
    if kind == "batch_norm":
        dims = _nchw(first(op, "X"))
        spec = dict(op="batch_norm", c=dims[0], h=dims[1], w=dims[2])
        return OpRecord(kind, ",".join(map(str, ["batch_norm", "None", 1, *dims])), spec)
    if kind in ACTIVATIONS:
        dims = _nchw(first(op, "X"))
        if dims is None:
            return OpRecord(kind, None)
        return OpRecord(kind, ",".join(map(str, [kind, 1, *dims])), dict(op=kind, dims=dims))
    if kind in ELTWISE_OPS:
        dims = _nchw(first(op, "X"))
        if dims is None:
            return OpRecord(kind, None)
        spec = dict(op="eltwise", kind=ELTWISE_KIND.get(kind, 3), dims=dims, y_dims=_nchw(first(op, "Y")))
        return OpRecord(kind, ",".join(map(str, ["eltwise", spec["kind"], 1, *dims])), spec)
    if kind == "pool2d":
        return _pool_record(op, first(op, "X"))
    if kind == "softmax":
        dims = _nchw(first(op, "X"))
        if dims is None:
            return OpRecord(kind, None)
        axis = int(op.attr("axis"))
        return OpRecord(kind, ",".join(map(str, ["softmax", axis, 1, *dims])), dict(op="softmax", axis=axis, dims=dims))
    if kind in INTERP_OPS:
        _, c, h, w = first(op, "X")
        _, _, oh, ow = shape(op.output("Out")[0])
        mode, align = INTERP_OPS[kind], int(bool(op.attr("align_corners")))
        spec = dict(op="interp", mode=mode, align_corners=align, c=c, h=h, w=w, out_h=oh, out_w=ow)
        return OpRecord(kind, ",".join(map(str, ["interp", mode, align, 1, c, h, w, oh, ow])), spec)
    if kind == "concat":
        dims = _nchw(shape(op.output("Out")[0]))
        count = len(op.input("X"))
        if dims is None or int(op.attr("axis")) != 1:
            return OpRecord(kind, None)
        spec = dict(op="concat", dims=dims, num_inputs=count)
        return OpRecord(kind, ",".join(map(str, ["concat", 1, 1, *dims, count])), spec)
    return OpRecord(kind, None)


def _pool_record(op: Any, in_shape: List[int]) -> OpRecord:
    _, c, h, w = in_shape
    is_global = bool(op.attr("global_pooling")) or (bool(op.attr("adaptive")) and list(op.attr("ksize")) == [1, 1])
    kernel = (h, w) if is_global else _pairs(op.attr("ksize"))
    stride = (1, 1) if is_global else _pairs(op.attr("strides"))
    algorithm = "VALID" if is_global else op.attr("padding_algorithm")
    pads, _ = effective_padding(op.attr("paddings"), algorithm, (h, w), kernel, stride)
    pool_type = POOL_TYPE[(op.attr("pooling_type"), bool(op.attr("exclusive")))]
    ceil = int(bool(op.attr("ceil_mode")))
    spec = dict(
        op="pooling",
        is_global=int(is_global),
        c=c,
        h=h,
        w=w,
        kernel=kernel,
        padding=pads,
        stride=stride,
        ceil_mode=ceil,
        pool_type=pool_type,
    )
    pad, pad_extra = _padding_fields(pads)
    fields = ["pooling", int(is_global), 1, c, h, w, kernel[0], pad, stride[0], ceil, pool_type]
    extras = [kernel[1]] if kernel[1] != kernel[0] else []
    extras += pad_extra + ([stride[1]] if stride[1] != stride[0] else [])
    return OpRecord("pool2d", ",".join(map(str, fields + extras)), spec)
