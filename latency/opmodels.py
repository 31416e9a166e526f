"""Export the op models of a table: one model per distinct op key, in an engine's format, and a manifest.

An export folder holds:
  manifest.json    format and version, its id, the engine (and the version it was exported for), the ONNX
                   opset, the ppnas version, the table's export settings, what the table is for (space, input
                   shape, samples, seed), and per op: model file, table key, input names and shapes, reference
  ops/NNNNN.<ext>  the op alone at the key's shapes (behind a 1x1-conv prefix when the settings say so)
  ref/...          what is subtracted from each op: `fixed` (a trivial model: the fixed cost of one run) or,
                   with a prefix, the prefix alone on each op's input
  time_ops.py      the device timer (latency/engines/time_ops.py): numpy and the engine only
The id is a hash of everything the timings depend on; the timer copies it into the timings file, and the
import refuses timings of another id.
"""

import glob
import json
import logging
import os
import shutil
from typing import Any, Dict, List, Tuple

import ppnas
from latency.engine import EngineSettings
from latency.engines import get_engine, time_ops, timer_errors
from latency.engines.time_ops import FORMAT_VERSION, MANIFEST, MANIFEST_FORMAT, load_manifest
from latency.opprograms import input_shapes, save_op_model
from ppnas.errors import TableError
from ppnas.storage import atomic_write_json, text_hash

_logger = logging.getLogger(__name__)

FIXED = "fixed"


def _inputs(shapes: List[List[int]]) -> List[Dict[str, Any]]:
    return [{"name": f"x{i}", "shape": list(shape)} for i, shape in enumerate(shapes)]


def _plan(ops: Dict[str, Dict[str, Any]], settings: EngineSettings, table: Dict[str, Any]) -> Dict[str, Any]:
    engine = get_engine(settings.engine)
    fixed = {"file": f"ref/{FIXED}{engine.suffix}", "inputs": _inputs([[1, 1, 1, 1]])}
    entries = []
    for i, (key, spec) in enumerate(ops.items()):
        shapes = input_shapes(spec)
        prefixed = settings.prefixed(spec)
        reference = {"file": f"ref/{i:05d}{engine.suffix}", "inputs": _inputs(shapes[:1])} if prefixed else fixed
        entries.append(
            {"file": f"ops/{i:05d}{engine.suffix}", "key": key, "inputs": _inputs(shapes), "reference": reference}
        )
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": FORMAT_VERSION,
        "engine": engine.name,
        "engine_options": engine.options(settings),
        "settings": settings.export_header(),
        "opset": settings.opset if engine.target else None,
        "table": dict(table),
        "ops": entries,
    }
    manifest["id"] = text_hash(json.dumps(manifest, sort_keys=True))[:16]
    return manifest


def manifest_id(ops: Dict[str, Dict[str, Any]], settings: EngineSettings, table: Dict[str, Any]) -> str:
    """The id of exporting `ops` with `settings` for `table`: what timings must have been made from."""
    return _plan(ops, settings, table)["id"]


def plan_manifest(ops: Dict[str, Dict[str, Any]], settings: EngineSettings, table: Dict[str, Any]) -> Dict[str, Any]:
    """The manifest of exporting `ops` with `settings` (files named, nothing written); `table` says what for."""
    manifest = _plan(ops, settings, table)
    manifest["engine_version"] = get_engine(settings.engine).version()
    manifest["ppnas_version"] = ppnas.__version__
    return manifest


def _write_models(
    ops: Dict[str, Dict[str, Any]], folder: str, settings: EngineSettings, manifest: Dict[str, Any]
) -> None:
    """Save every op (and reference) as a Paddle model, then convert them all to the engine's format."""
    engine = get_engine(settings.engine)
    stems: Dict[str, Tuple[Any, bool, Any]] = {}  # stem -> (spec or None, behind a prefix, shapes of a prefix alone)
    for entry, spec in zip(manifest["ops"], ops.values()):
        prefixed = settings.prefixed(spec)
        stems[os.path.splitext(entry["file"])[0]] = (spec, prefixed, None)
        reference = entry["reference"]
        shapes = [i["shape"] for i in reference["inputs"]] if prefixed else None
        stems.setdefault(os.path.splitext(reference["file"])[0], (None, prefixed, shapes))
    for stem, (spec, prefixed, shapes) in stems.items():
        save_op_model(spec, prefixed, os.path.join(folder, stem), shapes)
    keys = {os.path.splitext(e["file"])[0]: e["key"] for e in manifest["ops"]}
    engine.convert([os.path.join(folder, s) for s in stems], settings.opset, [keys.get(s, "reference") for s in stems])
    if engine.target:  # keep only the engine's files: the device needs nothing else
        for path in glob.glob(os.path.join(folder, "*", "*")):
            if not path.endswith(engine.suffix):
                os.remove(path)


def export_ops(
    ops: Dict[str, Dict[str, Any]], folder: str, settings: EngineSettings, table: Dict[str, Any], replace: bool = False
) -> Dict[str, Any]:
    """Write the op models of `ops` into `folder` (see the module docstring); returns the manifest.

    A folder that already holds this export is left as it is (its timings resume); one that holds another
    export is refused, or emptied first with `replace` (the builder's own work folder)."""
    get_engine(settings.engine).check_available()
    manifest = plan_manifest(ops, settings, table)
    if os.path.exists(os.path.join(folder, MANIFEST)):
        with timer_errors():
            found = load_manifest(folder)
        if found["id"] == manifest["id"]:
            _logger.info("%s already holds these %d op models", folder, len(ops))
            return found
        if not replace:
            raise TableError(f"{folder} holds the op models of another export: use another folder, or delete it")
    if replace and os.path.isdir(folder):
        shutil.rmtree(folder)
    elif os.path.isdir(folder) and os.listdir(folder):
        raise TableError(f"{folder} is not empty and holds no manifest.json: export into a new or empty folder")
    for sub in ("ops", "ref"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    _write_models(ops, folder, settings, manifest)
    shutil.copy(time_ops.__file__, os.path.join(folder, "time_ops.py"))
    atomic_write_json(os.path.join(folder, MANIFEST), manifest, indent=1)  # last: its presence means complete
    return manifest
