"""The report's tables as people read them: text cells with marks, bold bests, mean ranks that
say over how many datasets they were taken, and numbers in :mod:`.numbers` form. The numeric
tables they come from (``tables.py``) are what ``tables/*.csv`` keep."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .numbers import fixed, grouped, mean_std
from .tables import model_order
from .tails import MARK, marked

RANK_NOTE = ("mean rank: over the datasets where the model was ranked; \"(k of n)\" when that is "
             "only k of the n datasets it ran on (a combination with a failed or flagged seed is "
             "not ranked on that dataset).")


def _cell_text(row: pd.Series) -> str:
    if row["ok"] == 0:
        states = [f"{row[s]} {s}" for s in ("diverged", "failed") if row[s]]
        return ", ".join(states) or "-"
    text = mean_std(row["test_nll_mean"], row["test_nll_std"], scale=row["to_unit"])
    if row["ok"] < row["seeds"]:
        states = [f"{row[s]} {s}" for s in ("diverged", "failed") if row[s]]
        text += f" ({row['ok']}/{row['seeds']} ok; {', '.join(states)})"
    return text


def mean_rank_texts(models: pd.DataFrame) -> dict[str, str]:
    """Per model (not the oracle): its mean rank, with "(k of n)" when it was ranked on only k
    of the n datasets it appears on; "-" when ranked nowhere."""
    texts = {}
    for model, group in models[models["kind"] != "oracle"].groupby("model", sort=False):
        ranked = group["rank"].dropna()
        count = f" ({len(ranked)} of {len(group)})" if len(ranked) < len(group) else ""
        texts[model] = (f"{ranked.mean():.2f}" if len(ranked) else "-") + count
    return texts


def _wide(models: pd.DataFrame, order: list[str], cell, first: dict | None = None
          ) -> pd.DataFrame:
    """Datasets as rows, ``order`` as columns, ``cell(row)`` in each (empty where a model did
    not run), then a "mean rank" row."""
    table = {}
    for dataset, group in models.groupby("dataset", sort=False):
        by_model = group.set_index("model")
        row = dict(first(group)) if first else {}
        for model in order:
            row[model] = cell(by_model.loc[model]) if model in by_model.index else ""
        table[dataset] = row
    frame = pd.DataFrame.from_dict(table, orient="index")
    ranks = mean_rank_texts(models)
    frame.loc["mean rank"] = [""] * (len(frame.columns) - len(order)) + [
        ranks.get(m, "") for m in order]
    frame.index.name = "dataset"
    return frame


def nll_table(models: pd.DataFrame, bold: bool = True) -> pd.DataFrame:
    """Datasets as rows, models as columns: test NLL "mean ± std" in each dataset's unit (nats,
    or bits/dim for discrete data), the best per dataset in **bold**, ``†`` on combinations
    whose mean is dominated by a few test points, and a final "mean rank" row."""
    def cell(row: pd.Series) -> str:
        text = marked(_cell_text(row), row["tail_flagged"] > 0)
        return f"**{text}**" if bold and row["best"] else text
    return _wide(models, model_order(models), cell,
                 first=lambda group: {"unit": group["unit"].iloc[0]})


def gap_display(models: pd.DataFrame) -> pd.DataFrame:
    """Mean gap to the oracle per dataset and model (nats), marked like the NLL table; only
    datasets with a known oracle (empty without any)."""
    gaps = pd.to_numeric(models["gap_mean"], errors="coerce")
    known = models.groupby("dataset")["gap_mean"].transform(
        lambda g: np.isfinite(pd.to_numeric(g, errors="coerce")).any()) & gaps.notna()
    if not known.any():
        return pd.DataFrame()
    models = models[models["dataset"].isin(models.loc[known, "dataset"])]
    order = [m for m in model_order(models) if m != "oracle"]
    def cell(row: pd.Series) -> str:
        return marked(fixed(row["gap_mean"]), row["tail_flagged"] > 0)
    return _wide(models, order, cell).drop(index="mean rank")


def rank_display(models: pd.DataFrame) -> pd.DataFrame:
    """Rank per dataset and model: the number, ``†`` where a flagged combination is not ranked,
    ``-`` where an incomplete one is not; then the mean rank with its dataset count."""
    order = [m for m in model_order(models) if m != "oracle"]
    def cell(row: pd.Series) -> str:
        if np.isfinite(row["rank"]):  # a tie shares the average rank: 2.5
            return f"{row['rank']:g}"
        return MARK if row["tail_flagged"] > 0 else "-"
    return _wide(models, order, cell)


def speed_display(speed: pd.DataFrame) -> pd.DataFrame:
    """The speed table with throughputs and counts grouped by thousands (``42 210``)."""
    shown = speed.astype(object).copy()
    for column in shown.columns:
        if column == "cells":
            shown[column] = speed[column].map(lambda v: f"{v:.0f}")
        elif column.endswith("s/cell"):
            shown[column] = speed[column].map(lambda v: "" if v != v else f"{v:.3g}")
        else:
            shown[column] = speed[column].map(grouped)
    return shown


def win_tie_loss_display(wtl: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Methods as rows and columns (``order``): "wins/ties/losses" of the row's method against
    the column's (see :func:`.ranking.win_tie_loss`), then the row's totals over all others."""
    if wtl.empty:
        return pd.DataFrame()
    pairs = wtl.set_index(["method", "versus"])
    table = {}
    for method in order:
        row = {}
        for other in order:
            if other == method:
                row[other] = "·"
                continue
            counts = pairs.loc[(method, other)]
            row[other] = f"{counts['wins']}/{counts['ties']}/{counts['losses']}"
        mine = wtl[wtl["method"] == method]
        row["total"] = f"{mine['wins'].sum()}/{mine['ties'].sum()}/{mine['losses'].sum()}"
        table[method] = row
    frame = pd.DataFrame.from_dict(table, orient="index")
    frame.index.name = "method (vs column)"
    return frame


#: the sign and unit convention stated under the published rows, per unit
PUBLISHED_UNITS = {
    "nats": "NLL = −test log-likelihood, nats per example; lower is better.",
    "bits/dim": "NLL = −test log-likelihood in bits per dimension of the original discrete "
                "data; lower is better.",
}


def published_display(rows: pd.DataFrame) -> pd.DataFrame:
    """Papers' numbers as labelled rows: ``published: <method>`` per dataset, the NLL in the
    dataset's unit, and the source."""
    frame = pd.DataFrame({
        "dataset": rows["dataset"],
        "row": "published: " + rows["method"].astype(str),
        "NLL": rows["nll"].map(fixed),
        "unit": rows["unit"],
        "source": rows["source"],
    })
    return frame.set_index("dataset")
