"""How the gap to the oracle grows with the dimension, across a dataset family.

Datasets named ``<family>-<D>`` whose event size is D (``funnel-8``, ``funnel-32``; a family of
``flowbench.specs.DatasetFamilySpec`` names its members so) form a family; each family with at
least two dimensions in the run, and an oracle, gets one panel: the gap per dimension -- (test
NLL - oracle test NLL) / D, nats per dimension, so that dimensions compare on one scale -- against
D on a log2 axis, one line per flow/base (mean over ok seeds, the band one seed standard
deviation either side), the reference baselines dashed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..rundata import RunData
from ..tails import is_flagged
from .curves import numeric
from .select import datasets, flows_bases, run_palette
from .style import label
from . import style

LEGEND_WIDTH = 1.7  # inches beside the panels
#: the y axis turns logarithmic when every plotted mean is positive and they span more than this
LOG_SPAN = 30.0
REFERENCE_STYLES = [("0.2", (0, (5, 2))), ("0.45", (0, (2, 1.5))), ("0.65", (0, (6, 2, 1, 2))),
                    ("0.35", (0, (1, 1)))]


def member(name: str) -> tuple[str, int] | None:
    """``(family, D)`` when ``name`` is ``<family>-<D>`` (D written without leading zeros)."""
    family, _, digits = name.rpartition("-")
    if not family or not digits.isdigit() or digits != str(int(digits)) or int(digits) < 1:
        return None
    return family, int(digits)


def _event_size(run: RunData, name: str) -> int | None:
    """The dataset's number of dimensions as its spec declares it (``None`` when the plugin
    that defined it is not loaded)."""
    try:
        shape = run.registry.get("dataset", name).spec.event_shape
    except Exception:  # noqa: BLE001 - the plugin that defined it may be gone
        return None
    return int(np.prod(shape))


def dimension_families(run: RunData) -> dict[str, list[tuple[int, str]]]:
    """Families of the run's datasets with at least two dimensions: ``{family: [(D, dataset),
    ...]}`` sorted by D. A name whose D disagrees with the dataset's declared event size (e.g.
    ``mnist-28``) is not a member."""
    found: dict[str, list[tuple[int, str]]] = {}
    for name in datasets(run):
        parsed = member(name)
        if parsed is None:
            continue
        size = _event_size(run, name)
        if size is not None and size != parsed[1]:
            continue
        found.setdefault(parsed[0], []).append((parsed[1], name))
    return {family: sorted(dims) for family, dims in found.items()
            if len({d for d, _ in dims}) >= 2}


def _per_dimension(frame: pd.DataFrame, dims: dict[str, int]) -> pd.DataFrame:
    frame = frame[frame["dataset"].isin(dims)].copy()
    frame["dim"] = frame["dataset"].map(dims)
    frame["gap_per_dim"] = frame["gap"] / frame["dim"]
    return frame


def family_lines(run: RunData, members: list[tuple[int, str]]) -> dict[str, Any]:
    """What one family's panel draws: ``flows`` (per (flow, base): D, mean and std over ok
    seeds of the gap per dimension, and whether a seed is flagged †) and ``references`` (per
    method: D and gap per dimension)."""
    dims = {name: d for d, name in members}
    frame = numeric(run.frame(), ["gap", "test_nll", "oracle_test_nll"])
    if frame.empty or "gap" not in frame:
        return {"flows": {}, "references": {}}
    frame = _per_dimension(frame[(frame["status"] == "ok") & np.isfinite(frame["gap"])], dims)
    flagged = {(r["dataset"], r["flow"], r["base"]) for r in run.records if is_flagged(r)}
    flows = {}
    for (flow, base), group in frame.groupby(["flow", "base"], sort=False):
        stats = group.groupby("dim")["gap_per_dim"].agg(["mean", "std", "count"]).sort_index()
        names = {d: n for n, d in dims.items()}
        stats["flagged"] = [(names[d], flow, base) in flagged for d in stats.index]
        flows[(flow, base)] = stats
    oracle = frame.groupby("dataset")["oracle_test_nll"].first()
    references = {}
    table = run.table("references")
    if not table.empty and {"dataset", "method", "test_nll"} <= set(table.columns):
        table = numeric(table, ["test_nll"])
        ok = table["status"] == "ok" if "status" in table else True
        table = table[ok & table["dataset"].isin(oracle.index)]
        for method, group in table.groupby("method", sort=False):
            gap = (group["test_nll"] - group["dataset"].map(oracle)) / group["dataset"].map(dims)
            series = pd.Series(gap.to_numpy(float), index=group["dataset"].map(dims).to_numpy())
            references[method] = series[np.isfinite(series)].sort_index()
    return {"flows": flows, "references": references}


def _log_scale(values: list[float]) -> bool:
    values = [v for v in values if math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SPAN


def gap_vs_dim_figure(run: RunData) -> Figure | None:
    """One panel per dimension family of the run (``None`` when there is none)."""
    families = dimension_families(run)
    panels = {family: family_lines(run, members) for family, members in families.items()}
    panels = {f: p for f, p in panels.items() if p["flows"] or p["references"]}
    if not panels:
        return None
    colors = run_palette(run)
    flows, bases = flows_bases(run, run.records)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = style.new_figure(ncols * 2.7 + LEGEND_WIDTH, nrows * 2.3 + 0.3)
    grid = fig.add_gridspec(nrows, ncols)
    axes = [fig.add_subplot(grid[i // ncols, i % ncols]) for i in range(len(panels))]
    handles: dict[str, Line2D] = {}
    any_flagged = False
    for ax, (family, lines) in zip(axes, panels.items(), strict=True):
        plotted: list[float] = []
        for (flow, base), stats in lines["flows"].items():
            color = colors.get((flow, base), "0.3")
            x, mean, std = stats.index.to_numpy(float), stats["mean"].to_numpy(), \
                stats["std"].fillna(0.0).to_numpy()
            ax.plot(x, mean, color=color, marker="o", ms=3.2, lw=1.1, zorder=3)
            low = mean - std
            ax.fill_between(x, low, mean + std, color=color, alpha=0.18, linewidth=0)
            hollow = stats["flagged"].to_numpy(bool)
            if hollow.any():
                any_flagged = True
                ax.plot(x[hollow], mean[hollow], ls="", marker="o", ms=5, mfc="white",
                        mec=color, mew=1.0, zorder=4)
            plotted += list(mean)
            handles.setdefault(label(flow, base), Line2D(
                [], [], color=color, marker="o", ms=3.2, label=label(flow, base)))
        for i, (method, series) in enumerate(lines["references"].items()):
            shade, dash = REFERENCE_STYLES[i % len(REFERENCE_STYLES)]
            ax.plot(series.index.to_numpy(float), series.to_numpy(), color=shade, ls=dash,
                    lw=1.0, zorder=2)
            plotted += list(series)
            handles.setdefault("ref:" + method, Line2D([], [], color=shade, ls=dash, lw=1.0,
                                                       label=f"ref:{method}"))
        dims = [d for d, _ in families[family]]
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims)
        ax.set_xticklabels([str(d) for d in dims])
        ax.minorticks_off()
        if _log_scale(plotted):
            ax.set_yscale("log")
        else:
            ax.axhline(0.0, color="0.25", ls=":", lw=0.8, zorder=1)
        ax.set_title(f"{family}-<D>")
        ax.set_xlabel("dimension D")
        ax.grid(lw=0.4, color="0.9")
    for ax in axes[::ncols]:
        ax.set_ylabel("gap to oracle per dimension (nats)")
    ordered = [handles[label(f, b)] for f in flows for b in bases if label(f, b) in handles]
    ordered += [h for name, h in handles.items() if name.startswith("ref:")]
    if any_flagged:
        ordered.append(Line2D([], [], ls="", marker="o", ms=5, mfc="white", mec="0.3",
                              label="† a seed's mean dominated\nby a few test points"))
    fig.legend(handles=ordered, loc="outside right center")
    fig.suptitle("gap to the oracle per dimension against D")
    return fig


def gap_vs_dim(run: RunData, out_dir: Path) -> list[Path]:
    """``gap_vs_dim.png`` when the run has a dataset family with two or more dimensions."""
    return style.write_figure(lambda: gap_vs_dim_figure(run), Path(out_dir) / "gap_vs_dim.png")
