"""Pictures of 2-D densities: the density grid, samples over data, and base samples after k
steps of flow. Each ``*_figure`` builds a ``Figure`` (``None`` when the dataset is not 2-D vector
data or has no trained model); each writer writes it with :func:`~.style.write_figure`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..rundata import RunData
from .select import extent, finite, generator, is_2d, trained
from .style import (DATA_COLOR, DENSITY_CMAP, MODEL_COLOR, PANEL, label, new_figure, no_ticks,
                    note, write_figure)

EVAL_BATCH = 8192       # grid points per log_prob call


def _grid_log_prob(log_prob: Callable, grid: torch.Tensor) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, grid.shape[0], EVAL_BATCH):
            out.append(log_prob(grid[start:start + EVAL_BATCH]).double().cpu())
    return torch.cat(out).numpy()


def _density(log_prob: Callable, grid: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.exp(_grid_log_prob(log_prob, grid))
    values[~np.isfinite(values)] = 0.0
    return values.reshape(shape)


# --- density grid --------------------------------------------------------------------------------

def density_grid_figure(run: RunData, dataset: str, seed: int | None = None,
                        points: int = 200) -> Figure | None:
    """Panels "data", "oracle" (when known), then one per (flow, base); ``None`` without models."""
    found = trained(run, dataset, is_2d, seed)
    if found is None:
        return None
    data, models, flows, bases = found.data, found.models, found.flows, found.bases
    x0, x1, y0, y1 = extent(data)
    points = max(int(points), 8)
    step_x, step_y = (x1 - x0) / points, (y1 - y0) / points
    xs = x0 + (np.arange(points) + 0.5) * step_x
    ys = y0 + (np.arange(points) + 0.5) * step_y
    xx, yy = np.meshgrid(xs, ys)  # row = y
    grid64 = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1))
    grid32 = grid64.float()
    shape = (points, points)

    test = data.test.double().numpy()
    bins_x = int(np.clip(round(0.6 * math.sqrt(len(test))), 20, points))
    bins_y = max(10, round(bins_x * (y1 - y0) / (x1 - x0)))
    hist, _, _ = np.histogram2d(test[:, 0], test[:, 1], bins=(bins_x, bins_y),
                                range=[[x0, x1], [y0, y1]], density=True)
    oracle = _density(data.log_prob, grid64, shape) if data.log_prob is not None else None
    densities = {pair: _density(m.flow.log_prob, grid32, shape)
                 for pair, m in models.items() if m.flow is not None}
    # one scale for every panel: up to the oracle's peak (the data's, without an oracle), raised
    # to what the models put on more than 0.5 % of the grid so a flat oracle (checkerboard)
    # does not saturate every model panel
    reference = oracle if oracle is not None else hist
    vmax = float(reference.max()) if reference.max() > 0 else 1.0
    vmax = max([vmax] + [float(np.quantile(d, 0.995)) for d in densities.values()])

    has_oracle = oracle is not None
    nrows = max(len(bases), 2 if has_oracle else 1)
    ncols = 1 + len(flows)
    height = PANEL * (y1 - y0) / (x1 - x0)
    fig = new_figure(ncols * PANEL + 0.15, nrows * (height + 0.3) + 0.3)
    gs = fig.add_gridspec(nrows, ncols)
    image = dict(origin="lower", extent=(x0, x1, y0, y1), cmap=DENSITY_CMAP, vmin=0.0,
                 vmax=vmax, aspect="equal", interpolation="nearest")

    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(hist.T, **image)
    ax.set_title(f"data (test, n={len(test)})")
    no_ticks(ax)
    if has_oracle:
        ax = fig.add_subplot(gs[1, 0])
        ax.imshow(oracle, **image)
        ax.set_title("oracle p(x)")
        no_ticks(ax)
    for (flow_name, base), (record, flow, why) in models.items():
        ax = fig.add_subplot(gs[bases.index(base), 1 + flows.index(flow_name)])
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        if flow is None:
            ax.set_title(label(flow_name, base))
            note(ax, why)
            continue
        ax.imshow(densities[(flow_name, base)], **image)
        nll, gap = finite(record.get("test_nll")), finite(record.get("gap"))
        gap_text = f", gap {gap:+.3f}" if math.isfinite(gap) else ""
        ax.set_title(f"{label(flow_name, base)}\nNLL {nll:.3f}{gap_text}")
        no_ticks(ax)
    fig.suptitle(f"{dataset}: density, one colour scale (0 to {vmax:.3g}); test NLL in nats, "
                 f"{found.seed_text()}")
    return fig


def density_grid(run: RunData, dataset: str, out_dir: Path, seed: int | None = None,
                 points: int = 200) -> list[Path]:
    """The data histogram, the oracle density and each model's density on one grid and scale."""
    return write_figure(lambda: density_grid_figure(run, dataset, seed, points),
                        Path(out_dir) / f"density_{dataset}.png")


# --- samples over data ---------------------------------------------------------------------------

def samples_vs_data_figure(run: RunData, dataset: str, n: int = 2000) -> Figure | None:
    """One panel per (flow, base): model samples over the test data, on the dataset's extent."""
    found = trained(run, dataset, is_2d)
    if found is None:
        return None
    flows, bases = found.flows, found.bases
    x0, x1, y0, y1 = extent(found.data)
    test = found.data.test[:n].double().numpy()
    height = PANEL * (y1 - y0) / (x1 - x0)
    fig = new_figure(len(flows) * PANEL + 0.15, len(bases) * (height + 0.22) + 0.45)
    gs = fig.add_gridspec(len(bases), len(flows))
    marker = dict(s=1.2, linewidths=0, rasterized=True)
    for (flow_name, base), (_record, flow, why) in found.models.items():
        ax = fig.add_subplot(gs[bases.index(base), flows.index(flow_name)])
        ax.set_title(label(flow_name, base))
        if flow is None:
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_aspect("equal")
            note(ax, why)
            continue
        with torch.no_grad():
            samples = flow.sample(n, generator()).double().numpy()
        ax.scatter(test[:, 0], test[:, 1], color=DATA_COLOR, alpha=0.45, **marker)
        ax.scatter(samples[:, 0], samples[:, 1], color=MODEL_COLOR, alpha=0.6, **marker)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        no_ticks(ax)
    handles = [Line2D([], [], ls="", marker="o", ms=3, color=DATA_COLOR, label="test data"),
               Line2D([], [], ls="", marker="o", ms=3, color=MODEL_COLOR, label="model samples")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    fig.suptitle(f"{dataset}: {n} model samples over {len(test)} test points "
                 f"({found.seed_text()})")
    return fig


def samples_vs_data(run: RunData, dataset: str, out_dir: Path, n: int = 2000) -> list[Path]:
    """Per (flow, base), seeded model samples over the test data, one panel each."""
    return write_figure(lambda: samples_vs_data_figure(run, dataset, n),
                        Path(out_dir) / f"samples_{dataset}.png")


# --- after k steps of flow -----------------------------------------------------------------------

def _pick_steps(count: int, max_panels: int) -> list[int]:
    """At most ``max_panels`` evenly spaced indices of ``range(count)``, first and last included."""
    k = max(2, min(int(max_panels), count)) if count > 1 else 1
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, k)})


def _square_limits(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    kept = points[np.isfinite(points).all(axis=1)]
    if not len(kept):
        return (-1.0, 1.0), (-1.0, 1.0)
    low, high = np.quantile(kept, [0.005, 0.995], axis=0)
    centre = (low + high) / 2
    half = max(float(np.max(high - low)) / 2 * 1.12, 1e-3)
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _cyclic_cmap():
    import seaborn as sns
    from matplotlib.colors import ListedColormap

    return ListedColormap(sns.color_palette("husl", 256), name="husl")


def _one_base_per_flow(flows: Sequence[str] | None):
    """For each flow (of ``flows``, when given) its "normal" base, else its first base."""
    def choose(present: list[tuple[str, str]]) -> list[tuple[str, str]]:
        chosen = []
        for flow in dict.fromkeys(f for f, _ in present):
            if flows is not None and flow not in flows:
                continue
            bases = [b for f, b in present if f == flow]
            chosen.append((flow, "normal" if "normal" in bases else bases[0]))
        if flows is not None:  # the caller's order
            chosen.sort(key=lambda pair: list(flows).index(pair[0]))
        return chosen
    return choose


def flow_steps_figure(run: RunData, dataset: str, flows: Sequence[str] | None = None,
                      n: int = 2000, max_panels: int = 9) -> Figure | None:
    """A row per flow: base samples pushed through the layers to data space, layer by layer."""
    found = trained(run, dataset, is_2d, only=_one_base_per_flow(flows))
    if found is None:
        return None
    rows = []
    for (flow_name, base), (record, flow, _) in found.models.items():
        if flow is None:
            continue
        with torch.no_grad():
            steps = flow.sample_steps(n, generator())
        picked = _pick_steps(len(steps), max_panels)
        rows.append((flow_name, base, record, [(i, *steps[i]) for i in picked], len(steps) - 1))
    ncols = max(len(row[3]) for row in rows)
    size = 1.3
    fig = new_figure(ncols * size + 0.3, len(rows) * (size + 0.32) + 0.3)
    gs = fig.add_gridspec(len(rows), ncols)
    test = found.data.test[:n].double().numpy()
    x0, x1, y0, y1 = extent(found.data)
    half = max(x1 - x0, y1 - y0) / 2  # the data panel square too, centred on the extent
    data_limits = (((x0 + x1) / 2 - half, (x0 + x1) / 2 + half),
                   ((y0 + y1) / 2 - half, (y0 + y1) / 2 + half))
    cmap = _cyclic_cmap()
    for row, (flow_name, base, record, picked, total) in enumerate(rows):
        colour_by = None
        for col, (k, name, points) in enumerate(picked):
            points = points.double().numpy()
            if colour_by is None:  # colour each sample by its base point's angle, to track it
                colour_by = np.arctan2(points[:, 1], points[:, 0])
            ax = fig.add_subplot(gs[row, col])
            last = k == total
            if last:
                ax.scatter(test[:, 0], test[:, 1], s=1.0, color="0.75", alpha=0.5,
                           linewidths=0, rasterized=True)
                xl, yl = data_limits
            else:
                xl, yl = _square_limits(points)
            ax.scatter(points[:, 0], points[:, 1], c=colour_by, cmap=cmap,
                       vmin=-math.pi, vmax=math.pi, s=1.2, linewidths=0, alpha=0.8,
                       rasterized=True)
            ax.set_xlim(*xl)
            ax.set_ylim(*yl)
            ax.set_aspect("equal", adjustable="box")
            no_ticks(ax)
            layer = name.split(":", 1)[-1]
            ax.set_title("base sample" if k == 0 else
                         f"{layer}\n{k}/{total} layers" + (": data" if last else ""))
            if col == 0:
                ax.set_ylabel(f"{flow_name} · {base}\nseed {record.get('seed')}")
    fig.suptitle(f"{dataset}: base samples after k steps of flow (points coloured by their "
                 "base angle; data in grey)")
    return fig


def flow_steps(run: RunData, dataset: str, out_dir: Path, flows: Sequence[str] | None = None,
               n: int = 2000, max_panels: int = 9) -> list[Path]:
    """"After k steps of flow": a row per flow of ``Flow.sample_steps`` panels."""
    return write_figure(lambda: flow_steps_figure(run, dataset, flows, n, max_panels),
                        Path(out_dir) / f"flow_steps_{dataset}.png")
