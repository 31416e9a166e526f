"""Every dynamic op and block at a setting computes what its plain Paddle layer (the library's own, for the blocks)
computes with the sliced weights; the swap of a library head keeps its parameters and follows the input width."""

import ppnas  # noqa: F401  # isort: skip
import numpy as np
import paddle
import pytest
from paddleseg.models import layers

from ppnas.oneshot.dynamic import (
    DynamicBatchNorm2D,
    DynamicConv2D,
    DynamicConvBN,
    DynamicDepthwiseConv2D,
    DynamicInvertedResidual,
    DynamicLinear,
    DynamicStage,
    make_dynamic,
    plain_copy,
    sliced_state,
)


def _same(dynamic, x, **plain_call):
    """Run the dynamic op on x (train then eval: BN statistics move), then its plain layer with the sliced
    weights; both in eval mode must agree within 1e-5. Returns the output."""
    dynamic.train()
    dynamic(x)
    dynamic.eval()
    out = dynamic(x)
    plain = dynamic.plain()
    state = dynamic.subnet_state_dict()
    assert set(state) == set(plain.state_dict())
    plain.set_state_dict(state)
    plain.eval()
    np.testing.assert_allclose(out.numpy(), plain(x, **plain_call).numpy(), atol=1e-5)
    return out


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(3)


def test_conv_with_elastic_out_channels_kernel_and_groups():
    x = paddle.randn([2, 6, 9, 9])
    conv = DynamicConv2D(8, 12, 5, stride=2, bias_attr=None)
    conv.active_out_channels, conv.active_kernel_size = 7, 3
    assert _same(conv, x).shape == [2, 7, 5, 5]
    assert isinstance(conv.plain(), paddle.nn.Conv2D) and conv.plain()._kernel_size == [3, 3]
    grouped = DynamicConv2D(8, 12, 3, groups=2)
    grouped.active_groups, grouped.active_out_channels = 3, 6  # 6 inputs in 3 groups of 2
    assert _same(grouped, x).shape == [2, 6, 9, 9]
    conv.active_out_channels = conv.active_kernel_size = None  # the largest setting is the whole weight
    conv(paddle.randn([1, 8, 9, 9]))
    np.testing.assert_array_equal(conv.subnet_state_dict()["weight"], conv.weight.numpy())


def test_depthwise_follows_its_input_and_crops_the_kernel():
    depthwise = DynamicDepthwiseConv2D(10, 5, stride=2)
    depthwise.active_kernel_size = 3
    assert _same(depthwise, paddle.randn([2, 6, 9, 9])).shape == [2, 6, 5, 5]
    assert depthwise.plain()._groups == 6


def test_linear_and_batch_norm():
    linear = DynamicLinear(10, 7)
    linear.active_out_features = 4
    assert _same(linear, paddle.randn([3, 6])).shape == [3, 4]
    assert _same(DynamicBatchNorm2D(10), paddle.randn([4, 6, 5, 5]) * 2 + 1).shape == [4, 6, 5, 5]


def test_conv_bn_equals_paddledetection_conv_bn_layer():
    block = DynamicConvBN(8, 16, 5, stride=2, act="relu6")
    block.active_out_channels, block.active_kernel_size = 9, 3
    _same(block, paddle.randn([2, 6, 9, 9]))
    assert type(block.plain()).__module__ == "ppdet.modeling.backbones.blazenet"


@pytest.mark.parametrize("shortcut, stride, out", [(True, 1, 6), (False, 2, 5)])
def test_inverted_residual_equals_paddleseg_unit(shortcut, stride, out):
    unit = DynamicInvertedResidual(8, 8, stride, expand_ratio=6, kernel_size=5, shortcut=shortcut)
    unit.active_expand_ratio, unit.active_kernel_size, unit.active_out_channels = 3, 3, out
    y = _same(unit, paddle.randn([2, 6, 8, 8]))
    assert y.shape == [2, out, 8 // stride, 8 // stride]
    plain = unit.plain()
    assert type(plain).__mro__[1].__name__ == "InvertedResidualUnit"  # PaddleSeg's own unit
    assert plain._expand_conv._conv._out_channels == 18  # round(6 inputs x 3)


def test_stage_runs_its_first_blocks():
    stage = DynamicStage([DynamicConvBN(8, 8, 3) for _ in range(3)])
    x = paddle.randn([2, 8, 6, 6])
    stage.active_depth = 2
    y = _same(stage, x)
    assert len(stage.plain()) == 2
    stage.active_depth = None
    stage.eval()
    assert np.abs(stage(x).numpy() - y.numpy()).max() > 1e-3  # the third block changes the output
    assert len(stage.plain()) == 3


def test_make_dynamic_keeps_the_library_head_parameters_and_follows_a_narrower_input():
    head = layers.ASPPModule((1, 6), 32, 16, False, use_sep_conv=True, image_pooling=True)
    head.eval()
    before = {k: v.numpy().copy() for k, v in head.state_dict().items()}
    names = {k: p.name for k, p in head.named_parameters()}
    x = paddle.randn([1, 32, 8, 8])
    reference = head(x).numpy()
    make_dynamic(head)
    assert {k: p.name for k, p in head.named_parameters()} == names  # the very same parameters
    assert all(np.array_equal(v.numpy(), before[k]) for k, v in head.state_dict().items())
    np.testing.assert_allclose(head(x).numpy(), reference, atol=1e-5)
    narrow = head(x[:, :20])  # a subnet's backbone gives 20 channels: the convs and BNs take the first 20
    assert narrow.shape == [1, 16, 8, 8]
    copy = plain_copy(head)  # plain layers at the widths just run, weights sliced by key
    assert not any(isinstance(layer, (DynamicConv2D, DynamicBatchNorm2D)) for layer in copy.sublayers())
    assert copy.aspp_blocks[1].depthwise_conv._conv.weight.shape == [20, 1, 3, 3]
    copy.set_state_dict(sliced_state(head.state_dict(), copy.state_dict()))
    copy.eval()
    np.testing.assert_allclose(copy(x[:, :20]).numpy(), narrow.numpy(), atol=1e-5)
