"""Figures of the cells' own numbers: learning curves (``record["history"]``), test NLL over
seeds, and accuracy against speed. They live together because all three read the per-cell
records (one point or line per seed), not trained models or the separate measurement tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..rundata import RunData
from .select import datasets, finite, flows_bases, is_ok, pairs, records, run_palette
from .style import FAIL_COLOR, NOT_OK, grid, label, new_figure, write_figure

SPEEDS = {
    "train_examples_per_second": "training throughput (examples / s)",
    "log_prob_examples_per_second": "log_prob throughput (examples / s)",
    "sample_examples_per_second": "sampling throughput (examples / s)",
}


def numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy with ``columns`` (those present) as floats, unreadable values as NaN."""
    frame = frame.copy()
    for column in columns:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


# --- learning curves -----------------------------------------------------------------------------

def _history(record: dict[str, Any]) -> pd.DataFrame | None:
    history = record.get("history")
    if not isinstance(history, list) or not history:
        return None
    frame = pd.DataFrame(history)
    if "step" not in frame:
        return None
    for column in ("step", "train_nll", "val_nll"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame \
            else np.nan
    frame = frame.replace([np.inf, -np.inf], np.nan).dropna(subset=["step"])
    return frame.sort_values("step") if len(frame) else None


def _robust_ylim(values: np.ndarray, steps: np.ndarray, floor: float) -> tuple[float, float]:
    """Y-limits that ignore the first 10 % of training (where NLLs can be huge)."""
    kept = np.isfinite(values)
    late = kept & (steps >= 0.1 * np.nanmax(steps)) & (steps > np.nanmin(steps))
    chosen = values[late] if late.any() else values[kept]
    if not len(chosen):
        return (floor - 1, floor + 1) if math.isfinite(floor) else (0.0, 1.0)
    low = float(np.min(chosen))
    if math.isfinite(floor):
        low = min(low, floor)
    q1, q3 = np.percentile(chosen, [25, 75])
    high = min(float(np.max(chosen)), float(q3 + 3 * (q3 - q1)))  # a late spike is cut
    span = max(high - low, 1e-3 * max(abs(high), 1.0))
    return low - 0.06 * span, high + 0.1 * span


def _entropy(cells: Sequence[dict[str, Any]]) -> float:
    return next((e for e in (finite(r.get("entropy")) for r in cells) if math.isfinite(e)),
                float("nan"))


def learning_curves_figure(run: RunData, dataset: str) -> Figure | None:
    """Validation (solid, seed mean with a min-max band) and training (dashed, seed mean) NLL."""
    cells = [r for r in records(run, dataset) if _history(r) is not None]
    if not cells:
        return None
    colors = run_palette(run)
    entropy = _entropy(cells)
    fig = new_figure(5.0, 2.9)
    ax = fig.add_subplot()
    values, steps = [], []
    handles = []
    for pair in pairs(run, cells):
        group = [r for r in cells if (r["flow"], r["base"]) == pair]
        ok = [_history(r).assign(seed=r.get("seed")) for r in group if r.get("status") == "ok"]
        color = colors.get(pair, "0.3")
        if ok:
            frame = pd.concat(ok)
            val = frame.pivot_table(index="step", columns="seed", values="val_nll",
                                    aggfunc="mean", dropna=False)
            mean = val.mean(axis=1)
            ax.fill_between(val.index, val.min(axis=1), val.max(axis=1), color=color,
                            alpha=0.18, linewidth=0)
            ax.plot(mean.index, mean.values, color=color, ls="-")
            train = frame.groupby("step")["train_nll"].mean().dropna()
            ax.plot(train.index, train.values, color=color, ls="--", lw=0.9)
            values += [mean.values, train.values]
            steps += [mean.index.to_numpy(float), train.index.to_numpy(float)]
        for record in group:  # diverged / failed seeds: a thin line ending in an x
            if record.get("status") == "ok":
                continue
            history = _history(record).dropna(subset=["val_nll"])
            if len(history):
                ax.plot(history["step"], history["val_nll"], color=color, lw=0.6, alpha=0.7,
                        marker="x", markevery=[len(history) - 1], ms=5, mec=FAIL_COLOR)
        seeds = f"{len(ok)}/{len(group)} ok" if len(ok) < len(group) else f"{len(ok)} seeds"
        handles.append(Line2D([], [], color=color, label=f"{label(*pair)} ({seeds})"))
    if math.isfinite(entropy):
        ax.axhline(entropy, color="black", ls=":", lw=1.0)
    if values:
        ax.set_ylim(*_robust_ylim(np.concatenate(values), np.concatenate(steps), entropy))
    ax.set_xlabel("training step")
    ax.set_ylabel("NLL (nats)")
    ax.set_title(f"{dataset}: learning curves")
    style = [Line2D([], [], color="0.3", ls="-", label="validation (mean, min-max band)"),
             Line2D([], [], color="0.3", ls="--", lw=0.9, label="training (mean)")]
    if math.isfinite(entropy):
        style.append(Line2D([], [], color="black", ls=":", label=f"entropy {entropy:.3f}"))
    if any(r.get("status") != "ok" for r in cells):
        style.append(Line2D([], [], color="0.3", lw=0.6, marker="x", mec=FAIL_COLOR,
                            label=NOT_OK))
    fig.legend(handles=handles + style, loc="outside right upper")
    return fig


def learning_curves(run: RunData, dataset: str, out_dir: Path) -> list[Path]:
    """Validation and training NLL against the step, per (flow, base), with the entropy."""
    return write_figure(lambda: learning_curves_figure(run, dataset),
                        Path(out_dir) / f"learning_curves_{dataset}.png")


# --- test NLL over seeds -------------------------------------------------------------------------

def nll_spread_figure(run: RunData) -> Figure | None:
    """Per dataset: test NLL of every seed, the seed mean, the entropy; bad cells as red x."""
    cells_all = records(run)
    if not cells_all or not any("test_nll" in r or "status" in r for r in cells_all):
        return None
    colors = run_palette(run)
    shown_datasets = [d for d in datasets(run) if any(r["dataset"] == d for r in cells_all)]
    facets = grid(len(shown_datasets), 2.2, 2.0, extra_height=0.3)
    any_bad = False
    for ax, dataset in zip(facets.axes, shown_datasets, strict=True):
        cells = [r for r in cells_all if r["dataset"] == dataset]
        present = pairs(run, cells)
        entropy = _entropy(cells)
        shown, bad_positions = [], []
        for x, pair in enumerate(present):
            group = sorted((r for r in cells if (r["flow"], r["base"]) == pair),
                           key=lambda r: r.get("seed", 0))
            ok = [finite(r["test_nll"]) for r in group if is_ok(r)]
            bad = [r for r in group if not is_ok(r)]
            if ok:
                offsets = np.linspace(-0.18, 0.18, len(ok)) if len(ok) > 1 else [0.0]
                ax.scatter(x + np.asarray(offsets), ok, s=11, color=colors.get(pair, "0.3"),
                           alpha=0.85, linewidths=0, zorder=3)
                ax.plot([x], [np.mean(ok)], marker="_", ms=13, mew=1.6, color="black",
                        ls="", zorder=4)
                shown += ok
            if bad:
                offsets = np.linspace(-0.15, 0.15, len(bad)) if len(bad) > 1 else [0.0]
                bad_positions += [x + o for o in offsets]
        if math.isfinite(entropy):
            ax.axhline(entropy, color="0.25", ls="--", lw=0.9, zorder=1)
            shown.append(entropy)
        if shown:
            low, high = min(shown), max(shown)
            span = max(high - low, 0.02 * max(abs(high), 1.0))
            top = high + (0.22 if bad_positions else 0.08) * span
            ax.set_ylim(low - 0.08 * span, top)
        if bad_positions:  # at the top of the panel, never silently dropped
            any_bad = True
            ax.plot(bad_positions, [0.94] * len(bad_positions), ls="", marker="x", ms=5.5,
                    mew=1.5, color=FAIL_COLOR, transform=ax.get_xaxis_transform(),
                    clip_on=False, zorder=5, label=NOT_OK)
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels([f"{f}\n{b}" for f, b in present], fontsize=5.5)
        ax.set_xlim(-0.6, len(present) - 0.4)
        ax.set_title(dataset)
        ax.grid(axis="y", lw=0.4, color="0.9")
    for ax in facets.first_column():
        ax.set_ylabel("test NLL (nats)")
    handles = [Line2D([], [], ls="", marker="o", ms=3.5, color="0.4", label="one seed"),
               Line2D([], [], ls="", marker="_", ms=10, mew=1.6, color="black",
                      label="seed mean"),
               Line2D([], [], color="0.25", ls="--", lw=0.9, label="entropy (best possible)")]
    if any_bad:
        handles.append(Line2D([], [], ls="", marker="x", ms=5.5, mew=1.5, color=FAIL_COLOR,
                              label=f"{NOT_OK} cell\n(no test NLL; drawn at top)"))
    facets.legend(handles)
    facets.fig.suptitle("test NLL per (flow, base) over seeds")
    return facets.fig


def nll_spread(run: RunData, out_dir: Path) -> list[Path]:
    """Test NLL per (flow, base) over seeds, one facet per dataset, failed cells marked."""
    return write_figure(lambda: nll_spread_figure(run), Path(out_dir) / "nll_spread.png")


# --- speed against NLL ---------------------------------------------------------------------------

def speed_vs_nll_figure(run: RunData,
                        speed: str = "train_examples_per_second") -> Figure | None:
    """Per dataset: gap to the oracle against throughput (log x), mean ± std over ok seeds."""
    if not run.records:
        return None
    frame = run.frame()
    needed = {"dataset", "flow", "base", "status", speed, "gap"}
    if frame.empty or not needed <= set(frame.columns):
        return None
    frame = numeric(frame, [speed, "gap"])
    frame = frame[(frame["status"] == "ok") & np.isfinite(frame[speed]) & (frame[speed] > 0)
                  & np.isfinite(frame["gap"])]
    if frame.empty:
        return None
    colors = run_palette(run)
    flows, bases = flows_bases(run, frame.to_dict("records"))
    markers = dict(zip(bases, "osD^vP*X", strict=False))  # bases past 8 fall back to "o"
    shown_datasets = [d for d in datasets(run) if d in set(frame["dataset"])]
    facets = grid(len(shown_datasets), 2.2, 2.0, extra_height=0.3)
    for ax, dataset in zip(facets.axes, shown_datasets, strict=True):
        cells = frame[frame["dataset"] == dataset]
        for (flow, base), group in cells.groupby(["flow", "base"], sort=False):
            x, y = group[speed].to_numpy(float), group["gap"].to_numpy(float)
            x_mean, y_mean = x.mean(), y.mean()
            x_err = min(x.std(ddof=1), 0.95 * x_mean) if len(x) > 1 else 0.0
            y_err = y.std(ddof=1) if len(y) > 1 else 0.0
            ax.errorbar([x_mean], [y_mean], xerr=[x_err], yerr=[y_err], ls="",
                        marker=markers.get(base, "o"), ms=4.5, mew=0.6, mec="white",
                        color=colors.get((flow, base), "0.3"), elinewidth=0.9, capsize=1.5)
        ax.axhline(0.0, color="0.25", ls="--", lw=0.8, zorder=1)
        ax.set_xscale("log")
        ax.set_title(dataset)
        ax.grid(lw=0.4, color="0.9", which="major")
    for ax in facets.first_column():
        ax.set_ylabel("gap to oracle (nats)")
    for ax in facets.bottom_row():
        ax.set_xlabel(SPEEDS.get(speed, speed))
    handles = [Line2D([], [], ls="", marker=markers.get(b, "o"), ms=4.5, mec="white", mew=0.6,
                      color=colors.get((f, b), "0.3"), label=label(f, b))
               for f in flows for b in bases if ((frame["flow"] == f) & (frame["base"] == b)).any()]
    handles.append(Line2D([], [], color="0.25", ls="--", lw=0.8, label="oracle (gap 0)"))
    facets.legend(handles)
    facets.fig.suptitle("accuracy against speed: gap to the oracle vs throughput "
                        "(mean ± std over ok seeds; lower right is better)")
    return facets.fig


def speed_vs_nll(run: RunData, out_dir: Path,
                 speed: str = "train_examples_per_second") -> list[Path]:
    """Gap to the oracle against throughput, per dataset. ``speed`` names the throughput column
    (``train_examples_per_second``, ``log_prob_examples_per_second``, ...)."""
    suffix = "" if speed == "train_examples_per_second" else "_" + speed.replace(
        "_examples_per_second", "")
    return write_figure(lambda: speed_vs_nll_figure(run, speed),
                        Path(out_dir) / f"speed_vs_nll{suffix}.png")


def speed_figures(run: RunData, out_dir: Path) -> list[Path]:
    """``speed_vs_nll.png`` (training throughput) and, when the runner measured it,
    ``speed_vs_nll_log_prob.png`` (density-evaluation throughput)."""
    return speed_vs_nll(run, out_dir) + speed_vs_nll(run, out_dir, "log_prob_examples_per_second")
