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


def _unit(records: pd.DataFrame) -> dict[str, Any]:
    """How a dataset's NLL is shown: nats per example, or bits per dimension for discrete data
    (records carrying ``test_bpd``); ``to_unit`` converts nats to it."""
    both = records.dropna(subset=["test_nll", "test_bpd"])
    both = both[both["test_nll"] != 0]
    if both.empty:
        return {"unit": "nats", "to_unit": 1.0}
    return {"unit": "bits/dim", "to_unit": float((both["test_bpd"] / both["test_nll"]).iloc[0])}


def nll_summary(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (dataset, flow, base): ok seeds, test NLL and gap mean/std, entropy, oracle."""
    frame = pd.DataFrame(list(records))
    columns = KEYS + ["seeds", "ok", "diverged", "failed", "test_nll_mean", "test_nll_std",
                      "gap_mean", "gap_std", "entropy", "oracle_test_nll", "unit", "to_unit",
                      "best"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    for column in ("test_nll", "gap", "entropy", "oracle_test_nll", "test_bpd"):
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
            **_unit(frame[frame["dataset"] == dataset]),
        })
    summary = pd.DataFrame(rows, columns=columns[:-1])
    # a combination only competes for "best" when every one of its seeds finished ok
    complete = summary["ok"] == summary["seeds"]
    ranked = summary["test_nll_mean"].where(complete)
    best = ranked.groupby(summary["dataset"]).transform("min")
    summary["best"] = ranked.notna() & (ranked == best)
    return summary


def _mean_std(mean: float, std: float, signed: bool = False, scale: float = 1.0) -> str:
    if not np.isfinite(mean):
        return "-"
    mean, std = mean * scale, std * scale
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
        "test NLL": [_mean_std(m, s, scale=k) for m, s, k in
                     zip(summary["test_nll_mean"], summary["test_nll_std"], summary["to_unit"])],
        "unit": summary["unit"],
        "gap to oracle": [_mean_std(m, s, signed=True) for m, s in
                          zip(summary["gap_mean"], summary["gap_std"])],
        "seeds ok": [_status(row) for _, row in summary.iterrows()],
        "": summary["best"].map(lambda b: "*" if b else ""),
    })
    # show each dataset's name and entropy once, on its first row
    repeated = shown["dataset"].duplicated()
    shown.loc[repeated, ["dataset", "entropy", "unit"]] = ""
    return text_table(shown) + (
        "\n\ntest NLL: nats per example, or bits per dimension of the original discrete data "
        "(images).\nentropy: true differential entropy of the data density (nats). gap: test NLL "
        "minus the true density's NLL\non the same test points (estimates KL(data || model); 0 "
        "is perfect). mean ± std over seeds; * best per dataset."
    )


# --- report tables ------------------------------------------------------------------------------

REFERENCE_PREFIX = "ref:"


def model_summary(summary: pd.DataFrame, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long form of everything compared per dataset: each flow/base, each reference method, and
    the oracle. Columns: dataset, model, kind ("flow"|"reference"|"oracle"), seeds, ok, diverged,
    failed, test_nll_mean, test_nll_std, gap_mean, rank (1 = lowest test NLL among flows and
    references with a value on that dataset; the oracle is not ranked)."""
    rows = []
    for _, row in summary.iterrows():
        rows.append({
            "dataset": row["dataset"], "model": f"{row['flow']}/{row['base']}", "kind": "flow",
            **{k: row[k] for k in ("seeds", "ok", "diverged", "failed", "test_nll_mean",
                                   "test_nll_std", "gap_mean", "unit", "to_unit")},
            "complete": row["ok"] == row["seeds"],
        })
    oracle = summary.groupby("dataset", sort=False)[
        ["oracle_test_nll", "entropy", "unit", "to_unit"]].first()
    if references is not None and not references.empty:
        for _, ref in references.iterrows():
            if ref["dataset"] not in oracle.index or ref.get("status", "ok") != "ok":
                continue
            nll = float(ref["test_nll"])
            rows.append({
                "dataset": ref["dataset"], "model": REFERENCE_PREFIX + ref["method"],
                "kind": "reference", "seeds": 1, "ok": 1, "diverged": 0, "failed": 0,
                "test_nll_mean": nll, "test_nll_std": np.nan,
                "gap_mean": nll - oracle.loc[ref["dataset"], "oracle_test_nll"],
                "unit": oracle.loc[ref["dataset"], "unit"],
                "to_unit": oracle.loc[ref["dataset"], "to_unit"], "complete": True,
            })
    for dataset, values in oracle.iterrows():
        if np.isfinite(values["oracle_test_nll"]):
            rows.append({
                "dataset": dataset, "model": "oracle", "kind": "oracle", "seeds": 1, "ok": 1,
                "diverged": 0, "failed": 0, "test_nll_mean": values["oracle_test_nll"],
                "test_nll_std": np.nan, "gap_mean": 0.0, "unit": values["unit"],
                "to_unit": values["to_unit"], "complete": True,
            })
    frame = pd.DataFrame(rows)
    competing = (frame["kind"] != "oracle") & frame["complete"] \
        & np.isfinite(frame["test_nll_mean"].astype(float))
    frame["rank"] = np.nan
    frame.loc[competing, "rank"] = frame[competing].groupby("dataset")["test_nll_mean"].rank(
        method="min")
    return frame.drop(columns="complete")


def _cell_text(row: pd.Series) -> str:
    if row["ok"] == 0:
        states = [f"{row[s]} {s}" for s in ("diverged", "failed") if row[s]]
        return ", ".join(states) or "-"
    text = _mean_std(row["test_nll_mean"], row["test_nll_std"], scale=row["to_unit"])
    if row["ok"] < row["seeds"]:
        states = [f"{row[s]} {s}" for s in ("diverged", "failed") if row[s]]
        text += f" ({row['ok']}/{row['seeds']} ok; {', '.join(states)})"
    return text


def _model_order(models: pd.DataFrame) -> list[str]:
    kinds = {"flow": 0, "reference": 1, "oracle": 2}
    first = models.drop_duplicates("model")
    return sorted(first["model"], key=lambda m: (kinds[first.set_index("model").loc[m, "kind"]],
                                                 list(first["model"]).index(m)))


def nll_table(models: pd.DataFrame, bold: bool = True) -> pd.DataFrame:
    """Datasets as rows, models as columns: test NLL "mean ± std" in each dataset's unit (nats,
    or bits/dim for discrete data), the best per dataset in **bold**, and a final "mean rank"
    row."""
    order = _model_order(models)
    best = models[models["rank"] == 1]
    table = {}
    for dataset, group in models.groupby("dataset", sort=False):
        by_model = group.set_index("model")
        row = {"unit": group["unit"].iloc[0]}
        for model in order:
            if model not in by_model.index:
                row[model] = ""
                continue
            text = _cell_text(by_model.loc[model])
            is_best = ((best["dataset"] == dataset) & (best["model"] == model)).any()
            row[model] = f"**{text}**" if bold and is_best else text
        table[dataset] = row
    frame = pd.DataFrame.from_dict(table, orient="index")[["unit", *order]]
    ranks = mean_ranks(models)
    frame.loc["mean rank"] = [""] + [f"{ranks[m]:.2f}" if m in ranks else "" for m in order]
    frame.index.name = "dataset"
    return frame


def mean_ranks(models: pd.DataFrame) -> dict[str, float]:
    """Average rank per model over the datasets where it was ranked."""
    ranked = models.dropna(subset=["rank"])
    return ranked.groupby("model")["rank"].mean().to_dict()


def gap_table(models: pd.DataFrame) -> pd.DataFrame:
    """Datasets as rows, models as columns: mean gap to the oracle (nats; KL estimate)."""
    order = [m for m in _model_order(models) if m != "oracle"]
    frame = models[models["model"] != "oracle"].pivot_table(
        index="dataset", columns="model", values="gap_mean", sort=False)
    return frame.reindex(columns=[m for m in order if m in frame.columns])


def rank_table(models: pd.DataFrame) -> pd.DataFrame:
    order = [m for m in _model_order(models) if m != "oracle"]
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
    brute-force Jacobian path, their ratio, and the largest log-det disagreement."""
    if "path" in logdet:
        logdet = logdet.dropna(subset=["path"])  # rows of flows whose measurement failed
    if logdet.empty:
        return pd.DataFrame()
    wide = logdet.pivot_table(index=["flow", "base", "dim"], columns="path",
                              values="per_example_seconds", sort=False)
    error = logdet.groupby(["flow", "base", "dim"], sort=False)["max_abs_error"].max()
    table = pd.DataFrame({
        "analytic s/example": wide.get("analytic"),
        "brute-force s/example": wide.get("brute_force"),
    })
    table["brute / analytic"] = table["brute-force s/example"] / table["analytic s/example"]
    table["max |log-det error|"] = error
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
