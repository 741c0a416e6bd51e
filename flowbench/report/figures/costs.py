"""Figures of the cost measurements: seconds of the analytic log-det against the brute-force
Jacobian path per dimension (``logdet_cost`` table), and Glow's invertible 1x1 convolution,
LU-parameterised against a plain matrix, per channel count (``linear_cost`` table). Log-log axes,
medians with an IQR band."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..rundata import RunData
from .curves import numeric
from .select import ordered
from .style import label, new_figure, palette, write_figure

PATH_STYLES = {"analytic": "-", "brute_force": "--"}


def _cost_line(ax, x: np.ndarray, median: np.ndarray, iqr: np.ndarray | None, **style) -> None:
    ax.plot(x, median, marker="o", ms=2.5, **style)
    if iqr is not None and np.isfinite(iqr).any():
        half = np.nan_to_num(iqr) / 2
        ax.fill_between(x, np.maximum(median - half, median * 0.05), median + half,
                        color=style.get("color"), alpha=0.15, linewidth=0)


def _size_axis(ax, values: np.ndarray) -> None:
    """Log-2 x-axis labelled with the measured sizes themselves (2, 4, 8, ...)."""
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ticks = np.unique(values[np.isfinite(values)])
    if len(ticks) > 8:
        ticks = ticks[np.unique(np.round(np.linspace(0, len(ticks) - 1, 8)).astype(int))]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{v:g}" for v in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def _logdet_figure(table: pd.DataFrame) -> Figure | None:
    if table.empty or not {"flow", "dim", "path", "seconds_median"} <= set(table.columns):
        return None
    table = numeric(table, ["dim", "seconds_median", "seconds_iqr", "batch", "threads"])
    if "base" not in table:
        table["base"] = "-"
    table = table[np.isfinite(table["dim"]) & (table["dim"] > 0)
                  & np.isfinite(table["seconds_median"]) & (table["seconds_median"] > 0)]
    if table.empty:
        return None
    # one panel per batch size / thread count when the table mixes them
    split = [c for c in ("batch", "threads") if c in table and table[c].nunique() > 1]
    panels = list(table.groupby(split, sort=True)) if split else [((), table)]
    flows = list(dict.fromkeys(table["flow"]))
    bases = list(dict.fromkeys(table["base"]))
    colors = palette(flows, bases)
    paths = list(dict.fromkeys(table["path"]))
    styles = {p: PATH_STYLES.get(p, ":") for p in paths}
    fig = new_figure(len(panels) * 2.6 + 1.4, 2.6)
    gs = fig.add_gridspec(1, len(panels))
    for i, (key, panel) in enumerate(panels):
        ax = fig.add_subplot(gs[0, i])
        for (flow, base, path), group in panel.groupby(["flow", "base", "path"], sort=False):
            group = group.groupby("dim", as_index=False).median(numeric_only=True)
            group = group.sort_values("dim")
            iqr = group["seconds_iqr"].to_numpy(float) if "seconds_iqr" in group else None
            _cost_line(ax, group["dim"].to_numpy(float), group["seconds_median"].to_numpy(float),
                       iqr, color=colors[(flow, base)], ls=styles[path])
        _size_axis(ax, panel["dim"].to_numpy(float))
        ax.set_yscale("log")
        ax.set_xlabel("dimension")
        if i == 0:
            ax.set_ylabel("seconds per call (median)")
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(", ".join(f"{c} {int(v) if float(v).is_integer() else v}"
                               for c, v in zip(split, key, strict=True)))
        ax.grid(lw=0.4, color="0.9", which="major")
    handles = [Line2D([], [], color=colors[pair], label=label(*pair) if len(bases) > 1 or
                      bases != ["-"] else pair[0])
               for pair in dict.fromkeys(zip(table["flow"], table["base"], strict=True))]
    handles += [Line2D([], [], color="0.3", ls=styles[p], label=str(p).replace("_", " "))
                for p in paths]
    fig.legend(handles=handles, loc="outside right center")
    fixed = ", ".join(f"{c} {table[c].iloc[0]:g}" for c in ("batch", "threads")
                      if c in table and c not in split and table[c].nunique() == 1)
    fig.suptitle("log-det cost: analytic vs brute-force Jacobian\n(median; band: IQR"
                 + (f"; {fixed}" if fixed else "") + ")")
    return fig


def _linear_figure(table: pd.DataFrame) -> Figure | None:
    if table.empty or not {"layer", "channels", "operation", "seconds_median"} <= set(
            table.columns):
        return None
    table = numeric(table, ["channels", "seconds_median", "seconds_iqr"])
    table = table[np.isfinite(table["channels"]) & (table["channels"] > 0)
                  & np.isfinite(table["seconds_median"]) & (table["seconds_median"] > 0)]
    if table.empty:
        return None
    operations = ordered(list(table["operation"]), ["logdet", "forward", "inverse"])
    layers = ordered(list(table["layer"]), ["lu", "plain"])
    import seaborn as sns

    colors = dict(zip(layers, sns.color_palette("colorblind", len(layers)), strict=True))
    fig = new_figure(len(operations) * 2.3 + 1.0, 2.4)
    gs = fig.add_gridspec(1, len(operations))
    for i, operation in enumerate(operations):
        ax = fig.add_subplot(gs[0, i])
        for layer in layers:
            group = table[(table["operation"] == operation) & (table["layer"] == layer)]
            if group.empty:
                continue
            group = group.groupby("channels", as_index=False).median(numeric_only=True)
            group = group.sort_values("channels")
            iqr = group["seconds_iqr"].to_numpy(float) if "seconds_iqr" in group else None
            _cost_line(ax, group["channels"].to_numpy(float),
                       group["seconds_median"].to_numpy(float), iqr, color=colors[layer])
        _size_axis(ax, table["channels"].to_numpy(float))
        ax.set_yscale("log")
        ax.set_xlabel("channels")
        if i == 0:
            ax.set_ylabel("seconds per call (median)")
        ax.set_title(str(operation))
        ax.grid(lw=0.4, color="0.9", which="major")
    names = {"lu": "LU-parameterised", "plain": "plain matrix"}
    handles = [Line2D([], [], color=colors[layer], marker="o", ms=2.5,
                      label=names.get(layer, layer))
               for layer in layers]
    fig.legend(handles=handles, loc="outside right center")
    fig.suptitle("invertible linear layer: LU-parameterised vs plain matrix "
                 "(median; band: IQR)")
    return fig


#: the measurement table (and file stem) -> its figure builder
_BUILDERS = {"logdet_cost": _logdet_figure, "linear_cost": _linear_figure}


def logdet_cost_figures(run: RunData) -> dict[str, Figure]:
    """``{"logdet_cost": Figure, "linear_cost": Figure}``, each only when its table has rows."""
    figures = {name: build(run.table(name)) for name, build in _BUILDERS.items()}
    return {name: fig for name, fig in figures.items() if fig is not None}


def logdet_cost(run: RunData, out_dir: Path) -> list[Path]:
    """Seconds vs dimension of analytic and brute-force log-dets (``logdet_cost`` table) and
    seconds vs channels of LU vs plain linear layers (``linear_cost`` table), log-log."""
    written: list[Path] = []
    for name, build in _BUILDERS.items():
        written += write_figure(lambda build=build, name=name: build(run.table(name)),
                                Path(out_dir) / f"{name}.png")
    return written
