"""Op keys of real Paddle layers, checked by hand, and of BlazeFace-NAS against the real 855 table."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import pathlib

import paddle
import paddle.nn.functional as F
import pytest

from latency.opkeys import trace_ops
from latency.table import LatencyTable
from ppnas.candidates import load_candidates

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "configs" / "demo" / "blazeface_demo.yml"


def keys(layer, shape):
    return [(op.op_type, op.key) for op in trace_ops(layer, shape) if op.op_type not in ("feed", "fetch")]


def test_plain_conv_is_one_conv2d_op_and_its_bias_a_separate_add():
    layer = paddle.nn.Conv2D(3, 8, 3, stride=2, padding=1)
    assert keys(layer, [1, 3, 32, 32]) == [
        ("conv2d", "conv,0,0,1,3,32,32,8,1,3,1,2,1"),
        ("reshape2", None),  # the bias, reshaped to [1, 8, 1, 1]: free
        ("elementwise_add", "eltwise,2,1,8,16,16"),
    ]
    assert keys(paddle.nn.Conv2D(3, 8, 1, bias_attr=False), [1, 3, 20, 24]) == [
        ("conv2d", "conv,0,0,1,3,20,24,8,1,1,0,1,1")
    ]


def test_depthwise_conv_with_stride_2():
    layer = paddle.nn.Conv2D(8, 8, 3, stride=2, padding=1, groups=8, bias_attr=False)
    assert keys(layer, [1, 8, 40, 40]) == [("depthwise_conv2d", "conv,0,0,1,8,40,40,8,8,3,1,2,1")]


def test_same_padding_gets_the_padding_that_applies():
    # stride 1, 3x3: one pixel each side
    layer = paddle.nn.Conv2D(4, 4, 3, padding="SAME", bias_attr=False)
    assert keys(layer, [1, 4, 32, 32]) == [("conv2d", "conv,0,0,1,4,32,32,4,1,3,1,1,1")]
    # stride 2 on an even size: out 16, (16-1)*2+3-32 = 1 pixel in total, after (bottom/right) -> asymmetric
    layer = paddle.nn.Conv2D(4, 4, 3, stride=2, padding="SAME", bias_attr=False)
    assert keys(layer, [1, 4, 32, 32]) == [("conv2d", "conv,0,0,1,4,32,32,4,1,3,0,2,1,1,0,1")]
    # Paddle's 'SAME' runs with dilation 1 whatever the layer says
    layer = paddle.nn.Conv2D(4, 4, 3, padding="SAME", dilation=2, bias_attr=False)
    assert keys(layer, [1, 4, 10, 10]) == [("conv2d", "conv,0,0,1,4,10,10,4,1,3,1,1,1")]
    # 'VALID' is no padding
    layer = paddle.nn.Conv2D(4, 4, 3, padding="VALID", bias_attr=False)
    assert keys(layer, [1, 4, 10, 10]) == [("conv2d", "conv,0,0,1,4,10,10,4,1,3,0,1,1")]


def test_asymmetric_and_non_square_shapes_append_extras():
    # [top, bottom, left, right] = [0, 1, 2, 3]: top in place, then bottom, left, right
    layer = paddle.nn.Conv2D(2, 2, 3, padding=[0, 1, 2, 3], bias_attr=False)
    assert keys(layer, [1, 2, 12, 12]) == [("conv2d", "conv,0,0,1,2,12,12,2,1,3,0,1,1,1,2,3")]
    # symmetric but h != w: pad_h in place, pad_w appended
    layer = paddle.nn.Conv2D(2, 2, 3, padding=(1, 2), bias_attr=False)
    assert keys(layer, [1, 2, 12, 12]) == [("conv2d", "conv,0,0,1,2,12,12,2,1,3,1,1,1,2")]
    # kernel 3x1, stride (2, 1): kernel_w and stride_w appended (PaddleSlim's order)
    layer = paddle.nn.Conv2D(2, 2, (3, 1), stride=(2, 1), padding=(1, 0), bias_attr=False)
    assert keys(layer, [1, 2, 12, 12]) == [("conv2d", "conv,0,0,1,2,12,12,2,1,3,1,2,1,1,0,1")]


class SmallNet(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1, bias_attr=False)
        self.bn = paddle.nn.BatchNorm2D(8)
        self.pool = paddle.nn.MaxPool2D(2, 2, ceil_mode=True)
        self.fc = paddle.nn.Linear(8, 10)

    def forward(self, image):
        x = F.relu6(self.bn(self.conv(image)))
        x = paddle.add(x, x)
        x = self.pool(x)
        x = F.interpolate(x, size=[16, 16], mode="bilinear")
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.softmax(self.fc(x), axis=1)


def test_functional_ops_and_other_op_types_are_listed_in_order():
    found = [k for _, k in keys(SmallNet(), [1, 3, 16, 16]) if k is not None]
    assert found == [
        "conv,0,0,1,3,16,16,8,1,3,1,1,1",
        "batch_norm,None,1,8,16,16",
        "relu6,1,8,16,16",
        "eltwise,2,1,8,16,16",
        "pooling,0,1,8,16,16,2,0,2,1,1",
        "interp,bilinear,0,1,8,8,8,16,16",
        "pooling,1,1,8,16,16,16,0,1,0,3",
        "conv,0,0,1,8,1,1,10,1,1,0,1,1",  # fc as a 1x1 conv
        "eltwise,2,1,10,1,1",  # its bias
        "softmax,1,1,10,1,1",
    ]


def test_tracing_leaves_the_layer_usable_in_dygraph_and_in_train_mode():
    net = SmallNet()
    net.train()
    trace_ops(net, [1, 3, 16, 16])
    assert paddle.in_dynamic_mode() and net.training
    assert net(paddle.zeros([2, 3, 16, 16])).shape == [2, 10]


def test_blazeface_nas_at_640_uses_only_keys_of_the_855_table(latency_855_path):
    table = LatencyTable.load(latency_855_path)
    source = load_candidates(str(DEMO_CONFIG))  # the 3x3 space (kernel_choices [3])
    source.set_input_size(640)
    published = [2, 1, 3, 8, 2, 1, 2, 1, 0]  # BlazeFace-NAS
    for tokens, expected_us in ((published, 21117.0), ([5, 7, 11, 11, 5, 5, 5, 5, 0], None)):
        convs = [op.key for op in trace_ops(source.measurable(tokens), source.input_shape) if op.kind == "conv"]
        # per block 2 depthwise + 1 pointwise (x2 for double blocks), 1x1 shortcuts on the 3 stride-2 blocks,
        # the stem and 4 head convs
        assert len(convs) == 1 + 3 * 3 + 4 * 6 + 3 + 4
        assert [k for k in convs if k not in table.entries] == []
        if expected_us is not None:
            assert sum(table.entries[k] for k in convs) == pytest.approx(expected_us)


def test_another_paddle_version_stops_with_a_clear_message(monkeypatch):
    from latency import opkeys
    from ppnas.errors import TableError

    opkeys.check_paddle_version()  # the installed one (2.6.x) passes
    monkeypatch.setattr(opkeys, "_version_checked", False)
    monkeypatch.setattr(paddle, "__version__", "3.0.0")
    with pytest.raises(TableError, match=r"written for Paddle 2\.6\.x .* this is Paddle 3\.0\.0: install paddlepaddle"):
        trace_ops(paddle.nn.ReLU(), [1, 3, 8, 8])
