"""How numbers are written in tables and sentences, the same in the terminal, markdown and HTML.

- NLLs and gaps: 4 decimals, or compact scientific form from 1e4 on (``1.22e+07 ± 2.1e+07``), so
  one absurd cell never widens a table to 20-character decimals;
- throughputs and counts: whole numbers in groups of three digits separated by a narrow
  no-break space (``42 210``, ``17 414``), small values with 3 significant digits (``3.52``);
- p-values: 3 decimals, scientific form below 0.001 (``0.014``, ``3.2e-07``).
CSV files keep the plain numbers; only what people read is formatted.
"""

from __future__ import annotations

import math
from typing import Any

#: separates groups of three digits: U+202F NARROW NO-BREAK SPACE (never wraps in HTML)
GROUP = "\u202f"
#: from this magnitude on, values are written in scientific form
HUGE = 1e4


def _finite(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def fixed(value: Any, decimals: int = 4, signed: bool = False, sci: int = 2) -> str:
    """``decimals`` fixed decimals, or ``sci`` decimals of scientific form when |value| >= 1e4;
    ``-`` when not a finite number."""
    value = _finite(value)
    if math.isnan(value):
        return "-"
    sign = "+" if signed else ""
    if abs(value) >= HUGE:
        return format(value, f"{sign}.{sci}e")
    return format(value, f"{sign}.{decimals}f")


def mean_std(mean: Any, std: Any, signed: bool = False, scale: float = 1.0) -> str:
    """``mean ± std`` (``mean`` alone without a spread; ``-`` without a mean), each in
    :func:`fixed` form, after multiplying by ``scale`` (nats -> the table's unit)."""
    mean, std = _finite(mean) * scale, _finite(std) * scale
    if math.isnan(mean):
        return "-"
    text = fixed(mean, signed=signed)
    return text + (f" ± {fixed(std, sci=1)}" if not math.isnan(std) else "")


def short(value: Any) -> str:
    """A value in a sentence: 3 significant digits (trailing zeros kept) below 1e4, whole
    numbers from 100, scientific form from 1e4 (``1.90``, ``12.3``, ``1234``, ``1.22e+11``)."""
    value = _finite(value)
    if math.isnan(value):
        return "-"
    if abs(value) >= HUGE:
        return format(value, ".2e")
    rounded = float(format(value, ".3g"))  # 99.96 -> 100, written as a whole number
    if abs(rounded) >= 100:
        return format(value if abs(value) >= 100 else rounded, ".0f")
    if rounded == 0:
        return "0"
    return format(rounded, f".{max(0, 2 - math.floor(math.log10(abs(rounded))))}f")


def grouped(value: Any) -> str:
    """A count or throughput for people: ``42 210``, ``246 028``, ``17 414``; below 100 with 3
    significant digits (``3.52``); empty when not a finite number."""
    value = _finite(value)
    if math.isnan(value):
        return ""
    if abs(value) < 100:
        return format(value, ".3g")
    return format(round(value), ",").replace(",", GROUP)


def probability(value: Any) -> str:
    """A p-value: 3 decimals, scientific form below 0.001 (``0.014``, ``3.2e-07``), ``0`` when
    it underflows; ``-`` when not a finite number."""
    value = _finite(value)
    if math.isnan(value):
        return "-"
    if value == 0:
        return "0"
    return format(value, ".1e") if value < 1e-3 else format(value, ".3f")


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless n is 1: ``1 dataset``, ``6 datasets``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
