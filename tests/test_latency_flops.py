"""FLOPs from the static trace equal paddle.flops's exactly, on the searched models and on a hand net."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import contextlib
import io
import pathlib

import paddle
import paddle.nn.functional as F
import pytest
from seg_helpers import make_tiny_config

import latency.opkeys
from latency.flops import count_flops
from ppnas.candidates import load_candidates
from ppnas.config import load_config
from ppnas.constraint import Constraint
from ppnas.spaces import build_space
from ppnas.tasks.detection import BlazeFaceForward, build_blazeface

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL_CFG = ROOT / "configs" / "_base_" / "blazeface_nas_model.yml"


def paddle_flops(layer, shape):
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per layer type
        return paddle.flops(layer, shape)


def token_lists(space):
    """The initial tokens, the smallest and the largest choices, and a mix."""
    top = [r - 1 for r in space.range_table()]
    return [space.init_tokens(), [0] * len(top), top, [t if i % 2 else 0 for i, t in enumerate(top)]]


@pytest.mark.parametrize("kernel_choices", [[3], [3, 5]])
def test_blazeface_nas_candidates_at_160_and_640(kernel_choices):
    cfg = load_config(str(MODEL_CFG))
    space = build_space("BlazeFaceNasSpace", kernel_choices=kernel_choices)
    kernels = set()
    for tokens in token_lists(space):
        structure = space.decode(tokens)
        kernels.add(structure["use_5x5kernel"])
        model = BlazeFaceForward(build_blazeface(structure, cfg))
        for size in (160, 640):
            shape = [1, 3, size, size]
            assert count_flops(model, shape) == paddle_flops(model, shape), (tokens, size)
    assert kernels == ({False} if kernel_choices == [3] else {False, True})  # 5x5 blocks covered too


def test_deeplabv3p_with_the_mobilenetv2_seg_backbone(tmp_path):
    source = load_candidates(str(make_tiny_config(tmp_path)))
    for tokens in (source.init_tokens, [r - 1 for r in source.range_table]):
        model = source.measurable(tokens)
        # PaddleSeg resizes to paddle.shape(x)[2:]: shapes the trace learns by running the program once
        assert count_flops(model, source.input_shape) == paddle_flops(model, source.input_shape) > 0


class Conv2DSubclass(paddle.nn.Conv2D):
    """paddle.flops matches exact classes: a subclass counts 0."""


class HandNet(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)  # with bias
        self.bn = paddle.nn.BatchNorm2D(8)
        self.grouped = paddle.nn.Conv2D(8, 8, 3, groups=4, bias_attr=False)
        self.old_bn = paddle.nn.BatchNorm(8)
        self.leaky = paddle.nn.LeakyReLU(0.1)
        self.avg = paddle.nn.AvgPool2D(2, 2)
        self.max = paddle.nn.MaxPool2D(2, 2)
        self.adaptive = paddle.nn.AdaptiveAvgPool2D(3)
        self.uncounted = Conv2DSubclass(8, 8, 1)
        self.fc = paddle.nn.Linear(8 * 3 * 3, 5)

    def forward(self, image):
        x = F.relu(self.bn(self.conv(image)))
        x = self.leaky(self.old_bn(self.grouped(x)))
        x = paddle.add(self.avg(x), self.max(x))
        x = self.adaptive(x)  # 7x7 -> 3x3: kernel 7 // 3 = 2
        x = self.uncounted(x) + F.conv2d(x, self.uncounted.weight)  # neither counts
        x = self.leaky(x)  # a second call counts again
        return self.fc(paddle.flatten(x, 1))


def test_hand_net_counts_each_rule():
    expected = (
        8 * 16 * 16 * (3 * 9 + 1)  # conv with bias
        + 2 * 8 * 16 * 16  # BatchNorm2D
        + 8 * 14 * 14 * (2 * 9)  # grouped conv, no bias
        + 2 * 8 * 14 * 14  # nn.BatchNorm
        + 8 * 14 * 14  # LeakyReLU on its input
        + 8 * 7 * 7  # AvgPool2D: output numel
        + (2 * 2 + 1) * 8 * 3 * 3  # AdaptiveAvgPool2D
        + 8 * 3 * 3  # LeakyReLU again
        + 72 * 5  # Linear: in_features * output numel
    )
    net = HandNet()
    assert count_flops(net, [1, 3, 16, 16]) == paddle_flops(net, [1, 3, 16, 16]) == expected
    net.train()
    count_flops(net, [1, 3, 16, 16])
    assert net.training  # left as it was


def test_constraint_measure_traces_once_for_flops_and_latency(monkeypatch, latency_855_path):
    traced = []
    original = latency.opkeys.traced_program
    monkeypatch.setattr(latency.opkeys, "traced_program", lambda *args: traced.append(1) or original(*args))
    source = load_candidates(str(ROOT / "configs" / "demo" / "blazeface_demo.yml"))
    source.set_input_size(640)  # the table's size
    model = source.measurable(source.init_tokens)
    measured = Constraint(ctype="latency", table_file=str(latency_855_path)).measure(model, source.input_shape)
    assert len(traced) == 1
    assert measured.flops == paddle_flops(model, source.input_shape)
    assert measured.latency == pytest.approx(21117.0)  # BlazeFace-NAS, as the table prices it
