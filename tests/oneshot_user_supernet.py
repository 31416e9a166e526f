"""A user's own supernet, plugged in as the docs show: a tiny segmentation network from the dynamic blocks,
registered in SUPERNETS and named by a config (SLIM.BIGNAS_SUPERNET, SLIM.BIGNAS_CUSTOM_IMPORTS)."""

import ppnas  # noqa: F401  # isort: skip
from typing import Any, Dict, List, Mapping

import paddle
import paddle.nn.functional as F

from ppnas.oneshot.dynamic import DynamicConv2D, DynamicConvBN, DynamicInvertedResidual, DynamicStage
from ppnas.oneshot.supernet import SUPERNETS, Supernet


@SUPERNETS.register
class TinySegSupernet(Supernet):
    task = "segmentation"

    @classmethod
    def default_space(cls, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        return {
            "backbone": {
                "out_channel": {"space": {"min": 8, "max": [16, 24], "stride": 8}, "sample_strategy": "stage_wise"},
                "depth": {"space": {"min": [1, 1], "max": [1, 2]}, "sample_strategy": "stage_wise_depth"},
                "kernel_size": {"space": {"min": 3, "max": [3, 5], "stride": 2}, "sample_strategy": "stage_wise"},
                "expand_ratio": {"space": {"dynamic_range": [[1], [2, 4]]}, "sample_strategy": "stage_wise"},
            }
        }

    def __init__(self, space: Any, cfg: Mapping[str, Any]) -> None:
        super().__init__(space, cfg)
        top = self.subnet.settings["backbone"]
        stem, width = top["out_channel"]
        self.stem = DynamicConvBN(3, stem, 3, stride=2)
        first = DynamicInvertedResidual(stem, width, stride=2, expand_ratio=4, kernel_size=5)
        self.stage = DynamicStage([first, DynamicInvertedResidual(width, width, 1, 4, 5, shortcut=True)])
        self.classifier = DynamicConv2D(width, cfg["seg"].paddleseg["model"]["num_classes"], 1, bias_attr=None)

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        top = settings["backbone"]
        self.stem.active_out_channels = top["out_channel"][0]
        self.stage.active_depth = top["depth"][1]
        for unit in self.stage:
            unit.active_out_channels, unit.active_kernel_size = top["out_channel"][1], top["kernel_size"][1]
            unit.active_expand_ratio = top["expand_ratio"][1]

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        logits = self.classifier(self.stage(self.stem(x)))
        return [F.interpolate(logits, x.shape[2:], mode="bilinear")]
