"""What an adapter hands the shared export code: the layer to save, its inputs, dygraph's outputs."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle

from ppnas.errors import DataError, ExportError

SAMPLE_SEED = 0


@dataclass
class ExportRequest:
    """The user's files: the search's structure (a config fragment), its weights, the search config."""

    structure: str
    weights: str
    config: Optional[str] = None
    input_size: Optional[int] = None  # the side of the square input; None: the family's default
    options: Dict[str, Any] = field(default_factory=dict)  # family-specific (e.g. segmentation's output_op)

    def check_files(self) -> None:
        for what, path in (("structure", self.structure), ("weights", self.weights), ("config", self.config)):
            if path is not None and not os.path.isfile(path):
                raise DataError(f"{what} file not found: {path}")


@dataclass
class Exportable:
    """A model ready to save, in eval mode with its weights loaded.

    `layer(*inputs)` is the deployed forward; `input_spec` names and shapes its inputs; `sample_inputs`
    (by input name) is the input the checks run; `reference` is what the found dygraph model outputs on
    it, flattened as jit.save orders outputs. `write_deploy_config(out_dir)` writes the family's deploy
    file and returns its path. `unordered_rows`: 2-D outputs are sets of rows (detections after NMS);
    `score_cutoff`: their NMS score threshold (a row at it may be kept on one side only).
    """

    layer: paddle.nn.Layer
    input_spec: List[Any]
    sample_inputs: Dict[str, np.ndarray]
    reference: List[np.ndarray]
    write_deploy_config: Callable[[str], str]
    unordered_rows: bool = False
    score_cutoff: Optional[float] = None


def feeds_by_name(names: Sequence[str], feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """`feeds` keyed by a saved model's input names; a model of one input takes the only feed, whatever its name."""
    if len(names) == 1 and len(feeds) == 1:
        return {names[0]: next(iter(feeds.values()))}
    missing = [name for name in names if name not in feeds]
    if missing:
        raise ExportError(f"the saved model takes inputs {list(names)}; no sample for {missing}")
    return {name: feeds[name] for name in names}


def sample_image(shape: Sequence[int]) -> np.ndarray:
    """A fixed pseudo-random image batch in the normalized range the networks see."""
    return np.random.default_rng(SAMPLE_SEED).standard_normal(list(shape)).astype("float32")


def dygraph_outputs(layer: paddle.nn.Layer, inputs: Sequence[Any]) -> List[np.ndarray]:
    """`layer(*inputs)` in eval mode without gradients, flattened to arrays as jit.save orders outputs."""
    layer.eval()
    with paddle.no_grad():
        out = layer(*inputs)
    return [np.asarray(t.numpy()) for t in paddle.utils.flatten(out)]


def image_model(
    layer: paddle.nn.Layer,
    shape: Sequence[Optional[int]],
    sample_shape: Sequence[int],
    write_deploy_config: Callable[[str], str],
    name: Optional[str] = None,
) -> Exportable:
    """An Exportable of a network with one image input of `shape` (None: any size), checked on `sample_shape`."""
    image = sample_image(sample_shape)
    spec = paddle.static.InputSpec(list(shape), "float32", name)
    return Exportable(
        layer=layer,
        input_spec=[spec],
        sample_inputs={name or "x": image},
        reference=dygraph_outputs(layer, [paddle.to_tensor(image)]),
        write_deploy_config=write_deploy_config,
    )
