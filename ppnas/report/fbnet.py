"""The report of an FBNet run (`tools/fbnet.py`): the derived subnet with its LUT price per layer and its
measured latency, test NME per epoch, the choice probabilities, the retraining result and the export command.

Reads what the run wrote: history.jsonl (records of kind epoch, derived, retrain, export), lut.json, subnet.yml
and search_meta.json; writes report.md, nme_curve.png and choice_probabilities.png into the folder.
"""

import json
import os
from typing import Any, Dict, List, Optional

import yaml

from ppnas.fbnet.supernet import slot_label, supernet_spec
from ppnas.report.figures.nme import plot_nme_curve
from ppnas.report.figures.probabilities import plot_choice_probabilities
from ppnas.report.selection import Record
from ppnas.report.tables import markdown_table

NME_PNG = "nme_curve.png"
PROBABILITIES_PNG = "choice_probabilities.png"
LUT_JSON = "lut.json"
STRUCTURE_YML = "subnet.yml"


def _layer_names(save_dir: str, count: int) -> List[str]:
    """'stem', 'layer i (stage)', 'head' from the subnet's structure file; 'layer i' without one."""
    path = os.path.join(save_dir, STRUCTURE_YML)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            names = [slot_label(slot) for slot in supernet_spec((yaml.safe_load(f) or {}).get("Supernet")).layers]
        if len(names) == count:
            return names
    return [f"layer {i}" for i in range(count)]


def _lut(save_dir: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(save_dir, LUT_JSON)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _subnet_lines(derived: Record, lut: Optional[Dict[str, Any]], names: List[str]) -> List[str]:
    """The chosen block of each layer with its LUT price, the fixed part and the (calibrated) total."""
    unit = derived.get("lut_unit", "")
    rows = []
    for i, choice in enumerate(derived["choices"]):
        price = "-"
        if lut is not None and choice in lut["candidates"][i]:
            price = f"{lut['per_layer'][i][lut['candidates'][i].index(choice)]:.4g}"
        rows.append([names[i], f"`{choice}`", price])
    lines = [markdown_table(["layer", "block", f"LUT price ({unit})"], rows), ""]
    if lut is not None:
        calibration = lut.get("calibration")
        how = f", calibrated as {calibration[0]:.3g} x sum + {calibration[1]:.3g}" if calibration else ""
        lines.append(f"Fixed part (what is not searched): {lut['fixed']:.4g} {unit}{how}.")
    predicted = f"{derived['predicted']:.4g} {unit}"
    if derived.get("predicted_ms") is not None:
        predicted += f" = {derived['predicted_ms']:.3f} ms"
    lines += [f"Predicted by the LUT: **{predicted}**.", ""]
    return lines


def _measured_lines(export: Optional[Record], derived: Record) -> List[str]:
    if export is None:
        return ["Not exported yet, so not measured end to end (see Deploy).", ""]
    measured = export["latency_ms_measured"]
    text = f"Measured end to end here (Paddle Inference, {export['threads']} thread): {measured:.3f} ms"
    if derived.get("predicted_ms"):
        error = (derived["predicted_ms"] - export["latency_ms_measured"]) / export["latency_ms_measured"]
        text += f"; the LUT's prediction is off by {100 * error:+.1f}%"
    return [text + f". Exported model: `{export['inference_model']}`.", ""]


def _epoch_table(epochs: List[Record]) -> str:
    rows = [
        [
            str(r["epoch"]),
            r["phase"],
            f"{r['nme']:.4f}",
            f"{r['expected_latency']:.4g} ({r['expected_searched']:.4g} searched) {r['latency_unit']}",
            f"{r['temperature']:.3f}",
            f"{r['predicted']:.4g} {r['lut_unit']}",
        ]
        for r in epochs
    ]
    norm = epochs[0]["nme_norm"] if epochs else ""
    headers = ["epoch", "phase", f"test NME ({norm})", "expected latency", "T", "derived subnet (LUT)"]
    return markdown_table(headers, rows)


def write_fbnet_report(
    save_dir: str, records: List[Record], meta: Optional[Dict[str, Any]], out_dir: Optional[str] = None
) -> Dict[str, Any]:
    """report.md, nme_curve.png and choice_probabilities.png of the FBNet run in `save_dir`, into `out_dir`
    (default save_dir)."""
    out_dir = save_dir if out_dir is None else out_dir
    os.makedirs(out_dir, exist_ok=True)
    epochs = [r for r in records if r.get("kind") == "epoch"]
    derived = ([r for r in records if r.get("kind") == "derived"] or [None])[-1]
    retrain = [r for r in records if r.get("kind") == "retrain"]
    export = ([r for r in records if r.get("kind") == "export"] or [None])[-1]
    subnet = derived or epochs[-1]
    lut = _lut(save_dir)
    names = _layer_names(save_dir, len(subnet["choices"]))
    nme_png = plot_nme_curve(epochs, retrain, os.path.join(out_dir, NME_PNG))
    probabilities_png = plot_choice_probabilities(
        epochs, names, lut["candidates"] if lut else [[] for _ in names], os.path.join(out_dir, PROBABILITIES_PNG)
    )
    meta = meta or {}
    lines = ["# NAS report: FBNet search, PFLD landmarks", "", f"- save_dir: `{save_dir}`"]
    if meta.get("config"):
        lines.append(f"- config: `{meta['config']}`")
    warmup = sum(1 for r in epochs if r.get("phase") == "warmup")
    nme = f"{epochs[0]['nme']:.4f} -> {epochs[-1]['nme']:.4f} (normalised by {epochs[-1]['nme_norm']})"
    lines.append(f"- search epochs: {len(epochs)} ({warmup} warm-up); test NME {nme}")
    state = "derived at the end of the search" if derived else "not derived yet: the search is still running"
    lines += ["", f"## Derived subnet ({state})", ""]
    lines += _subnet_lines(subnet, lut, names) + _measured_lines(export, subnet)
    lines += ["## Retraining", ""]
    if retrain:
        last = retrain[-1]
        lines += [
            f"{len(retrain)} epochs from the supernet's weights: test NME {retrain[0]['nme']:.4f} -> "
            f"**{last['nme']:.4f}** (loss {last['loss']:.4f}).",
            "",
        ]
    else:
        lines += [f"Not retrained yet: python tools/fbnet.py -c {meta.get('config', 'CONFIG')} --phase retrain", ""]
    lines += [f"![Test NME per epoch]({NME_PNG})", "", "## Search epochs", "", _epoch_table(epochs), ""]
    lines += ["## Choice probabilities", "", f"![Choice probabilities]({PROBABILITIES_PNG})", ""]
    if meta.get("export_hint"):
        lines += [
            "## Deploy",
            "",
            "Export the retrained subnet for Paddle Inference (checked against dygraph) and measure it here:",
            "",
            "```",
            str(meta["export_hint"]),
            "```",
            "",
        ]
    report = os.path.join(out_dir, "report.md")
    with open(report, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"FBNet run in {save_dir}: {len(epochs)} epochs, subnet {', '.join(subnet['choices'])}")
    print(f"wrote {nme_png}, {probabilities_png}, {report}")
    return {"report": report, "nme_curve": nme_png, "choice_probabilities": probabilities_png, "derived": derived}
