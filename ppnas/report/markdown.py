"""report.md of a token search (SANAS, the one-shot search): the window, top candidates with their configs and
training commands, the deploy command, the Pareto front and failures."""

import os
from typing import Any, Dict, List, Optional, Sequence

from ppnas.engine.meta import META_FILE
from ppnas.history import best_record
from ppnas.report.selection import Axis, Record, Window, candidate_name, is_one_shot, many_clients, search_name
from ppnas.report.tables import markdown_table, structure_lines, table_rows
from ppnas.units import format_count, format_ms

PARETO_PNG = "pareto.png"
CURVE_PNG = "search_curve.png"


def train_command(meta: Dict[str, Any], fragment: str) -> str:
    """The runner's hint with {fragment} (absolute: the command may run in another folder), {stem} (that
    path without .yml) and {name} (the file name without .yml) filled in; may span lines."""
    path = os.path.abspath(fragment)
    stem = os.path.splitext(path)[0]
    hint = str(meta["full_train_hint"])
    return hint.replace("{fragment}", path).replace("{stem}", stem).replace("{name}", os.path.basename(stem))


def finetune_command(meta: Dict[str, Any], record: Record) -> str:
    """tools/bignas.py's finetune_subnet phase for a one-shot search's candidate."""
    save_dir = (meta.get("options") or {}).get("save_dir")
    tokens = ",".join(str(int(t)) for t in record["tokens"])
    where = f"save_dir={save_dir} " if save_dir else ""
    return f"python tools/bignas.py -c {meta.get('config')} --phase finetune_subnet -o {where}subnet_tokens={tokens}"


def status_counts(records: Sequence[Record]) -> Dict[str, int]:
    return {
        status: sum(1 for r in records if r.get("status") == status) for status in ("trained", "rejected", "failed")
    }


def _deploy_lines(records: Sequence[Record], meta: Optional[Dict[str, Any]], many: bool) -> List[str]:
    """The command that exports the candidate whose weights the search saved (the best rewarded one)."""
    best = best_record(list(records))
    if not meta or not meta.get("export_hint") or best is None:
        return []
    return [
        "## Deploy",
        "",
        f"The search saved the weights of its best candidate ({candidate_name(best, many)}, reward "
        f"{best['reward']:.4f}). Export it for Paddle Inference, with its deploy config (add `--onnx` for ONNX):",
        "",
        "```",
        str(meta["export_hint"]),
        "```",
        "",
    ]


def render_markdown(
    records: Sequence[Record],
    meta: Optional[Dict[str, Any]],
    window: Optional[Window],
    axis: Axis,
    top: Sequence[Record],
    front: Sequence[Record],
    fragments: Sequence[str],
    save_dir: str,
) -> str:
    counts = status_counts(records)
    clients = sorted({str(r.get("client", "local")) for r in records})
    many = many_clients(records)
    title = f"# NAS report: {search_name(meta)}, {meta.get('space', '')}" if meta else "# NAS report"
    one_shot = is_one_shot(meta)
    lines = [title, "", f"- save_dir: `{save_dir}`"]
    if meta and meta.get("config"):
        lines.append(f"- config: `{meta['config']}`")
    if window is not None:
        lines.append(f"- constraint: {window.describe()}")
    else:
        lines.append(f"- constraint: unknown (no {META_FILE} in save_dir): every trained candidate is ranked")
    lines.append(
        f"- candidates: {counts['trained']} {'evaluated' if one_shot else 'trained'}, {counts['rejected']} rejected "
        f"by the constraint, {counts['failed']} failed" + (f"; clients: {', '.join(clients)}" if many else "")
    )
    if one_shot:
        lines.append(
            "- reward: AP@0.5 of each subnet with the weights it inherits from the trained supernet, after BN "
            "calibration on the subnet. It ranks subnets; it is not the AP a subnet reaches when trained: finetune "
            "the one you pick (the command under each candidate), or train it fully"
        )
    lines += ["", f"![Pareto front]({PARETO_PNG})", "", f"![Search curve]({CURVE_PNG})", ""]
    lines += [f"## Top {len(top)} candidates under the constraint", ""]
    if not top:
        lines.append("No trained candidate lies inside the constraint window.")
    else:
        lines += [markdown_table(*table_rows(top, many)), ""]
    for rank, record in enumerate(top, start=1):
        lines += [f"### {rank}. {candidate_name(record, many)}", ""]
        measured = [f"reward {record['reward']:.4f}"]
        if record.get("latency_ms") is not None:
            measured.append(format_ms(record["latency_ms"]))
        measured += [format_count(record.get("flops"), "FLOPs"), format_count(record.get("params"), "params")]
        seconds = record.get("seconds", 0.0)
        measured.append(
            f"evaluated in {seconds:.0f} s (inherited weights)" if one_shot else f"trained in {seconds:.0f} s"
        )
        lines.append(", ".join(measured) + f"; tokens `{record.get('tokens')}`")
        lines += ["", "```yaml", *structure_lines(record.get("structure") or {}), "```", ""]
        if one_shot and meta:
            lines += [
                "Finetune it from the supernet's weights:",
                "",
                "```bash",
                finetune_command(meta, record),
                "```",
                "",
            ]
        if rank <= len(fragments):
            lines += ["Train it fully:", "", "```bash", train_command(meta, fragments[rank - 1]), "```", ""]
    lines += _deploy_lines(records, meta, many)
    lines += [
        "## Pareto front",
        "",
        f"Trained candidates inside the window that no other beats on both reward and {axis.key}, cheapest first.",
        "",
    ]
    lines += [markdown_table(*table_rows(front, many, first="#")), ""] if front else ["(empty)", ""]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        lines += ["## Failed candidates", ""]
        lines += [f"- tokens `{r.get('tokens')}`: {r.get('reason')}" for r in failed] + [""]
    return "\n".join(lines)
