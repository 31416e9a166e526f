"""Tables of candidates, for stdout (plain) and report.md (markdown)."""

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ppnas.report.selection import Record


def _fmt(value: Optional[float], divisor: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value / divisor:.{digits}f}"


def table_rows(records: Sequence[Record], many_clients: bool, first: str = "rank") -> Tuple[List[str], List[List[str]]]:
    """Header and rows: `first` (rank, or # for a plain list), step, reward, latency, FLOPs, params, tokens."""
    header = [first, "step"] + (["client"] if many_clients else [])
    header += ["reward", "latency_ms", "MFLOPs", "params_k", "tokens"]
    rows = []
    for rank, r in enumerate(records, start=1):
        row = [str(rank), str(r.get("step"))] + ([str(r.get("client"))] if many_clients else [])
        row += [f"{r['reward']:.4f}", _fmt(r.get("latency_ms")), _fmt(r.get("flops"), 1e6, 1)]
        row += [_fmt(r.get("params"), 1e3, 1), ",".join(str(t) for t in r.get("tokens", []))]
        rows.append(row)
    return header, rows


def plain_table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    return "\n".join(lines)


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def structure_lines(structure: Dict[str, Any]) -> List[str]:
    """One `key: value` line per entry, values in JSON flow style (valid YAML, and short)."""
    return [f"{key}: {json.dumps(value)}" for key, value in structure.items()]
