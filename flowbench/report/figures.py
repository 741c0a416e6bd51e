"""Figures of a run for papers and reports, written as PNG.

Every public function takes a :class:`~flowbench.report.rundata.RunData`, writes its figure(s)
under ``out_dir`` and returns the written paths; it returns ``[]`` (no error) when the run
lacks what the figure needs: no records, no saved models, a measurement table that was not
recorded, a dataset that is not 2-D vector data. :func:`make_all` writes every kind for every
dataset of the run.

- :func:`density_grid` -> ``density_<dataset>.png``: test-data histogram, oracle density and
  each (flow, base)'s model density on one grid and one colour scale;
- :func:`samples_vs_data` -> ``samples_<dataset>.png``: seeded model samples over test data;
- :func:`learning_curves` -> ``learning_curves_<dataset>.png``: from ``record["history"]``;
- :func:`flow_steps` -> ``flow_steps_<dataset>.png``: ``Flow.sample_steps``, layer by layer;
- :func:`nll_spread` -> ``nll_spread.png``: test NLL per seed, failed cells marked;
- :func:`speed_vs_nll` -> ``speed_vs_nll.png`` (``speed_vs_nll_log_prob.png`` for the
  ``log_prob`` throughput): gap to the oracle against throughput;
- :func:`logdet_cost` -> ``logdet_cost.png``, ``linear_cost.png``: the measurement tables.

Each figure is built by a ``*_figure`` function returning a matplotlib ``Figure`` (or ``None``
when its input is missing) so that tests and notebooks can inspect axes, titles and lines; the
public functions are thin writers around them.

Rendering never touches pyplot or the user's backend: figures are plain ``matplotlib.figure.Figure``
objects drawn on their own Agg canvas, never registered with pyplot (so none stays open), and
cleared after writing. The seaborn style ("ticks", "paper" context) is applied through
``matplotlib.rc_context``, so global ``rcParams`` are unchanged afterwards. Sampling uses seeded
generators and evaluation is deterministic on the CPU, so the same run gives the same pixels.
"""

from __future__ import annotations

import colorsys
import contextlib
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .rundata import RunData

__all__ = [
    "DPI", "density_grid", "density_grid_figure", "samples_vs_data", "samples_vs_data_figure",
    "learning_curves", "learning_curves_figure", "flow_steps", "flow_steps_figure",
    "nll_spread", "nll_spread_figure", "speed_vs_nll", "speed_vs_nll_figure", "logdet_cost",
    "logdet_cost_figures", "make_all", "FIGURE_KINDS",
]

DPI = 110
PANEL = 1.75            # inches: width of one 2-D panel
SAMPLE_SEED = 0         # generator seed of every sampled picture
EVAL_BATCH = 8192       # grid points per log_prob call
DENSITY_CMAP = "magma"
DATA_COLOR = "0.55"
MODEL_COLOR = "#d6604d"
FAIL_COLOR = "#b2182b"
NOT_OK = "diverged / failed"


# --- style, figures, files ---------------------------------------------------------------------

def _rc() -> dict[str, Any]:
    import seaborn as sns  # imported here: `import flowbench` stays light

    rc: dict[str, Any] = {}
    rc.update(sns.axes_style("ticks"))
    rc.update(sns.plotting_context("paper", font_scale=0.95))
    rc.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "figure.facecolor": "white",
        "savefig.facecolor": "white", "axes.titlesize": 7.5, "axes.labelsize": 7.5,
        "xtick.labelsize": 6.5, "ytick.labelsize": 6.5, "legend.fontsize": 6.5,
        "legend.title_fontsize": 7, "figure.titlesize": 8.5, "axes.titlepad": 3.0,
        "lines.linewidth": 1.2, "legend.frameon": False, "image.interpolation": "nearest",
        "path.simplify": True,
    })
    return rc


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """The seaborn look, for the duration of the block only."""
    with rc_context(_rc()):
        yield


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.03, hspace=0.03)
    return fig


def _save(fig: Figure | None, path: Path) -> list[Path]:
    if fig is None:
        return []
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        fig.clear()  # release artists; the figure was never registered with pyplot
    return [path]


def _no_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
        spine.set_color("0.6")


def _note(ax, text: str) -> None:
    """A panel with no picture: say why in its middle."""
    _no_ticks(ax)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, color=FAIL_COLOR,
            transform=ax.transAxes)


# --- what a run holds --------------------------------------------------------------------------

def _ordered(values: Sequence[Any], preferred: Sequence[Any]) -> list[Any]:
    """Unique ``values``, in the order of ``preferred`` first, then of appearance."""
    seen = list(dict.fromkeys(values))
    rank = {name: i for i, name in enumerate(preferred)}
    return sorted(seen, key=lambda v: (rank.get(v, len(rank)), seen.index(v)))


def _datasets(run: RunData) -> list[str]:
    names = [r["dataset"] for r in run.records if "dataset" in r]
    return _ordered(list(run.config.get("datasets", [])) + names, run.config.get("datasets", []))


def _flows_bases(run: RunData, records: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    flows = _ordered([r["flow"] for r in records], run.config.get("flows", []))
    bases = _ordered([r["base"] for r in records], run.config.get("bases", []))
    return flows, bases


def _pairs(run: RunData, records: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(flow, base) combinations present in ``records``: flows outer, bases inner, config order."""
    flows, bases = _flows_bases(run, records)
    present = {(r["flow"], r["base"]) for r in records}
    return [(f, b) for f in flows for b in bases if (f, b) in present]


def _palette(flows: Sequence[str], bases: Sequence[str]) -> dict[tuple[str, str], tuple]:
    """One colour per (flow, base): a hue per flow, darker to lighter shades per base."""
    import seaborn as sns

    hues = sns.color_palette("colorblind", max(len(flows), 1))
    shades = np.linspace(0.30, 0.62, len(bases)) if len(bases) > 1 else [None]
    colors = {}
    for flow, hue in zip(flows, hues):
        h, light, s = colorsys.rgb_to_hls(*hue)
        for base, shade in zip(bases, shades):
            colors[(flow, base)] = hue if shade is None else colorsys.hls_to_rgb(h, shade, s)
    return colors


def _run_palette(run: RunData) -> dict[tuple[str, str], tuple]:
    return _palette(*_flows_bases(run, [r for r in run.records if "flow" in r and "base" in r]))


def _label(flow: str, base: str) -> str:
    return f"{flow} · {base}"


def _finite(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if math.isfinite(value) else float("nan")


def _is_ok(record: dict[str, Any]) -> bool:
    return record.get("status") == "ok" and math.isfinite(_finite(record.get("test_nll")))


def _records(run: RunData, dataset: str | None = None) -> list[dict[str, Any]]:
    return [r for r in run.records
            if {"dataset", "flow", "base"} <= r.keys()
            and (dataset is None or r["dataset"] == dataset)]


def _dataset(run: RunData, name: str):
    try:
        return run.dataset(name)
    except Exception:  # noqa: BLE001 - e.g. the plugin that defined it is not installed
        return None


def _is_2d(data) -> bool:
    return data is not None and data.kind == "vector" and tuple(data.event_shape) == (2,)


def _extent(data) -> tuple[float, float, float, float]:
    extent = data.info.get("extent") if isinstance(data.info, dict) else None
    if extent is not None and len(extent) == 4:
        return tuple(float(v) for v in extent)
    points = data.test.double().numpy()
    low, high = np.nanquantile(points, [0.005, 0.995], axis=0)
    margin = 0.1 * (high - low) + 1e-6
    return (low[0] - margin[0], high[0] + margin[0], low[1] - margin[1], high[1] + margin[1])


def _models(run: RunData, records: Sequence[dict[str, Any]], seed: int | None
            ) -> dict[tuple[str, str], tuple[dict[str, Any] | None, Any, str]]:
    """Per (flow, base): (record, trained flow, why-not text). The lowest ok seed with a saved
    model is used, or exactly ``seed`` when given."""
    chosen = {}
    for pair in _pairs(run, records):
        cells = sorted((r for r in records if (r["flow"], r["base"]) == pair),
                       key=lambda r: r.get("seed", 0))
        if seed is not None:
            cells = [r for r in cells if r.get("seed") == seed]
        found = (None, None, "")
        for record in cells:
            if not _is_ok(record):
                continue
            try:
                flow = run.load_flow(record)
            except Exception:  # noqa: BLE001 - an unloadable model is a missing model
                flow = None
            if flow is not None:
                found = (record, flow, "")
                break
        if found[1] is None:
            statuses = sorted({str(r.get("status")) for r in cells})
            if not cells:
                why = f"no seed {seed}" if seed is not None else "no cell"
            elif statuses == ["ok"]:
                why = "no saved model"
            else:
                why = ", ".join(s for s in statuses if s != "ok") or "no saved model"
            found = (None, None, why)
        chosen[pair] = found
    return chosen


def _generator(seed: int = SAMPLE_SEED) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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


def _seed_text(records: Sequence[dict[str, Any] | None]) -> str:
    seeds = sorted({r.get("seed") for r in records if r is not None})
    return f"seed {seeds[0]}" if len(seeds) == 1 else "lowest ok seed per cell"


# --- density grid --------------------------------------------------------------------------------

def density_grid_figure(run: RunData, dataset: str, seed: int | None = None,
                        points: int = 200) -> Figure | None:
    """Panels "data", "oracle" (when known), then one per (flow, base); ``None`` without models."""
    data = _dataset(run, dataset)
    records = _records(run, dataset)
    if not _is_2d(data) or not records:
        return None
    models = _models(run, records, seed)
    if not any(flow is not None for _, flow, _ in models.values()):
        return None
    flows, bases = _flows_bases(run, records)
    x0, x1, y0, y1 = _extent(data)
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
    densities = {pair: _density(flow.log_prob, grid32, shape)
                 for pair, (_, flow, _) in models.items() if flow is not None}
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
    fig = _new_figure(ncols * PANEL + 0.15, nrows * (height + 0.3) + 0.3)
    gs = fig.add_gridspec(nrows, ncols)
    image = dict(origin="lower", extent=(x0, x1, y0, y1), cmap=DENSITY_CMAP, vmin=0.0,
                 vmax=vmax, aspect="equal", interpolation="nearest")

    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(hist.T, **image)
    ax.set_title(f"data (test, n={len(test)})")
    _no_ticks(ax)
    if has_oracle:
        ax = fig.add_subplot(gs[1, 0])
        ax.imshow(oracle, **image)
        ax.set_title("oracle p(x)")
        _no_ticks(ax)
    for (flow_name, base), (record, flow, why) in models.items():
        ax = fig.add_subplot(gs[bases.index(base), 1 + flows.index(flow_name)])
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        if flow is None:
            ax.set_title(_label(flow_name, base))
            _note(ax, why)
            continue
        ax.imshow(densities[(flow_name, base)], **image)
        nll, gap = _finite(record.get("test_nll")), _finite(record.get("gap"))
        gap_text = f", gap {gap:+.3f}" if math.isfinite(gap) else ""
        ax.set_title(f"{_label(flow_name, base)}\nNLL {nll:.3f}{gap_text}")
        _no_ticks(ax)
    seeds = _seed_text([r for r, _, _ in models.values()])
    fig.suptitle(f"{dataset}: density, one colour scale (0 to {vmax:.3g}); test NLL in nats, "
                 f"{seeds}")
    return fig


def density_grid(run: RunData, dataset: str, out_dir: Path, seed: int | None = None,
                 points: int = 200) -> list[Path]:
    """The data histogram, the oracle density and each model's density on one grid and scale."""
    with _style():
        return _save(density_grid_figure(run, dataset, seed, points),
                     Path(out_dir) / f"density_{dataset}.png")


# --- samples over data ---------------------------------------------------------------------------

def samples_vs_data_figure(run: RunData, dataset: str, n: int = 2000) -> Figure | None:
    """One panel per (flow, base): model samples over the test data, on the dataset's extent."""
    data = _dataset(run, dataset)
    records = _records(run, dataset)
    if not _is_2d(data) or not records:
        return None
    models = _models(run, records, None)
    if not any(flow is not None for _, flow, _ in models.values()):
        return None
    flows, bases = _flows_bases(run, records)
    x0, x1, y0, y1 = _extent(data)
    test = data.test[:n].double().numpy()
    height = PANEL * (y1 - y0) / (x1 - x0)
    fig = _new_figure(len(flows) * PANEL + 0.15, len(bases) * (height + 0.22) + 0.45)
    gs = fig.add_gridspec(len(bases), len(flows))
    marker = dict(s=1.2, linewidths=0, rasterized=True)
    for (flow_name, base), (record, flow, why) in models.items():
        ax = fig.add_subplot(gs[bases.index(base), flows.index(flow_name)])
        ax.set_title(_label(flow_name, base))
        if flow is None:
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_aspect("equal")
            _note(ax, why)
            continue
        with torch.no_grad():
            samples = flow.sample(n, _generator()).double().numpy()
        ax.scatter(test[:, 0], test[:, 1], color=DATA_COLOR, alpha=0.45, **marker)
        ax.scatter(samples[:, 0], samples[:, 1], color=MODEL_COLOR, alpha=0.6, **marker)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        _no_ticks(ax)
    handles = [Line2D([], [], ls="", marker="o", ms=3, color=DATA_COLOR, label="test data"),
               Line2D([], [], ls="", marker="o", ms=3, color=MODEL_COLOR, label="model samples")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    fig.suptitle(f"{dataset}: {n} model samples over {len(test)} test points "
                 f"({_seed_text([r for r, _, _ in models.values()])})")
    return fig


def samples_vs_data(run: RunData, dataset: str, out_dir: Path, n: int = 2000) -> list[Path]:
    """Per (flow, base), seeded model samples over the test data, one panel each."""
    with _style():
        return _save(samples_vs_data_figure(run, dataset, n),
                     Path(out_dir) / f"samples_{dataset}.png")


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
    finite = np.isfinite(values)
    late = finite & (steps >= 0.1 * np.nanmax(steps)) & (steps > np.nanmin(steps))
    chosen = values[late] if late.any() else values[finite]
    if not len(chosen):
        return (floor - 1, floor + 1) if math.isfinite(floor) else (0.0, 1.0)
    low = float(np.min(chosen))
    if math.isfinite(floor):
        low = min(low, floor)
    q1, q3 = np.percentile(chosen, [25, 75])
    high = min(float(np.max(chosen)), float(q3 + 3 * (q3 - q1)))  # a late spike is cut
    span = max(high - low, 1e-3 * max(abs(high), 1.0))
    return low - 0.06 * span, high + 0.1 * span


def learning_curves_figure(run: RunData, dataset: str) -> Figure | None:
    """Validation (solid, seed mean with a min-max band) and training (dashed, seed mean) NLL."""
    records = [r for r in _records(run, dataset) if _history(r) is not None]
    if not records:
        return None
    colors = _run_palette(run)
    entropy = next((e for e in (_finite(r.get("entropy")) for r in records) if math.isfinite(e)),
                   float("nan"))
    fig = _new_figure(5.0, 2.9)
    ax = fig.add_subplot()
    values, steps = [], []
    handles = []
    for pair in _pairs(run, records):
        cells = [r for r in records if (r["flow"], r["base"]) == pair]
        ok = [_history(r).assign(seed=r.get("seed")) for r in cells if r.get("status") == "ok"]
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
        for record in cells:  # diverged / failed seeds: a thin line ending in an x
            if record.get("status") == "ok":
                continue
            history = _history(record).dropna(subset=["val_nll"])
            if len(history):
                ax.plot(history["step"], history["val_nll"], color=color, lw=0.6, alpha=0.7,
                        marker="x", markevery=[len(history) - 1], ms=5, mec=FAIL_COLOR)
        seeds = f"{len(ok)}/{len(cells)} ok" if len(ok) < len(cells) else f"{len(ok)} seeds"
        handles.append(Line2D([], [], color=color, label=f"{_label(*pair)} ({seeds})"))
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
    if any(r.get("status") != "ok" for r in records):
        style.append(Line2D([], [], color="0.3", lw=0.6, marker="x", mec=FAIL_COLOR,
                            label=NOT_OK))
    fig.legend(handles=handles + style, loc="outside right upper")
    return fig


def learning_curves(run: RunData, dataset: str, out_dir: Path) -> list[Path]:
    """Validation and training NLL against the step, per (flow, base), with the entropy."""
    with _style():
        return _save(learning_curves_figure(run, dataset),
                     Path(out_dir) / f"learning_curves_{dataset}.png")


# --- after k steps of flow -----------------------------------------------------------------------

def _pick_steps(count: int, max_panels: int) -> list[int]:
    """At most ``max_panels`` evenly spaced indices of ``range(count)``, first and last included."""
    k = max(2, min(int(max_panels), count)) if count > 1 else 1
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, k)})


def _square_limits(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    finite = points[np.isfinite(points).all(axis=1)]
    if not len(finite):
        return (-1.0, 1.0), (-1.0, 1.0)
    low, high = np.quantile(finite, [0.005, 0.995], axis=0)
    centre = (low + high) / 2
    half = max(float(np.max(high - low)) / 2 * 1.12, 1e-3)
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _cyclic_cmap():
    import seaborn as sns
    from matplotlib.colors import ListedColormap

    return ListedColormap(sns.color_palette("husl", 256), name="husl")


def flow_steps_figure(run: RunData, dataset: str, flows: Sequence[str] | None = None,
                      n: int = 2000, max_panels: int = 9) -> Figure | None:
    """A row per flow: base samples pushed through the layers to data space, layer by layer."""
    data = _dataset(run, dataset)
    records = _records(run, dataset)
    if not _is_2d(data) or not records:
        return None
    run_flows, _ = _flows_bases(run, records)
    rows = []
    for flow_name in (run_flows if flows is None else [f for f in flows if f in run_flows]):
        cells = [r for r in records if r["flow"] == flow_name]
        _, bases = _flows_bases(run, cells)
        base = "normal" if "normal" in bases else bases[0]
        record, flow, _ = _models(run, [r for r in cells if r["base"] == base], None)[
            (flow_name, base)]
        if flow is None:
            continue
        with torch.no_grad():
            steps = flow.sample_steps(n, _generator())
        picked = _pick_steps(len(steps), max_panels)
        rows.append((flow_name, base, record, [(i, *steps[i]) for i in picked], len(steps) - 1))
    if not rows:
        return None
    ncols = max(len(row[3]) for row in rows)
    size = 1.3
    fig = _new_figure(ncols * size + 0.3, len(rows) * (size + 0.32) + 0.3)
    gs = fig.add_gridspec(len(rows), ncols)
    test = data.test[:n].double().numpy()
    x0, x1, y0, y1 = _extent(data)
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
            _no_ticks(ax)
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
    with _style():
        return _save(flow_steps_figure(run, dataset, flows, n, max_panels),
                     Path(out_dir) / f"flow_steps_{dataset}.png")


# --- test NLL over seeds -------------------------------------------------------------------------

def _facets(count: int, width: float, height: float, extra: float = 0.0,
            max_cols: int = 4) -> tuple[Figure, list, int, int]:
    ncols = min(max_cols, max(count, 1))
    nrows = math.ceil(count / ncols)
    fig = _new_figure(ncols * width + extra, nrows * height + 0.3)
    gs = fig.add_gridspec(nrows, ncols)
    axes = [fig.add_subplot(gs[i // ncols, i % ncols]) for i in range(count)]
    return fig, axes, nrows, ncols


def _legend_slot(fig: Figure, count: int, nrows: int, ncols: int, handles: list) -> None:
    """The legend in the first empty facet slot, else below the facets."""
    if count < nrows * ncols:
        gs = fig.axes[0].get_subplotspec().get_gridspec()
        ax = fig.add_subplot(gs[count // ncols, count % ncols:])
        ax.axis("off")
        ax.legend(handles=handles, loc="center left", borderaxespad=0.0)
    else:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))


def nll_spread_figure(run: RunData) -> Figure | None:
    """Per dataset: test NLL of every seed, the seed mean, the entropy; bad cells as red x."""
    records = _records(run)
    if not records or not any("test_nll" in r or "status" in r for r in records):
        return None
    colors = _run_palette(run)
    datasets = [d for d in _datasets(run) if any(r["dataset"] == d for r in records)]
    fig, axes, nrows, ncols = _facets(len(datasets), 2.2, 2.0)
    any_bad = False
    for ax, dataset in zip(axes, datasets):
        cells = [r for r in records if r["dataset"] == dataset]
        pairs = _pairs(run, cells)
        entropy = next((e for e in (_finite(r.get("entropy")) for r in cells)
                        if math.isfinite(e)), float("nan"))
        shown, bad_positions = [], []
        for x, pair in enumerate(pairs):
            group = sorted((r for r in cells if (r["flow"], r["base"]) == pair),
                           key=lambda r: r.get("seed", 0))
            ok = [_finite(r["test_nll"]) for r in group if _is_ok(r)]
            bad = [r for r in group if not _is_ok(r)]
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
        ax.set_xticks(range(len(pairs)))
        ax.set_xticklabels([f"{f}\n{b}" for f, b in pairs], fontsize=5.5)
        ax.set_xlim(-0.6, len(pairs) - 0.4)
        ax.set_title(dataset)
        ax.grid(axis="y", lw=0.4, color="0.9")
    for i, ax in enumerate(axes):
        if i % ncols == 0:
            ax.set_ylabel("test NLL (nats)")
    handles = [Line2D([], [], ls="", marker="o", ms=3.5, color="0.4", label="one seed"),
               Line2D([], [], ls="", marker="_", ms=10, mew=1.6, color="black",
                      label="seed mean"),
               Line2D([], [], color="0.25", ls="--", lw=0.9, label="entropy (best possible)")]
    if any_bad:
        handles.append(Line2D([], [], ls="", marker="x", ms=5.5, mew=1.5, color=FAIL_COLOR,
                              label=f"{NOT_OK} cell\n(no test NLL; drawn at top)"))
    _legend_slot(fig, len(datasets), nrows, ncols, handles)
    fig.suptitle("test NLL per (flow, base) over seeds")
    return fig


def nll_spread(run: RunData, out_dir: Path) -> list[Path]:
    """Test NLL per (flow, base) over seeds, one facet per dataset, failed cells marked."""
    with _style():
        return _save(nll_spread_figure(run), Path(out_dir) / "nll_spread.png")


# --- speed against NLL ---------------------------------------------------------------------------

SPEEDS = {
    "train_examples_per_second": "training throughput (examples / s)",
    "log_prob_examples_per_second": "log_prob throughput (examples / s)",
    "sample_examples_per_second": "sampling throughput (examples / s)",
}


def speed_vs_nll_figure(run: RunData,
                        speed: str = "train_examples_per_second") -> Figure | None:
    """Per dataset: gap to the oracle against throughput (log x), mean ± std over ok seeds."""
    if not run.records:
        return None
    frame = run.frame()
    needed = {"dataset", "flow", "base", "status", speed, "gap"}
    if frame.empty or not needed <= set(frame.columns):
        return None
    frame = _numeric(frame, [speed, "gap"])
    frame = frame[(frame["status"] == "ok") & np.isfinite(frame[speed]) & (frame[speed] > 0)
                  & np.isfinite(frame["gap"])]
    if frame.empty:
        return None
    colors = _run_palette(run)
    flows, bases = _flows_bases(run, frame.to_dict("records"))
    markers = dict(zip(bases, "osD^vP*X"))
    datasets = [d for d in _datasets(run) if d in set(frame["dataset"])]
    fig, axes, nrows, ncols = _facets(len(datasets), 2.2, 2.0)
    for ax, dataset in zip(axes, datasets):
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
    for i, ax in enumerate(axes):
        if i % ncols == 0:
            ax.set_ylabel("gap to oracle (nats)")
        if i >= len(axes) - ncols:
            ax.set_xlabel(SPEEDS.get(speed, speed))
    handles = [Line2D([], [], ls="", marker=markers.get(b, "o"), ms=4.5, mec="white", mew=0.6,
                      color=colors.get((f, b), "0.3"), label=_label(f, b))
               for f in flows for b in bases if ((frame["flow"] == f) & (frame["base"] == b)).any()]
    handles.append(Line2D([], [], color="0.25", ls="--", lw=0.8, label="oracle (gap 0)"))
    _legend_slot(fig, len(datasets), nrows, ncols, handles)
    fig.suptitle("accuracy against speed: gap to the oracle vs throughput "
                 "(mean ± std over ok seeds; lower right is better)")
    return fig


def speed_vs_nll(run: RunData, out_dir: Path,
                 speed: str = "train_examples_per_second") -> list[Path]:
    """Gap to the oracle against throughput, per dataset. ``speed`` names the throughput column
    (``train_examples_per_second``, ``log_prob_examples_per_second``, ...)."""
    suffix = "" if speed == "train_examples_per_second" else "_" + speed.replace(
        "_examples_per_second", "")
    with _style():
        return _save(speed_vs_nll_figure(run, speed), Path(out_dir) / f"speed_vs_nll{suffix}.png")


# --- log-det and linear-layer cost ---------------------------------------------------------------

PATH_STYLES = {"analytic": "-", "brute_force": "--"}


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


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
    table = _numeric(table, ["dim", "seconds_median", "seconds_iqr", "batch", "threads"])
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
    colors = _palette(flows, bases)
    paths = list(dict.fromkeys(table["path"]))
    styles = {p: PATH_STYLES.get(p, ":") for p in paths}
    fig = _new_figure(len(panels) * 2.6 + 1.4, 2.6)
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
                               for c, v in zip(split, key)))
        ax.grid(lw=0.4, color="0.9", which="major")
    handles = [Line2D([], [], color=colors[pair], label=_label(*pair) if len(bases) > 1 or
                      bases != ["-"] else pair[0])
               for pair in dict.fromkeys(zip(table["flow"], table["base"]))]
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
    table = _numeric(table, ["channels", "seconds_median", "seconds_iqr"])
    table = table[np.isfinite(table["channels"]) & (table["channels"] > 0)
                  & np.isfinite(table["seconds_median"]) & (table["seconds_median"] > 0)]
    if table.empty:
        return None
    operations = _ordered(list(table["operation"]), ["logdet", "forward", "inverse"])
    layers = _ordered(list(table["layer"]), ["lu", "plain"])
    import seaborn as sns

    colors = dict(zip(layers, sns.color_palette("colorblind", len(layers))))
    fig = _new_figure(len(operations) * 2.3 + 1.0, 2.4)
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
    handles = [Line2D([], [], color=colors[l], marker="o", ms=2.5, label=names.get(l, l))
               for l in layers]
    fig.legend(handles=handles, loc="outside right center")
    fig.suptitle("invertible linear layer: LU-parameterised vs plain matrix "
                 "(median; band: IQR)")
    return fig


def logdet_cost_figures(run: RunData) -> dict[str, Figure]:
    """``{"logdet_cost": Figure, "linear_cost": Figure}``, each only when its table has rows."""
    figures = {"logdet_cost": _logdet_figure(run.table("logdet_cost")),
               "linear_cost": _linear_figure(run.table("linear_cost"))}
    return {name: fig for name, fig in figures.items() if fig is not None}


def logdet_cost(run: RunData, out_dir: Path) -> list[Path]:
    """Seconds vs dimension of analytic and brute-force log-dets (``logdet_cost`` table) and
    seconds vs channels of LU vs plain linear layers (``linear_cost`` table), log-log."""
    written: list[Path] = []
    with _style():
        for name, fig in logdet_cost_figures(run).items():
            written += _save(fig, Path(out_dir) / f"{name}.png")
    return written


# --- everything ----------------------------------------------------------------------------------

#: figure kinds written by :func:`make_all`, in order
FIGURE_KINDS = ("nll_spread", "speed_vs_nll", "learning_curves", "density_grid",
                "samples_vs_data", "flow_steps", "image_samples", "logdet_cost", "tuning")


def make_all(run: RunData, out_dir: Path, *, strict: bool = False, points: int = 200,
             n: int = 2000, kinds: Sequence[str] | None = None,
             datasets: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """Every figure kind (or only ``kinds``) for every dataset of the run (or only ``datasets``,
    for the per-dataset kinds): ``{kind: [written paths]}``.

    A kind whose input is missing gives ``[]``. A kind that raises is reported with a warning and
    gives ``[]`` (so a report at the end of a long run never dies on one figure), unless
    ``strict``.
    """
    out_dir = Path(out_dir)
    unknown = sorted(set(kinds or ()) - set(FIGURE_KINDS))
    if unknown:
        raise ValueError(f"unknown figure kind(s) {unknown}; valid choices: "
                         f"{', '.join(FIGURE_KINDS)}")
    datasets = [d for d in _datasets(run) if datasets is None or d in datasets]
    jobs: dict[str, list[Callable[[], list[Path]]]] = {
        "nll_spread": [lambda: nll_spread(run, out_dir)],
        "speed_vs_nll": [lambda: speed_vs_nll(run, out_dir),  # the second only when measured
                         lambda: speed_vs_nll(run, out_dir, "log_prob_examples_per_second")],
        "learning_curves": [lambda d=d: learning_curves(run, d, out_dir) for d in datasets],
        "density_grid": [lambda d=d: density_grid(run, d, out_dir, points=points)
                         for d in datasets],
        "samples_vs_data": [lambda d=d: samples_vs_data(run, d, out_dir, n=n) for d in datasets],
        "flow_steps": [lambda d=d: flow_steps(run, d, out_dir, n=n) for d in datasets],
        "image_samples": [lambda d=d: image_samples(run, d, out_dir) for d in datasets],
        "logdet_cost": [lambda: logdet_cost(run, out_dir)],
        "tuning": [lambda: tuning(run, out_dir)],
    }
    written: dict[str, list[Path]] = {}
    for kind in FIGURE_KINDS:
        if kinds is not None and kind not in kinds:
            continue
        written[kind] = []
        for job in jobs[kind]:
            try:
                written[kind] += job()
            except Exception as error:  # noqa: BLE001 - one broken figure must not stop the rest
                if strict:
                    raise
                warnings.warn(f"figure {kind} skipped: {type(error).__name__}: {error}",
                              stacklevel=2)
    return written


# --- tuning (runs made with --tuned) -----------------------------------------------------------

def _studies(run: RunData) -> list[Any]:
    """The Optuna studies a ``--tuned`` run used, loaded from the storage its config names
    (empty when the run was not tuned or the storage is out of reach)."""
    tuning = run.config.get("tuning") or {}
    if not tuning.get("studies"):
        return []
    import optuna

    from ..tune import open_storage

    try:
        storage = open_storage(tuning["storage"])
        return [optuna.load_study(study_name=name, storage=storage)
                for name in tuning["studies"]]
    except Exception as error:  # noqa: BLE001 - a missing storage only costs these figures
        warnings.warn(f"tuning figures skipped: cannot open {tuning['storage']}: {error}",
                      stacklevel=2)
        return []


def _panels(count: int, width: float, height: float) -> tuple[Figure, list[Any]]:
    """A figure of ``count`` panels of ``width`` x ``height`` inches, up to 4 per row; the
    grid's unused panels are hidden."""
    columns = min(4, count)
    rows = math.ceil(count / columns)
    fig = _new_figure(width * columns, height * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, list(axes[:count])


def tuning_history_figure(studies: Sequence[Any]) -> Figure | None:
    """Optuna's optimisation history per study: each trial's value and the best so far."""
    import optuna

    if not studies:
        return None
    with _style():
        fig, axes = _panels(len(studies), 2.3, 1.9)
        for ax, study in zip(axes, studies):
            complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            numbers = [t.number for t in complete]
            values = [t.value for t in complete]
            ax.scatter(numbers, values, s=8, color=DATA_COLOR, label="trial")
            best = np.minimum.accumulate(values) if values else []
            ax.step(numbers, best, where="post", color=MODEL_COLOR, label="best so far")
            pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
            if pruned:
                ax.scatter(pruned, [max(values or [0])] * len(pruned), marker="|",
                           color="0.3", label="pruned")
            if values:
                low, high = min(values), float(np.quantile(values, 0.9))
                ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
            ax.set_title(study.study_name.split("/", 1)[-1], fontsize=6.5)
            ax.set_xlabel("trial")
            ax.set_ylabel("val NLL")
        axes[0].legend(loc="upper right")
        fig.suptitle("optimisation history (validation NLL; pruned trials at the top)")
    return fig


def tuning_importance_figure(studies: Sequence[Any]) -> Figure | None:
    """Optuna's parameter importances (fANOVA) per study, as horizontal bars."""
    import optuna

    usable = [s for s in studies if sum(
        t.state == optuna.trial.TrialState.COMPLETE for t in s.trials) >= 2]
    if not usable:
        return None
    with _style():
        fig, axes = _panels(len(usable), 2.6, 2.0)
        for ax, study in zip(axes, usable):
            try:
                importances = optuna.importance.get_param_importances(study, normalize=True)
            except (RuntimeError, ValueError):  # e.g. every trial has the same parameters
                importances = {}
            names = list(importances)[::-1]
            ax.barh(names, [importances[n] for n in names], color=MODEL_COLOR)
            ax.set_xlim(0, 1)
            ax.set_title(study.study_name.split("/", 1)[-1], fontsize=6.5)
            ax.tick_params(axis="y", labelsize=5.5)
        fig.suptitle("hyperparameter importance (Optuna fANOVA, share of variance)")
    return fig


def tuning(run: RunData, out_dir: Path) -> list[Path]:
    """``tuning_history.png`` and ``tuning_importance.png`` for a ``--tuned`` run."""
    studies = _studies(run)
    return (_save(tuning_history_figure(studies), Path(out_dir) / "tuning_history.png")
            + _save(tuning_importance_figure(studies), Path(out_dir) / "tuning_importance.png"))


# --- image datasets: sample grids --------------------------------------------------------------

def _tile(images: np.ndarray, columns: int) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one (rows*H, columns*W, C) mosaic with 1-pixel gaps."""
    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    mosaic = np.ones((rows * (h + 1) - 1, columns * (w + 1) - 1, c))
    for index, image in enumerate(images):
        r, col = divmod(index, columns)
        mosaic[r * (h + 1): r * (h + 1) + h, col * (w + 1): col * (w + 1) + w] = \
            image.transpose(1, 2, 0)
    return mosaic


def _as_pixels(x: torch.Tensor, levels: int) -> np.ndarray:
    """Model-space samples (continuous, in [0, levels)) -> displayable [0, 1] pixels."""
    pixels = torch.clamp(torch.floor(x), 0, levels - 1) / (levels - 1)
    return pixels.detach().cpu().numpy()


def image_samples_figure(run: RunData, dataset: str, temperatures: Sequence[float] = (1.0, 0.7),
                         n: int = 36) -> Figure | None:
    """Real test images beside each flow/base's samples at each temperature (seeded)."""
    data = _dataset(run, dataset)
    if data is None or len(data.event_shape) != 3 or not data.levels:
        return None
    models = _models(run, _records(run, dataset), None)
    if not any(flow is not None for _, flow, _ in models.values()):
        return None
    columns = int(math.sqrt(n))
    panels = len(temperatures) + 1
    with _style():
        fig = _new_figure(1.6 * panels, 1.7 * len(models))
        axes = fig.subplots(len(models), panels, squeeze=False)
        real = _as_pixels(data.test[:n], data.levels)
        for row, ((flow_name, base), (record, flow, why)) in enumerate(models.items()):
            for col in range(panels):
                ax = axes[row, col]
                _no_ticks(ax)
                if col == 0:
                    ax.imshow(_tile(real, columns).squeeze(), cmap="gray", vmin=0, vmax=1)
                    ax.set_title("test images" if row == 0 else "")
                    ax.set_ylabel(_label(flow_name, base))
                    continue
                temperature = temperatures[col - 1]
                if flow is None:
                    ax.text(0.5, 0.5, why, ha="center", va="center", color=FAIL_COLOR,
                            transform=ax.transAxes)
                    continue
                with torch.no_grad():
                    samples = flow.sample(n, _generator(), temperature)
                ax.imshow(_tile(_as_pixels(samples, data.levels), columns).squeeze(), cmap="gray",
                          vmin=0, vmax=1)
                bpd = _finite(record.get("test_bpd"))
                ax.set_title(f"T = {temperature:g}" + (f"  ({bpd:.2f} bits/dim)"
                                                       if col == 1 and bpd == bpd else ""))
        fig.suptitle(f"{dataset}: samples at temperatures {', '.join(map(str, temperatures))} "
                     "beside real test images (seeded)")
    return fig


def image_samples(run: RunData, dataset: str, out_dir: Path,
                  temperatures: Sequence[float] = (1.0, 0.7)) -> list[Path]:
    """``image_samples_<dataset>.png`` for image datasets with trained models."""
    return _save(image_samples_figure(run, dataset, temperatures),
                 Path(out_dir) / f"image_samples_{dataset}.png")
