"""The NLL table: test NLL per dataset x flow x base, mean ± std over seeds, against the oracle.

``gap`` is the model's test NLL minus the true density's NLL on the same test points: a paired,
per-example estimate of KL(p_data || p_model) in nats, with far less noise than comparing with the
entropy. Cells that diverged or failed are counted and shown, never averaged.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

KEYS = ["dataset", "flow", "base"]


def _std(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if values.count() >= 2 else float("nan")


def nll_summary(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (dataset, flow, base): ok seeds, test NLL and gap mean/std, entropy, oracle."""
    frame = pd.DataFrame(list(records))
    columns = KEYS + ["seeds", "ok", "diverged", "failed", "test_nll_mean", "test_nll_std",
                      "gap_mean", "gap_std", "entropy", "oracle_test_nll", "best"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    for column in ("test_nll", "gap", "entropy", "oracle_test_nll"):
        # records store NaN as null (JSON); make every such column numeric again
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame \
            else np.nan
    rows = []
    for (dataset, flow, base), group in frame.groupby(KEYS, sort=False):
        ok = group[group["status"] == "ok"]
        rows.append({
            "dataset": dataset, "flow": flow, "base": base,
            "seeds": len(group), "ok": len(ok),
            "diverged": int((group["status"] == "diverged").sum()),
            "failed": int(group["status"].isin(["failed", "timeout"]).sum()),
            "test_nll_mean": float(ok["test_nll"].mean()) if len(ok) else np.nan,
            "test_nll_std": _std(ok["test_nll"]),
            "gap_mean": float(ok["gap"].mean()) if len(ok) else np.nan,
            "gap_std": _std(ok["gap"]),
            "entropy": float(group["entropy"].iloc[0]),
            "oracle_test_nll": float(group["oracle_test_nll"].iloc[0]),
        })
    summary = pd.DataFrame(rows, columns=columns[:-1])
    # a combination only competes for "best" when every one of its seeds finished ok
    complete = summary["ok"] == summary["seeds"]
    ranked = summary["test_nll_mean"].where(complete)
    best = ranked.groupby(summary["dataset"]).transform("min")
    summary["best"] = ranked.notna() & (ranked == best)
    return summary


def _mean_std(mean: float, std: float, signed: bool = False) -> str:
    if not np.isfinite(mean):
        return "-"
    text = f"{mean:+.4f}" if signed else f"{mean:.4f}"
    return text + (f" ± {std:.4f}" if np.isfinite(std) else "")


def _status(row: pd.Series) -> str:
    text = f"{row['ok']}/{row['seeds']}"
    extra = [f"{row[s]} {s}" for s in ("diverged", "failed") if row[s]]
    return text + (f" ({', '.join(extra)})" if extra else "")


def text_table(frame: pd.DataFrame) -> str:
    """Left-aligned fixed-width text, one line per row, a rule under the header."""
    columns = [str(c) for c in frame.columns]
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()
    rule = "  ".join("-" * w for w in widths).rstrip()
    return "\n".join([line(columns), rule] + [line(row) for row in cells])


def format_nll_table(summary: pd.DataFrame) -> str:
    """The summary as fixed-width text for the terminal; ``*`` marks the best per dataset."""
    if summary.empty:
        return "(no finished cells)"
    shown = pd.DataFrame({
        "dataset": summary["dataset"],
        "entropy": summary["entropy"].map(lambda v: f"{v:.4f}" if np.isfinite(v) else "-"),
        "flow": summary["flow"],
        "base": summary["base"],
        "test NLL (nats)": [_mean_std(m, s) for m, s in
                            zip(summary["test_nll_mean"], summary["test_nll_std"])],
        "gap to oracle": [_mean_std(m, s, signed=True) for m, s in
                          zip(summary["gap_mean"], summary["gap_std"])],
        "seeds ok": [_status(row) for _, row in summary.iterrows()],
        "": summary["best"].map(lambda b: "*" if b else ""),
    })
    # show each dataset's name and entropy once, on its first row
    repeated = shown["dataset"].duplicated()
    shown.loc[repeated, ["dataset", "entropy"]] = ""
    return text_table(shown) + (
        "\n\nentropy: true differential entropy of the data density (nats). gap: test NLL minus "
        "the true density's NLL\non the same test points (estimates KL(data || model); 0 is "
        "perfect). mean ± std over seeds; * best per dataset."
    )
