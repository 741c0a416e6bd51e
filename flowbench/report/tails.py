"""Cells whose mean test NLL is dominated by a few test points.

One test point with log-density near -1e11 turns a cell with validation NLL 2.4 into a mean test
NLL of 1e7 nats, and a table's mean ± std and ranks with it. The runner records, per ok cell,
robust companions of the mean (all in nats per example, like ``test_nll``):

``test_nll_median``    median of the per-point test NLLs
``test_nll_top``       the 5 largest per-point test NLLs, descending
``test_tail_points``   k = max(1, ceil(0.001 * n_test))
``test_nll_trimmed``   the mean without the k largest per-point NLLs
``test_tail_shift``    ``test_nll - test_nll_trimmed``
``test_tail_share``    the top k's share of the total absolute deviation from the median
``test_tail_flag``     true when those k points dominate the mean (the runner's threshold)
``n_test``             (optional) the number of test points

A (dataset, flow, base) with any flagged seed is marked :data:`MARK` wherever it is shown, is
never marked best and is not ranked on that dataset; :func:`tail_sentence` says why, under the
table. Records written before these fields existed are simply not flagged.
"""

from __future__ import annotations

from typing import Any, Iterable

from .numbers import grouped, short

MARK = "†"

#: the explanation under every table that can carry the mark
MARK_NOTE = (f"{MARK}: the mean test NLL of at least one seed is dominated by a few test points "
             "(below); such a combination is never marked best and is not ranked on that "
             "dataset.")


def is_flagged(record: dict[str, Any]) -> bool:
    """An ok cell whose mean test NLL the runner found dominated by its worst few points."""
    return record.get("status") == "ok" and record.get("test_tail_flag") is True


def marked(text: str, flagged: bool) -> str:
    """``text`` with the mark appended when ``flagged``."""
    return f"{text} {MARK}" if flagged else text


def _points(record: dict[str, Any]) -> str:
    k = int(record.get("test_tail_points") or 1)
    n = record.get("n_test")
    if isinstance(n, (int, float)) and n > 0:
        return f"{grouped(k)} of {grouped(n)} test points {'carries' if k == 1 else 'carry'}"
    if k == 1:
        return "its worst test point carries"
    return f"its {grouped(k)} worst test points carry"


def tail_sentence(record: dict[str, Any], unit: str = "nats", to_unit: float = 1.0) -> str:
    """Why ``record`` is flagged, in one sentence: how many points, their share of the deviation
    from the median, the largest per-point NLLs, and the mean, median and trimmed mean (in
    ``unit``; ``to_unit`` converts nats to it)."""
    share = record.get("test_tail_share")
    share_text = f"{100 * float(share):.1f} %" if isinstance(share, (int, float)) else "most"
    top = [short(float(v) * to_unit) for v in record.get("test_nll_top") or []]
    top_text = f" (largest per-point NLLs {', '.join(top)})" if top else ""
    values = [(name, record.get(field)) for name, field in (
        ("mean", "test_nll"), ("median", "test_nll_median"), ("trimmed mean", "test_nll_trimmed"))]
    numbers = ", ".join(f"{name} {short(float(v) * to_unit)}" for name, v in values
                        if isinstance(v, (int, float)))
    return (f"{MARK} {record['dataset']} {record['flow']}/{record['base']} seed "
            f"{record.get('seed')}: {_points(record)} {share_text} of the deviation from the "
            f"median{top_text}; {numbers} {unit}.")


def tail_sentences(records: Iterable[dict[str, Any]], unit: str = "nats",
                   to_unit: float = 1.0) -> list[str]:
    """One :func:`tail_sentence` per flagged record, by seed."""
    flagged = sorted((r for r in records if is_flagged(r)), key=lambda r: r.get("seed", 0))
    return [tail_sentence(r, unit, to_unit) for r in flagged]
