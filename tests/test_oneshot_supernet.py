"""The BlazeFace supernet on the dynamic ops: a subnet equals PaddleDetection's BlazeFace with the sliced weights;
BN in both modes; calibration."""

import ppnas  # noqa: F401  # isort: skip
import numpy as np
import paddle
import pytest
from oneshot_helpers import BIGNAS_DEMO

from ppnas.oneshot.adapters.detection import DetectionAdapter
from ppnas.oneshot.algorithm import calibrate_bn
from ppnas.oneshot.dynamic import DynamicBatchNorm2D
from ppnas.oneshot.export import subnet_state_dict
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.supernet import build_supernet
from ppnas.tasks.detection import BlazeFaceForward


def _supernet(kernel_choices, *overrides):
    paddle.seed(0)
    supernet = build_supernet(load_oneshot_config(str(BIGNAS_DEMO), [f"kernel_choices={kernel_choices}", *overrides]))
    return supernet.space, supernet


def _head(supernet, image):
    boxes, scores, _ = supernet.head_outputs(image)
    return paddle.concat(boxes, axis=1).numpy(), paddle.concat(scores, axis=1).numpy()


def _ppdet_head(model, image):
    outs = BlazeFaceForward(model)(image)  # per feature map: box conv, score conv (NCHW)
    flat = [paddle.reshape(paddle.transpose(o, [0, 2, 3, 1]), [0, -1, k]) for o, k in zip(outs, (4, 2, 4, 2))]
    return paddle.concat(flat[0::2], axis=1).numpy(), paddle.concat(flat[1::2], axis=1).numpy()


@pytest.mark.parametrize(
    "kernel_choices, tokens",
    [([3, 5], [2, 1, 3, 8, 2, 1, 2, 1, 0]), ([3, 5], [4, 6, 5, 2, 0, 5, 3, 1, 1]), ([3], [0, 0, 0, 0, 0, 0, 0, 0, 0])],
)
def test_subnet_equals_plain_ppdet_blazeface_with_sliced_weights(kernel_choices, tokens):
    space, supernet = _supernet(kernel_choices)
    subnet = space.decode(tokens)
    supernet.set_subnet(subnet)
    image = paddle.randn([2, 3, 64, 64])
    supernet.train()
    supernet.head_outputs(image)  # moves the active BN statistics away from their initial values
    supernet.eval()
    model = supernet.plain_model(subnet)
    model.set_state_dict(subnet_state_dict(supernet, model, subnet))
    model.eval()
    boxes, scores = _head(supernet, image)
    ref_boxes, ref_scores = _ppdet_head(model, image)
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    supernet.set_subnet(space.decode(space.min_tokens() if any(tokens) else [1] * 8 + [0]))
    assert np.abs(_head(supernet, image)[1] - scores).max() > 1e-3  # another subnet computes something else


def test_eval_outputs_do_not_depend_on_the_batch_after_a_train_call():
    space, supernet = _supernet([3, 5])
    supernet.set_subnet(space.decode([3, 4, 5, 6, 1, 2, 3, 4, 1]))
    first, other = paddle.randn([1, 3, 64, 64]), paddle.randn([3, 3, 64, 64]) * 3
    supernet.train()
    supernet.head_outputs(paddle.concat([first, other]))  # the first call is in train mode (OFA's latch)
    supernet.eval()
    alone = _head(supernet, first)[1]
    in_batch = _head(supernet, paddle.concat([first, other]))[1][:1]
    np.testing.assert_allclose(alone, in_batch, atol=1e-5)


def test_sliced_bn_trains_like_a_plain_bn_of_that_width_and_leaves_other_channels():
    paddle.seed(1)
    sliced, plain = DynamicBatchNorm2D(16), paddle.nn.BatchNorm2D(6)
    sliced.eval()
    sliced(paddle.randn([2, 4, 5, 5]))  # the first call in eval mode must not stop training from updating stats
    sliced.train()
    with paddle.no_grad():
        sliced.weight.set_value(paddle.rand([16]) + 0.5)
        sliced.bias.set_value(paddle.rand([16]))
        plain.weight.set_value(sliced.weight[:6])
        plain.bias.set_value(sliced.bias[:6])
    before_mean, before_var = sliced._mean.numpy().copy(), sliced._variance.numpy().copy()
    x = paddle.randn([4, 6, 7, 7]) * 2 + 1
    np.testing.assert_allclose(sliced(x).numpy(), plain(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(sliced._mean.numpy()[:6], plain._mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(sliced._variance.numpy()[:6], plain._variance.numpy(), atol=1e-6)
    assert np.abs(sliced._mean.numpy()[:6] - before_mean[:6]).min() > 0
    np.testing.assert_array_equal(sliced._mean.numpy()[6:], before_mean[6:])
    np.testing.assert_array_equal(sliced._variance.numpy()[6:], before_var[6:])
    sliced.eval(), plain.eval()
    np.testing.assert_allclose(sliced(x).numpy(), plain(x).numpy(), atol=1e-5)


def test_calibration_changes_only_the_active_channels_and_equals_the_reference_statistics():
    space, supernet = _supernet([3])
    subnet = space.decode(space.min_tokens())
    subnet.image_size = [1, 3, 64, 64]  # the batches' size (the demo's input is 160)
    supernet.set_subnet(subnet)
    norms = [n for n in supernet.sublayers() if isinstance(n, DynamicBatchNorm2D)]
    before = {id(n): (n._mean.numpy().copy(), n._variance.numpy().copy(), n.weight.numpy().copy()) for n in norms}
    batches = [{"image": paddle.randn([2, 3, 64, 64]) * 2 + 1} for _ in range(3)]
    assert calibrate_bn(supernet, DetectionAdapter, batches, "bilinear") == 3
    changed = 0
    for norm in norms:
        mean, variance, weight = before[id(norm)]
        active = int((np.abs(norm._mean.numpy() - mean) > 0).sum())
        changed += active > 0
        np.testing.assert_array_equal(norm.weight.numpy(), weight)
        np.testing.assert_array_equal(norm._mean.numpy()[active:], mean[active:])  # beyond the slice: untouched
        np.testing.assert_array_equal(norm._variance.numpy()[active:], variance[active:])
        assert active < norm._mean.shape[0]  # the min subnet is narrower than the supernet everywhere
    assert changed == len(norms)
    # the stats are the average over the batches of the batch mean and biased variance of the active slice, as the
    # reference computation (x.mean, x.var) gives them: the batch-norm kernel's own statistics are the same numbers
    first = norms[0]
    c = first._mean.shape[0] - int((np.abs(first._mean.numpy() - before[id(first)][0]) == 0).sum())
    conv = supernet.backbone.conv1._conv.weight[:c]
    outs = [paddle.nn.functional.conv2d(b["image"], conv, stride=2, padding=1) for b in batches]
    means = paddle.stack([o.mean(axis=[0, 2, 3]) for o in outs]).mean(axis=0).numpy()
    variances = paddle.stack([o.var(axis=[0, 2, 3], unbiased=False) for o in outs]).mean(axis=0).numpy()
    np.testing.assert_allclose(first._mean.numpy()[:c], means, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first._variance.numpy()[:c], variances, rtol=1e-4, atol=1e-5)
