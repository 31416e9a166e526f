"""One-op Paddle programs: the op of a table key, alone, as an inference program (what every engine times).

`op_program(spec, prefix)` builds the program of one op spec (latency/opkeys.py) on its input shapes; the
engines' op models are this program saved as a Paddle model, or converted from it (latency/convert.py).
"""

import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import paddle
import paddle.nn.functional as F

from latency.opkeys import switch_to_static_graph
from ppnas.errors import TableError

ACTIVATION_FNS: Dict[str, Callable[[Any], Any]] = {
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": F.sigmoid,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "hard_swish": F.hardswish,
    "swish": F.swish,
    "tanh": paddle.tanh,
    "hard_sigmoid": F.hardsigmoid,
}


def _param(shape: Sequence[int]) -> Any:
    return paddle.static.create_parameter(list(shape), "float32")


def _apply(spec: Dict[str, Any], x: Any, extra_inputs: List[Any]) -> Any:
    """Append the op described by `spec` to the current static program, reading `x`."""
    op = spec["op"]
    if op == "conv":
        kh, kw = spec["kernel"]
        weight = _param([spec["c_out"], spec["c_in"] // spec["groups"], kh, kw])
        return F.conv2d(
            x,
            weight,
            stride=list(spec["stride"]),
            padding=list(spec["padding"]),
            dilation=list(spec["dilation"]),
            groups=spec["groups"],
        )
    if op == "batch_norm":
        return paddle.static.nn.batch_norm(x, is_test=True)
    if op in ACTIVATION_FNS:
        return ACTIVATION_FNS[op](x)
    if op == "prelu":
        return paddle.static.nn.prelu(x, mode="channel")
    if op == "eltwise":
        y_dims = spec.get("y_dims") or spec["dims"]
        # a smaller Y is a broadcast constant (a conv bias); a same-shape Y is a second activation
        y = _param([1, *y_dims]) if list(y_dims) != list(spec["dims"]) else extra_inputs[0]
        return {1: paddle.multiply, 2: paddle.add}.get(spec["kind"], paddle.maximum)(x, y)
    if op == "pooling":
        if spec["is_global"]:
            pool = F.adaptive_max_pool2d if spec["pool_type"] == 1 else F.adaptive_avg_pool2d
            return pool(x, 1)
        kwargs = dict(
            kernel_size=list(spec["kernel"]),
            stride=list(spec["stride"]),
            padding=list(spec["padding"]),
            ceil_mode=bool(spec["ceil_mode"]),
        )
        if spec["pool_type"] == 1:
            return F.max_pool2d(x, **kwargs)
        return F.avg_pool2d(x, exclusive=spec["pool_type"] == 3, **kwargs)
    if op == "softmax":
        return F.softmax(x, axis=spec["axis"])
    if op == "interp":
        return F.interpolate(
            x, size=[spec["out_h"], spec["out_w"]], mode=spec["mode"], align_corners=bool(spec["align_corners"])
        )
    if op == "concat":
        return paddle.concat([x, *extra_inputs], axis=1)
    raise TableError(f"the builder cannot time op '{op}'")


def input_shapes(spec: Dict[str, Any]) -> List[List[int]]:
    """Feed shapes of the one-op program: the op's input, then any second operand."""
    op = spec["op"]
    if op == "conv":
        main = [1, spec["c_in"], spec["h"], spec["w"]]
    elif op in ("batch_norm", "pooling", "interp"):
        main = [1, spec["c"], spec["h"], spec["w"]]
    elif op == "concat":
        c, h, w = spec["dims"]
        parts = [c // spec["num_inputs"]] * spec["num_inputs"]
        parts[-1] += c - sum(parts)
        return [[1, p, h, w] for p in parts]
    else:
        main = [1, *spec["dims"]]
    if op == "eltwise" and list(spec.get("y_dims") or spec["dims"]) == list(spec["dims"]):
        return [main, main]
    return [main]


@switch_to_static_graph
def op_program(
    spec: Optional[Dict[str, Any]], prefix: bool, shapes: Optional[List[List[int]]] = None
) -> Tuple[bytes, bytes, List[List[int]]]:
    """(program, params, feed shapes) of a one-op inference model, behind a 1x1 conv when `prefix`.

    With `spec` None: the prefix alone on `shapes`, or without a prefix the smallest program there is (a
    scale of a 1-element tensor), whose time is the fixed cost of a run.
    """
    shapes = shapes or (input_shapes(spec) if spec is not None else [[1, 1, 1, 1]])
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        feeds = [paddle.static.data(f"x{i}", shape, "float32") for i, shape in enumerate(shapes)]
        x = feeds[0]
        if prefix:
            x = F.conv2d(x, _param([shapes[0][1], shapes[0][1], 1, 1]))
        if spec is not None:
            out = _apply(spec, x, feeds[1:])
        else:
            out = x if prefix else paddle.scale(x, 2.0)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    program = paddle.static.serialize_program(feeds, [out], program=main)
    params = paddle.static.serialize_persistables(feeds, [out], executor=exe, program=main) or b""
    return program, params, shapes


def save_op_model(
    spec: Optional[Dict[str, Any]], prefix: bool, stem: str, shapes: Optional[List[List[int]]] = None
) -> List[List[int]]:
    """Write `op_program(...)` as `<stem>.pdmodel` (+ `<stem>.pdiparams` when it has parameters); its feed shapes."""
    with warnings.catch_warnings():  # "no variable in your model": ops without weights have none, rightly
        warnings.filterwarnings("ignore", message="no variable in your model")
        program, params, shapes = op_program(spec, prefix, shapes)
    with open(f"{stem}.pdmodel", "wb") as f:
        f.write(program)
    if params:
        with open(f"{stem}.pdiparams", "wb") as f:
            f.write(params)
    return shapes
