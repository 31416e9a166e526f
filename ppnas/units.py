"""Units of the measured quantities, so every printout and plot says the same thing the same way.

Records carry `latency_ms` (milliseconds) and raw `flops` (paddle.flops: one multiply-add counts as one)
and `params` (a count); a latency constraint is written in its table's unit (latency_855.txt: us).
"""

from typing import Optional, Tuple

from latency.table import UNIT_MS
from ppnas.errors import ConfigError

_COUNT_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def latency_to_ms(value: float, unit: str, where: str = "unit") -> float:
    """`value` in `unit` (a latency table's unit: ns, us, ms, s) as milliseconds; `where` names the setting."""
    factor = UNIT_MS.get(str(unit).strip())
    if factor is None:
        raise ConfigError(f"{where}: unknown latency unit {unit!r}; use one of {', '.join(UNIT_MS)}")
    return float(value) * factor


def count_prefix(largest: float) -> Tuple[float, str]:
    """The divisor and SI prefix that make counts up to `largest` readable (1.2e9 -> (1e9, 'G'))."""
    for divisor, prefix in _COUNT_PREFIXES:
        if abs(largest) >= divisor:
            return divisor, prefix
    return 1.0, ""


def format_count(value: Optional[float], what: str) -> str:
    """`format_count(1.23e9, 'FLOPs')` -> '1.23G FLOPs', `format_count(120e3, 'params')` -> '120k params'."""
    if value is None:
        return "-"
    divisor, prefix = count_prefix(value)
    return f"{value / divisor:.3g}{prefix} {what}"


def format_ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def parse_count(value: object, where: str) -> float:
    """A count written as a number or with an SI prefix, as United-Perception writes FLOPs ('200M', '1.5G')."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    factors = {prefix: divisor for divisor, prefix in _COUNT_PREFIXES if prefix}
    factor = factors.get(text[-1:], 1.0)
    try:
        return float(text[:-1] if text[-1:] in factors else text) * factor
    except ValueError:
        raise ConfigError(f"{where} must be a number, optionally with k, M or G ('200M'), got {value!r}") from None
