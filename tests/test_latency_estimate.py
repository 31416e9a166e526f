"""The estimate: sums over priced ops, both missing-key policies, conv-only tables, calibration, units."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py

import paddle
import pytest

from latency.estimate import estimate_latency, nearest_key
from latency.table import LatencyTable
from ppnas.constraint import Constraint
from ppnas.errors import TableError

SHAPE = [1, 3, 16, 16]
CONV1 = "conv,0,0,1,3,16,16,8,1,3,1,2,1"
DW = "conv,0,0,1,8,8,8,8,8,3,1,1,1"
CONV2 = "conv,0,0,1,8,8,8,16,1,1,0,1,1"


def net():
    return paddle.nn.Sequential(
        paddle.nn.Conv2D(3, 8, 3, stride=2, padding=1, bias_attr=False),
        paddle.nn.BatchNorm2D(8),
        paddle.nn.ReLU(),
        paddle.nn.Conv2D(8, 8, 3, padding=1, groups=8, bias_attr=False),
        paddle.nn.Conv2D(8, 16, 1, bias_attr=False),
    )


def table_of(tmp_path, entries, header="op_type\t855\tus"):
    path = tmp_path / "t.txt"
    path.write_text(header + "\n" + "".join(f"{k}\t{v}\n" for k, v in entries.items()), encoding="utf-8")
    return LatencyTable.load(str(path))


def test_conv_only_table_prices_every_conv_and_nothing_else(tmp_path):
    table = table_of(tmp_path, {CONV1: 100, DW: 20, CONV2: 30, "conv,0,0,1,9,9,9,9,1,1,0,1,1": 999})
    estimate = estimate_latency(net(), SHAPE, table)
    assert estimate.keys == [CONV1, DW, CONV2]
    assert estimate.total == 150 and estimate.raw_total == 150 and not estimate.calibrated
    assert estimate.latency_ms == pytest.approx(0.15) and estimate.unit == "us" and estimate.num_ops == 3
    assert estimate.unpriced_ops == {"batch_norm": 1, "relu": 1}
    assert estimate.missing_keys == [] and estimate.substitutions == []


def test_full_table_prices_batch_norm_and_activations_too(tmp_path):
    entries = {CONV1: 100, DW: 20, CONV2: 30, "batch_norm,None,1,8,8,8": 4, "relu,1,8,8,8": 1}
    estimate = estimate_latency(net(), SHAPE, table_of(tmp_path, entries, header="e\tcpu\tms"))
    assert estimate.total == 155 and estimate.num_ops == 5 and estimate.unpriced_ops == {}
    assert estimate.latency_ms == 155  # the table is in ms


def test_missing_error_lists_every_missing_key(tmp_path):
    table = table_of(tmp_path, {DW: 20})
    with pytest.raises(TableError) as err:
        estimate_latency(net(), SHAPE, table, missing="error")
    message = str(err.value)
    assert "lacks 2 op key(s)" in message and CONV1 in message and CONV2 in message and str(table.path) in message
    assert "missing_keys: nearest" in message


def test_nearest_uses_the_closest_key_of_the_same_pattern_and_reports_it(tmp_path):
    entries = {
        DW: 20,
        "conv,0,0,1,3,32,32,8,1,3,1,2,1": 400,  # same 3x3/s2/groups-1 pattern, 2x larger input: closest
        "conv,0,0,1,3,16,16,8,1,3,1,1,1": 7,  # same shape but stride 1: another pattern
        "conv,0,0,1,3,64,64,8,1,3,1,2,1": 1600,
        "conv,0,0,1,8,8,8,24,1,1,0,1,1": 45,  # 1x1, 24 out channels: closest to CONV2 (16 out)
        "conv,0,0,1,8,8,8,64,1,1,0,1,1": 120,
    }
    table = table_of(tmp_path, entries)
    estimate = estimate_latency(net(), SHAPE, table, missing="nearest")
    assert estimate.missing_keys == [CONV1, CONV2]
    assert estimate.substitutions == [
        {"key": CONV1, "used": "conv,0,0,1,3,32,32,8,1,3,1,2,1", "latency": 400.0},
        {"key": CONV2, "used": "conv,0,0,1,8,8,8,24,1,1,0,1,1", "latency": 45.0},
    ]
    assert estimate.total == 400 + 20 + 45


def test_nearest_keeps_depthwise_and_plain_convs_apart(tmp_path):
    table = table_of(tmp_path, {"conv,0,0,1,8,8,8,8,1,3,1,1,1": 50, "conv,0,0,1,32,8,8,32,32,3,1,1,1": 9})
    assert nearest_key(DW, table) == "conv,0,0,1,32,8,8,32,32,3,1,1,1"
    assert nearest_key("conv,0,0,1,8,8,8,8,1,5,2,1,1", table) is None  # no 5x5 at all


def test_nearest_without_any_key_of_the_pattern_is_an_error(tmp_path):
    table = table_of(tmp_path, {DW: 20, CONV2: 30})  # no 3x3 stride-2 plain conv
    with pytest.raises(TableError, match=f"no key of the same op type and pattern for 1 op key.*{CONV1}"):
        estimate_latency(net(), SHAPE, table, missing="nearest")


def test_unknown_policy_is_an_error(tmp_path):
    with pytest.raises(TableError, match="missing-key policy"):
        estimate_latency(net(), SHAPE, table_of(tmp_path, {DW: 1}), missing="ignore")


def test_calibration_stored_with_the_table_is_applied(tmp_path):
    header = "paddle_inference-2.6.2\tcpu:x\tus\tdevice=cpu;threads=1;calib_a=1.5;calib_b=-10"
    table = table_of(tmp_path, {CONV1: 100, DW: 20, CONV2: 30}, header=header)
    estimate = estimate_latency(net(), SHAPE, table)
    assert estimate.raw_total == 150 and estimate.calibrated
    assert estimate.total == pytest.approx(1.5 * 150 - 10)
    assert estimate.latency_ms == pytest.approx((1.5 * 150 - 10) / 1e3)


def test_constraint_window_on_table_latency(tmp_path, latency_855_path):
    table = table_of(tmp_path, {CONV1: 100, DW: 20, CONV2: 30})
    inside = Constraint(ctype="latency", min_constraint=100, max_constraint=200, table_file=table.path)
    measured = inside.measure(net(), SHAPE)
    assert measured.latency == 150 and measured.latency_unit == "us" and measured.latency_ms == pytest.approx(0.15)
    assert inside.admits(measured)
    assert not Constraint(ctype="latency", max_constraint=149, table_file=table.path).admits(measured)
    with pytest.raises(TableError, match="lacks 3 op key"):
        Constraint(ctype="latency", max_constraint=1e9, table_file=str(latency_855_path)).measure(net(), SHAPE)


class ResidualBlock(paddle.nn.Layer):
    """conv+BN+ReLU, then a conv with a bias, a residual add and a ReLU6 (which no engine here folds)."""

    def __init__(self):
        super().__init__()
        self.stem = paddle.nn.Sequential(
            paddle.nn.Conv2D(3, 8, 3, padding=1, bias_attr=False), paddle.nn.BatchNorm2D(8), paddle.nn.ReLU()
        )
        self.conv = paddle.nn.Conv2D(8, 8, 1)

    def forward(self, x):
        y = self.stem(x)
        return paddle.nn.functional.relu6(y + self.conv(y))


def test_ops_the_engine_folds_into_a_conv_are_free(tmp_path):
    from latency.opkeys import trace_ops

    ops = trace_ops(ResidualBlock(), SHAPE)
    entries = {op.key: 10.0 for op in ops if op.key}
    assert [op.op_type for op in ops if op.key] == [
        "conv2d", "batch_norm", "relu", "conv2d", "elementwise_add", "elementwise_add", "relu6"
    ]  # fmt: skip
    plain = estimate_latency(ResidualBlock(), SHAPE, table_of(tmp_path, entries, "onnxruntime-1\tcpu\tus"))
    assert plain.total == 70 and plain.fused_ops == {}
    header = "onnxruntime-1\tcpu\tus\tfuses=batch_norm|bias|relu"
    folded = estimate_latency(ResidualBlock(), SHAPE, table_of(tmp_path, entries, header))
    # BN and ReLU after the first conv, the bias of the second: free; the residual add (its input is also read
    # by the second conv) and ReLU6 (not in `fuses`) are priced
    assert folded.fused_ops == {"batch_norm": 1, "relu": 1, "elementwise_add": 1}
    assert folded.total == 40 and folded.num_ops == 4
    with_relu6 = estimate_latency(ResidualBlock(), SHAPE, table_of(tmp_path, entries, header + "|relu6"))
    assert with_relu6.total == 40  # relu6 reads the residual add's output, not a conv's: still priced
