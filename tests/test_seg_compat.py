"""ppnas.tasks.paddleseg_compat: paddleseg 2.7 on paddle 2.6's 0-D tensors, broken without the shim, fixed with it."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import subprocess
import sys
import textwrap

import numpy as np
import paddle
import paddle.nn.functional as F

from ppnas.tasks import paddleseg_compat

PRED = np.array([[[0, 1, 1], [2, 2, 0]]], dtype="int64")
LABEL = np.array([[[0, 1, 2], [2, 255, 0]]], dtype="int64")

UNPATCHED = textwrap.dedent(
    f"""
    import zlib
    import numpy as np, paddle
    import paddleseg.core.train  # noqa: F401
    from paddleseg.models.losses import CrossEntropyLoss
    from paddleseg.utils import metrics
    train = sys.modules["paddleseg.core.train"]
    try:
        metrics.calculate_area(paddle.to_tensor({PRED.tolist()}), paddle.to_tensor({LABEL.tolist()}), 3)
        print("calculate_area ok")
    except ValueError as err:
        print("calculate_area ValueError", err)
    logits = paddle.rand([1, 3, 2, 3])
    losses = train.loss_computation([logits], paddle.to_tensor({LABEL.tolist()}), None,
                                    {{"types": [CrossEntropyLoss()], "coef": [1]}})
    try:
        losses[0].numpy()[0]  # what paddleseg.core.train logs every log_iters
        print("loss log ok")
    except IndexError as err:
        print("loss log IndexError", err)
    """
)


def test_paddleseg_breaks_without_the_shim():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\n" + UNPATCHED], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "calculate_area ValueError" in proc.stdout
    assert "loss log IndexError" in proc.stdout


def test_shim_computes_the_areas_and_one_d_losses():
    paddleseg_compat.apply()
    paddleseg_compat.apply()  # idempotent: the loss wrapper is not stacked twice
    from paddleseg.models.losses import CrossEntropyLoss
    from paddleseg.utils import metrics

    train = sys.modules["paddleseg.core.train"]
    intersect, pred_area, label_area = metrics.calculate_area(paddle.to_tensor(PRED), paddle.to_tensor(LABEL), 3)
    # class 0: pred (0,0),(1,2) both labelled 0; class 1: pred (0,1),(0,2), label (0,1); class 2: pred (1,0),
    # (1,1 ignored), label (0,2),(1,0)
    assert intersect.numpy().tolist() == [2, 1, 1]
    assert pred_area.numpy().tolist() == [2, 2, 1]
    assert label_area.numpy().tolist() == [2, 1, 2]
    logits = paddle.rand([1, 3, 2, 3])
    losses = train.loss_computation(
        [logits], paddle.to_tensor(LABEL), None, {"types": [CrossEntropyLoss()], "coef": [1]}
    )
    assert [tuple(loss.shape) for loss in losses] == [(1,)]
    expected = F.cross_entropy(logits.transpose([0, 2, 3, 1]), paddle.to_tensor(LABEL)[..., None], ignore_index=255)
    np.testing.assert_allclose(losses[0].numpy()[0], float(expected), rtol=1e-5)
