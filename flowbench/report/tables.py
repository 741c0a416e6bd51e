"""The NLL table: test NLL per dataset x flow x base, mean ± std over seeds, against the oracle.

``gap`` is the model's test NLL minus the true density's NLL on the same test points: a paired,
per-example estimate of KL(p_data || p_model) in nats, with far less noise than comparing with the
entropy. Cells that diverged or failed are counted and shown, never averaged.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from .numbers import mean_std
from .ranking import dataset_ranks
from .tails import MARK_NOTE, is_flagged, marked, tail_sentences

KEYS = ["dataset", "flow", "base"]


def _std(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if values.count() >= 2 else float("nan")


def _unit(records: pd.DataFrame) -> dict[str, Any]:
    """How a dataset's NLL is shown: nats per example, or bits per dimension for discrete data
    (records carrying ``test_bpd``); ``to_unit`` converts nats to it."""
    both = records.dropna(subset=["test_nll", "test_bpd"])
    both = both[both["test_nll"] != 0]
    if both.empty:
        return {"unit": "nats", "to_unit": 1.0}
    return {"unit": "bits/dim", "to_unit": float((both["test_bpd"] / both["test_nll"]).iloc[0])}


def _seed_mean(ok: pd.DataFrame, column: str) -> float:
    """Mean over ok seeds of a per-seed number that older records may lack (NaN then)."""
    if column not in ok:
        return np.nan
    values = pd.to_numeric(ok[column], errors="coerce")
    return float(values.mean()) if values.notna().any() else np.nan


#: nll_summary's columns; ``test_nll_median`` / ``test_nll_trimmed`` are seed means of the
#: per-seed robust numbers (see :mod:`.tails`), ``tail_flagged`` counts the ok seeds whose mean
#: is dominated by a few test points and ``tail_notes`` says why, one line per such seed
SUMMARY_COLUMNS = KEYS + [
    "seeds", "ok", "diverged", "failed", "test_nll_mean", "test_nll_std", "test_nll_median",
    "test_nll_trimmed", "tail_flagged", "tail_notes", "gap_mean", "gap_std", "entropy",
    "oracle_test_nll", "unit", "to_unit", "best"]


def nll_summary(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (dataset, flow, base): ok seeds, test NLL mean/std with its robust companions
    (median, trimmed mean, tail flags), gap mean/std, entropy, oracle, and ``best``: the lowest
    mean per dataset among combinations whose every seed finished ok and none is flagged."""
    records = list(records)
    frame = pd.DataFrame(records)
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    for column in ("test_nll", "gap", "entropy", "oracle_test_nll", "test_bpd"):
        # records store NaN as null (JSON); make every such column numeric again
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame \
            else np.nan
    rows = []
    for (dataset, flow, base), group in frame.groupby(KEYS, sort=False):
        ok = group[group["status"] == "ok"]
        unit = _unit(frame[frame["dataset"] == dataset])
        cells = [records[i] for i in group.index]
        rows.append({
            "dataset": dataset, "flow": flow, "base": base,
            "seeds": len(group), "ok": len(ok),
            "diverged": int((group["status"] == "diverged").sum()),
            "failed": int(group["status"].isin(["failed", "timeout"]).sum()),
            "test_nll_mean": float(ok["test_nll"].mean()) if len(ok) else np.nan,
            "test_nll_std": _std(ok["test_nll"]),
            "test_nll_median": _seed_mean(ok, "test_nll_median"),
            "test_nll_trimmed": _seed_mean(ok, "test_nll_trimmed"),
            "tail_flagged": sum(is_flagged(r) for r in cells),
            "tail_notes": "\n".join(tail_sentences(cells, **unit)),
            "gap_mean": float(ok["gap"].mean()) if len(ok) else np.nan,
            "gap_std": _std(ok["gap"]),
            "entropy": float(group["entropy"].iloc[0]),
            "oracle_test_nll": float(group["oracle_test_nll"].iloc[0]),
            **unit,
        })
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-1])
    # a combination only competes for "best" when every one of its seeds finished ok and no
    # seed's mean is dominated by a few test points
    eligible = (summary["ok"] == summary["seeds"]) & (summary["tail_flagged"] == 0)
    ranked = summary["test_nll_mean"].where(eligible)
    best = ranked.groupby(summary["dataset"]).transform("min")
    summary["best"] = ranked.notna() & (ranked == best)
    return summary


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
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths).rstrip()
    return "\n".join([line(columns), rule] + [line(row) for row in cells])


def tail_notes(frame: pd.DataFrame) -> list[str]:
    """The sentences of every flagged row of a summary (or model summary), in row order."""
    if "tail_notes" not in frame:
        return []
    return [line for text in frame["tail_notes"].fillna("") for line in str(text).splitlines()
            if line]


def format_nll_table(summary: pd.DataFrame) -> str:
    """The summary as fixed-width text for the terminal; ``*`` marks the best per dataset, ``†``
    a combination whose mean is dominated by a few test points (explained under the table)."""
    if summary.empty:
        return "(no finished cells)"
    flagged = summary["tail_flagged"] > 0 if "tail_flagged" in summary else \
        pd.Series(False, index=summary.index)
    shown = pd.DataFrame({
        "dataset": summary["dataset"],
        "entropy": summary["entropy"].map(lambda v: f"{v:.4f}" if np.isfinite(v) else "-"),
        "flow": summary["flow"],
        "base": summary["base"],
        "test NLL": [marked(mean_std(m, s, scale=k), f) for m, s, k, f in
                     zip(summary["test_nll_mean"], summary["test_nll_std"], summary["to_unit"],
                         flagged, strict=True)],
        "unit": summary["unit"],
        "gap to oracle": [mean_std(m, s, signed=True) for m, s in
                          zip(summary["gap_mean"], summary["gap_std"], strict=True)],
        "seeds ok": [_status(row) for _, row in summary.iterrows()],
        "": summary["best"].map(lambda b: "*" if b else ""),
    })
    # show each dataset's name and entropy once, on its first row
    repeated = shown["dataset"].duplicated()
    shown.loc[repeated, ["dataset", "entropy", "unit"]] = ""
    text = text_table(shown) + (
        "\n\ntest NLL: nats per example, or bits per dimension of the original discrete data "
        "(images).\nentropy: true differential entropy of the data density (nats). gap: test NLL "
        "minus the true density's NLL\non the same test points (estimates KL(data || model); 0 "
        "is perfect). mean ± std over seeds; * best per dataset."
    )
    notes = tail_notes(summary)
    return text + ("\n\n" + "\n".join([MARK_NOTE, *notes]) if notes else "")


# --- report tables ------------------------------------------------------------------------------

REFERENCE_PREFIX = "ref:"


def model_summary(summary: pd.DataFrame, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long form of everything compared per dataset: each flow/base, each reference method, and
    the oracle. Columns: dataset, model, kind ("flow"|"reference"|"oracle"), seeds, ok, diverged,
    failed, test_nll_mean, test_nll_std, gap_mean, unit, to_unit, tail_flagged, tail_notes, rank
    (1 = lowest test NLL among flows and references with a value on that dataset, ties sharing
    their average rank: :func:`.ranking.dataset_ranks`; combinations with a failed or flagged
    seed, and the oracle, are not ranked) and best (the lowest rank of its dataset)."""
    rows = []
    for _, row in summary.iterrows():
        rows.append({
            "dataset": row["dataset"], "model": f"{row['flow']}/{row['base']}", "kind": "flow",
            **{k: row[k] for k in ("seeds", "ok", "diverged", "failed", "test_nll_mean",
                                   "test_nll_std", "gap_mean", "unit", "to_unit")},
            "tail_flagged": int(row.get("tail_flagged", 0) or 0),
            "tail_notes": row.get("tail_notes", "") or "",
            "complete": row["ok"] == row["seeds"],
        })
    oracle = summary.groupby("dataset", sort=False)[
        ["oracle_test_nll", "entropy", "unit", "to_unit"]].first()
    single = {"seeds": 1, "ok": 1, "diverged": 0, "failed": 0, "test_nll_std": np.nan,
              "tail_flagged": 0, "tail_notes": "", "complete": True}
    if references is not None and not references.empty:
        for _, ref in references.iterrows():
            if ref["dataset"] not in oracle.index or ref.get("status", "ok") != "ok":
                continue
            nll = float(ref["test_nll"])
            rows.append({
                "dataset": ref["dataset"], "model": REFERENCE_PREFIX + ref["method"],
                "kind": "reference", **single, "test_nll_mean": nll,
                "gap_mean": nll - oracle.loc[ref["dataset"], "oracle_test_nll"],
                "unit": oracle.loc[ref["dataset"], "unit"],
                "to_unit": oracle.loc[ref["dataset"], "to_unit"],
            })
    for dataset, values in oracle.iterrows():
        if np.isfinite(values["oracle_test_nll"]):
            rows.append({
                "dataset": dataset, "model": "oracle", "kind": "oracle", **single,
                "test_nll_mean": values["oracle_test_nll"], "gap_mean": 0.0,
                "unit": values["unit"], "to_unit": values["to_unit"],
            })
    frame = pd.DataFrame(rows)
    competing = (frame["kind"] != "oracle") & frame["complete"] & (frame["tail_flagged"] == 0) \
        & np.isfinite(frame["test_nll_mean"].astype(float))
    values = frame[competing].pivot_table(index="dataset", columns="model",
                                          values="test_nll_mean", sort=False)
    ranks = dataset_ranks(values)
    frame["rank"] = [float(ranks.at[d, m]) if c else np.nan for d, m, c in
                     zip(frame["dataset"], frame["model"], competing, strict=True)]
    lowest = frame.groupby("dataset")["rank"].transform("min")
    frame["best"] = frame["rank"].notna() & (frame["rank"] == lowest)
    return frame.drop(columns="complete")


def model_order(models: pd.DataFrame) -> list[str]:
    """Flows (run order), then references, then the oracle."""
    kinds = {"flow": 0, "reference": 1, "oracle": 2}
    first = models.drop_duplicates("model")
    return sorted(first["model"], key=lambda m: (kinds[first.set_index("model").loc[m, "kind"]],
                                                 list(first["model"]).index(m)))


def mean_ranks(models: pd.DataFrame) -> dict[str, float]:
    """Average rank per model over the datasets where it was ranked."""
    ranked = models.dropna(subset=["rank"])
    return ranked.groupby("model")["rank"].mean().to_dict()


def gap_table(models: pd.DataFrame) -> pd.DataFrame:
    """Datasets as rows, models as columns: mean gap to the oracle (nats; KL estimate)."""
    order = [m for m in model_order(models) if m != "oracle"]
    frame = models[models["model"] != "oracle"].pivot_table(
        index="dataset", columns="model", values="gap_mean", sort=False)
    return frame.reindex(columns=[m for m in order if m in frame.columns])


def rank_table(models: pd.DataFrame) -> pd.DataFrame:
    """Datasets as rows, models as columns: the rank (empty where not ranked), then the mean."""
    order = [m for m in model_order(models) if m != "oracle"]
    frame = models.dropna(subset=["rank"]).pivot_table(
        index="dataset", columns="model", values="rank", sort=False)
    frame = frame.reindex(columns=[m for m in order if m in frame.columns])
    frame.loc["mean rank"] = frame.mean()
    return frame


def speed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per flow/base over every ok cell: parameters, training / density / sampling throughput
    (examples per second, median over cells, with the interquartile range over cells), and
    training seconds per cell."""
    ok = frame[frame["status"] == "ok"].copy()
    if ok.empty:
        return pd.DataFrame()
    ok["model"] = ok["flow"] + "/" + ok["base"]
    columns = {
        "n_params": "parameters",
        "train_examples_per_second": "train ex/s",
        "log_prob_examples_per_second": "log_prob ex/s",
        "sample_examples_per_second": "sample ex/s",
        "train_seconds": "train s/cell",
    }
    rows = {}
    for model, group in ok.groupby("model", sort=False):
        row = {"cells": len(group)}
        for column, label in columns.items():
            if column not in group or group[column].isna().all():
                continue
            values = pd.to_numeric(group[column], errors="coerce").dropna()
            row[label] = float(values.median())
            if column.endswith("per_second") and len(values) > 1:
                row[label + " IQR"] = float(values.quantile(0.75) - values.quantile(0.25))
        rows[model] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "flow/base"
    return table


def logdet_table(logdet: pd.DataFrame) -> pd.DataFrame:
    """Per flow/base and dimension: seconds per example of the analytic log_prob and of the
    brute-force Jacobian path, their ratio, the largest log-det disagreement, and a note where
    the brute-force path was not measured (its time budget was spent at a smaller D)."""
    if "path" in logdet:
        logdet = logdet.dropna(subset=["path"])  # rows of flows whose measurement failed
    if logdet.empty:
        return pd.DataFrame()
    status = logdet["status"].fillna("ok") if "status" in logdet else \
        pd.Series("ok", index=logdet.index)
    measured = logdet[status == "ok"]
    wide = measured.pivot_table(index=["flow", "base", "dim"], columns="path",
                                values="per_example_seconds", sort=False)
    error = measured.groupby(["flow", "base", "dim"], sort=False)["max_abs_error"].max()
    table = pd.DataFrame({
        "analytic s/example": wide.get("analytic"),
        "brute-force s/example": wide.get("brute_force"),
    })
    table["brute / analytic"] = table["brute-force s/example"] / table["analytic s/example"]
    table["max |log-det error|"] = error
    skipped = logdet[status == "skipped"].set_index(["flow", "base", "dim"])
    if not skipped.empty:
        table["note"] = skipped["message"].reindex(table.index).fillna("")
    return table


def linear_table(linear: pd.DataFrame) -> pd.DataFrame:
    """Glow's invertible 1x1 convolution: LU vs plain seconds per operation and channel count."""
    if linear.empty:
        return pd.DataFrame()
    wide = linear.pivot_table(index=["operation", "channels"], columns="layer",
                              values="seconds_median", sort=False)
    wide["plain / lu"] = wide.get("plain") / wide.get("lu")
    return wide


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4g", index: bool = True) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    if frame.empty:
        return "_(no data)_"
    def fmt(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else format(value, floatfmt)
        return str(value).replace("|", "\\|")
    data = frame.reset_index() if index else frame
    header = [str(c) for c in data.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in data.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)
