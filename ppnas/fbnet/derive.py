"""From a searched supernet to a plain subnet: choices, weights, structure YAML, inference model.

- `derive_choices`: the most probable candidate of each layer (argmax of alpha). With a hard bound
  (`Search.max_latency`, enforced by the shared Constraint) an argmax subnet above it is repaired greedily:
  the swap that gives up the least log-probability per unit of price saved is made until the subnet fits
  (the cheapest subnet must fit).
- `subnet_from_supernet`: a `LandmarkModel` whose chosen candidates carry the supernet's weights of those
  candidates and whose other layers carry the supernet's shared weights (cut to a narrower stem's channels).
- `write_structure` / `load_subnet`: the subnet as YAML (the Supernet block it came from plus one candidate
  name per layer) and rebuilt from that YAML + weights; this is what an export tool needs.
- `export_subnet`: the shared exporter (ppnas/export, family `landmarks`), then the inference model is run
  on an image and must match the dygraph output within `EXPORT_TOLERANCE`.
"""

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import yaml

from ppnas.constraint import Constraint
from ppnas.errors import ConfigError
from ppnas.export import adapter
from ppnas.export.inference import run_inference
from ppnas.export.model import ExportRequest
from ppnas.export.run import export_exportable
from ppnas.fbnet.lut import LookupTable
from ppnas.fbnet.supernet import FBNetSupernet, LandmarkModel, SupernetSpec, supernet_spec

STRUCTURE_FILE = "subnet.yml"
EXPORT_TOLERANCE = 1e-5


def derive_choices(probabilities: Sequence[Sequence[float]], lut: LookupTable, constraint: Constraint) -> List[int]:
    """Per-layer candidate indexes (see the module docstring): the argmax, repaired to meet the constraint."""
    choices = [int(np.argmax(p)) for p in probabilities]
    if constraint.admits_value(lut.total(choices)):
        return choices
    check_bound(lut, constraint)
    logp = [np.log(np.maximum(np.asarray(p, dtype=np.float64), 1e-12)) for p in probabilities]
    while not constraint.admits_value(lut.total(choices)):
        best: Optional[Tuple[float, int, int]] = None
        for layer, prices in enumerate(lut.per_layer):
            for c, price in enumerate(prices):
                saved = prices[choices[layer]] - price
                if saved <= 0:
                    continue
                cost = (logp[layer][choices[layer]] - logp[layer][c]) / saved
                if best is None or cost < best[0]:
                    best = (cost, layer, c)
        assert best is not None  # the cheapest subnet fits, so some swap still saves
        choices[best[1]] = best[2]
    return choices


def check_bound(lut: LookupTable, constraint: Constraint) -> None:
    """Refuse, before any training, a bound (Search.max_latency) that no architecture of the LUT meets."""
    constraint.check_reachable(*lut.bounds(), what="architecture", key="Search.max_latency")


def chosen_names(spec: SupernetSpec, choices: Sequence[int]) -> List[str]:
    return [slot.candidates[c] for slot, c in zip(spec.layers, choices)]


def subnet_from_supernet(supernet: FBNetSupernet, choices: Sequence[int]) -> LandmarkModel:
    """The plain subnet with the supernet's weights: chosen candidates' own, and every shared layer's, cut to
    their leading channels where a narrower stem feeds them (ppnas/fbnet/stem_head.py)."""
    spec = supernet.spec
    subnet = LandmarkModel(spec, chosen_names(spec, choices))
    prefixes = supernet.backbone.slot_prefixes()
    state = {}
    for key, value in supernet.state_dict().items():
        if key.startswith("alphas."):
            continue
        prefix = next((p for p in prefixes if key.startswith(p + "ops.")), None)
        if prefix is not None:
            index, _, rest = key[len(prefix) + len("ops.") :].partition(".")
            if int(index) != choices[prefixes[prefix]]:
                continue
            key = prefix + rest
        state[key] = value
    target = subnet.state_dict()
    missing = set(target) - set(state)
    if missing:
        raise RuntimeError(f"the supernet has no weights for {sorted(missing)[:3]}")
    subnet.set_state_dict({key: _leading(state[key], target[key].shape) for key in target})
    return subnet


def _leading(value: paddle.Tensor, shape: Sequence[int]) -> np.ndarray:
    array = value.numpy()
    return array[tuple(slice(0, n) for n in shape)] if list(array.shape) != list(shape) else array


def structure_dict(spec: SupernetSpec, names: Sequence[str], lut: Optional[LookupTable] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {"Supernet": spec.as_dict(), "choices": list(names)}
    if lut is not None:
        choices = [slot.candidates.index(n) for slot, n in zip(spec.layers, names)]
        out["predicted"] = {"value": lut.total(choices), "unit": lut.unit, "latency_ms": lut.latency_ms(choices)}
    return out


def write_structure(path: str, structure: Dict[str, Any]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("# PFLD subnet found by ppnas FBNet: the supernet it came from and one candidate per searched slot\n")
        yaml.safe_dump(structure, f, sort_keys=False)
    return path


def read_structure(path: str) -> Tuple[SupernetSpec, List[str]]:
    if not os.path.isfile(path):
        raise ConfigError(f"subnet structure not found: {path} (run --phase search first)")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or "Supernet" not in data or "choices" not in data:
        raise ConfigError(f"{path} is not a subnet structure: it needs 'Supernet' and 'choices'")
    spec = supernet_spec(data["Supernet"])
    names = [str(n) for n in data["choices"]]
    if len(names) != len(spec.layers):
        raise ConfigError(f"{path}: {len(names)} choices for {len(spec.layers)} searched layers")
    for slot, name in zip(spec.layers, names):
        if name not in slot.candidates:
            raise ConfigError(f"{path}: '{name}' is not a candidate of layer {slot.index} ({slot.stage})")
    return spec, names


def load_subnet(structure_path: str, weights_path: Optional[str] = None) -> LandmarkModel:
    """Rebuild the subnet from its structure YAML (and weights `.pdparams`, when given)."""
    spec, names = read_structure(structure_path)
    with paddle.utils.unique_name.guard():  # the same parameter names in every run: optimizer states load by name
        model = LandmarkModel(spec, names)
    if weights_path:
        if not os.path.isfile(weights_path):
            raise ConfigError(f"subnet weights not found: {weights_path}")
        model.set_state_dict(paddle.load(weights_path))
    model.eval()
    return model


def export_subnet(structure_path: str, weights_path: str, out_dir: str, image: np.ndarray) -> float:
    """Write the inference model of the subnet (image -> landmarks) with the shared exporter (tools/export_model.py,
    family `landmarks`) and return the largest difference between its output on `image` ([1, 3, S, S]) and the
    dygraph model's; above EXPORT_TOLERANCE is an error (the exporter's own check is looser, for detections)."""
    request = ExportRequest(structure=structure_path, weights=weights_path)
    request.check_files()
    exportable = adapter("landmarks")(request)
    export_exportable(exportable, out_dir)
    with paddle.no_grad():
        expected = exportable.layer(paddle.to_tensor(image)).numpy()
    got = run_inference(out_dir, {"x": np.ascontiguousarray(image, dtype=np.float32)})[0]
    diff = float(np.max(np.abs(got - expected)))
    if not math.isfinite(diff) or diff > EXPORT_TOLERANCE:
        raise ConfigError(f"the exported model in {out_dir} differs from the dygraph model by {diff:.3g} (> 1e-5)")
    return diff
