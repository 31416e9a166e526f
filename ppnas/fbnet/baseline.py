"""Reference models a derived subnet is compared with, trained and evaluated by the same code (train.retrain).

`mobilenetv3_pfld` (the config's `baseline` key): NNI's baseline, "MobileNet-V3 PFLD" (its reference
implementation is Hsintao/pfld_106_face_landmarks): PFLD's multi-scale regression and auxiliary angle net on
MobileNet-V3-Small, built from Paddle's own parts: the first conv and the 11 inverted residual blocks of
`paddle.vision.models.MobileNetV3Small` (scale 1.0), unchanged; its classifier end (last 1x1 conv, pool, fc)
is replaced by PFLD's. At 112x112: block 0 leaves a 28x28 map of 16 channels (the auxiliary net's input, as
PFLD's), block 7 a 7x7 map of 48, block 10 a 4x4 map of 96. Multi-scale (PFLD): the global average of the
/16 and /32 maps and a conv over the whole /32 map to 128 channels, concatenated -> fc to 2 x num_points.

The other baseline, the in-supernet one (`Supernet.baseline`), is a LandmarkModel of the supernet's candidates.

`train_baseline` is `tools/fbnet.py --phase baseline`: the config's baseline trained from scratch by `retrain`
(the Retrain block, the same data) in <save_dir>/baseline, then exported and timed end to end like an export;
its history.jsonl holds the retrain records, then an export record (the export checked against dygraph, timed).
"""

import os
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional, Tuple

import paddle
from paddle import nn
from paddle.vision.models import MobileNetV3Small

from latency.builder import measure_models_us
from latency.engine import EngineSettings, export_model
from ppnas import parallel
from ppnas.errors import ConfigError
from ppnas.fbnet.derive import check_exported
from ppnas.fbnet.supernet import AuxiliaryNet, LandmarkForward, SupernetSpec
from ppnas.fbnet.train import RETRAIN_CHECKPOINT, retrain
from ppnas.history import ExportRecord, History
from ppnas.storage import refuse_existing
from ppnas.tasks.landmarks import LandmarkData

BASELINE_DIR = "baseline"

MOBILENETV3_PFLD = "mobilenetv3_pfld"
AUX_BLOCK, MID_BLOCK = 0, 7  # the blocks whose outputs feed the auxiliary net and the /16 scale
CONV_CHANNELS = 128  # PFLD's conv over the whole last map


def _after_strides(size: int, strides: Tuple[int, ...]) -> int:
    """A map's side after convs of odd kernels padded by kernel // 2 (each stride 2 rounds up)."""
    for stride in strides:
        size = (size + stride - 1) // stride
    return size


class MobileNetV3Backbone(nn.Layer):
    """Image -> (landmarks [N, 2 * num_points], the auxiliary net's feature)."""

    def __init__(self, input_size: int, num_points: int) -> None:
        super().__init__()
        net = MobileNetV3Small(scale=1.0, num_classes=-1, with_pool=False)
        self.conv, self.blocks = net.conv, net.blocks  # net.lastconv is left out: PFLD's end replaces it
        self.aux_channels = net.config[AUX_BLOCK].out_channels
        last = net.config[-1].out_channels
        side = _after_strides(input_size, (2, *(c.stride for c in net.config)))
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.whole_map = nn.Conv2D(last, CONV_CHANNELS, side)
        self.fc = nn.Linear(
            net.config[MID_BLOCK].out_channels + last + CONV_CHANNELS,
            2 * num_points,
            # the supernet head's start (ppnas/fbnet/stem_head.py): the image centre, small weights
            weight_attr=nn.initializer.Normal(std=0.001),
            bias_attr=nn.initializer.Constant(0.5),
        )

    def forward(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        x = self.conv(x)
        scales = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == AUX_BLOCK:
                features = x
            if i == MID_BLOCK:
                scales.append(paddle.flatten(self.pool(x), 1))
        scales += [paddle.flatten(self.pool(x), 1), paddle.flatten(self.whole_map(x), 1)]
        return self.fc(paddle.concat(scales, axis=1)), features


class MobileNetV3PFLD(nn.Layer):
    """images -> (landmarks, angles), as LandmarkModel: `backbone` is what is deployed and timed."""

    def __init__(self, spec: SupernetSpec) -> None:
        super().__init__()
        self.choices = [MOBILENETV3_PFLD]  # what its records name
        self.backbone = MobileNetV3Backbone(spec.input_size, spec.num_points)
        self.aux = AuxiliaryNet(self.backbone.aux_channels)

    def forward(self, images: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        landmarks, features = self.backbone(images)
        return landmarks, self.aux(features)


BASELINES: Dict[str, Callable[[SupernetSpec], nn.Layer]] = {MOBILENETV3_PFLD: MobileNetV3PFLD}


def build_baseline(name: str, spec: SupernetSpec) -> nn.Layer:
    """The reference model `name` for the input size and points of `spec`."""
    return BASELINES[name](spec)


def train_baseline(
    name: Optional[str],
    spec: SupernetSpec,
    data: LandmarkData,
    settings: Dict[str, Any],
    save_dir: str,
    resume: bool,
    quiet: bool,
    seed: int,
) -> Dict[str, Any]:
    """The baseline `name` trained from scratch in <save_dir>/baseline (resumable), its last record and its
    end-to-end latency (Paddle Inference, 1 thread)."""
    if name is None:
        raise ConfigError("the config's baseline is null: set baseline: mobilenetv3_pfld to train the reference model")
    folder = os.path.join(save_dir, BASELINE_DIR)
    if not resume:  # -r names the run's save_dir, not this folder
        refuse_existing(
            folder, "a baseline training", os.path.isfile(os.path.join(folder, RETRAIN_CHECKPOINT)), save_dir
        )
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():  # stable parameter names: a resumed run loads the optimizer state
        model = build_baseline(name, spec)
    record = retrain(model, data, settings, folder, True, quiet, seed)
    model.eval()
    shape = [1, 3, spec.input_size, spec.input_size]
    deployed = LandmarkForward(model.backbone)
    exported = export_model(deployed, shape, os.path.join(folder, "inference"))
    diff = check_exported(exported, deployed, data.test[0][0][None])
    settings = EngineSettings(threads=1, repeats=25)
    measured = ExportRecord(exported, diff, measure_models_us([exported], shape, settings)[0] / 1e3, settings.threads)
    if parallel.is_main():
        History.in_dir(folder).append_dict(asdict(measured))
    return {
        **record,
        "baseline": name,
        "inference_model": exported,
        "latency_ms_measured": measured.latency_ms_measured,
    }
