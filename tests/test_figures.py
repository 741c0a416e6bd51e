"""Figures of a run: real pictures from a real smoke run, synthetic measurement tables, and
graceful empty results when a figure's input is missing."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch

from flowbench.data.dataset import Dataset
from flowbench.report import figures
from flowbench.report.rundata import RunData
from flowbench.plan import plan_run
from flowbench.runner import execute
from flowbench.store import RunStore


# --- fixtures and helpers ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def smoke_run(registry, tmp_path_factory) -> RunData:
    """The smoke suite (two_moons, eight_gaussians x nice/realnvp/glow x normal/bimodal, seed 0),
    trained and saved exactly as `flowbench run` does."""
    folder = tmp_path_factory.mktemp("smoke_run")
    plan = plan_run(registry, "smoke")
    store = RunStore(folder)
    store.write_config({**plan.config(), "config_hash": plan.config_hash()})
    records = execute(plan, store)
    assert all(r["status"] == "ok" for r in records)
    return RunData.load(folder)


def variant(run: RunData, records=None, tables=None, path: Path | None = None) -> RunData:
    """The same run with other records / tables / folder (nothing is written into the run)."""
    return RunData(path or run.path, run.config, run.metadata,
                   run.records if records is None else records,
                   run.tables if tables is None else tables)


def n_pairs(run: RunData, dataset: str) -> int:
    return len({(r["flow"], r["base"]) for r in run.records if r["dataset"] == dataset})


def check_png(path: Path, size_inches=None) -> np.ndarray:
    """The PNG decodes, has the figure's size in pixels and is not blank."""
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    height, width = image.shape[:2]
    if size_inches is not None:
        expected_w, expected_h = np.asarray(size_inches) * figures.DPI
        assert abs(width - expected_w) <= 2 and abs(height - expected_h) <= 2
        assert width / height == pytest.approx(expected_w / expected_h, rel=0.02)
    rgb = image[..., :3]
    assert rgb.std() > 0.03, "blank picture"
    assert (rgb < 0.5).mean() > 0.002, "nothing dark drawn"
    return image


def panels(fig) -> list:
    """Axes that show something (not the legend-only slot)."""
    return [ax for ax in fig.axes if ax.axison]


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


# --- per-dataset figures on the real run ---------------------------------------------------------

def test_density_grid_panels_titles_and_png(smoke_run: RunData, tmp_path: Path) -> None:
    fig = figures.density_grid_figure(smoke_run, "two_moons", points=60)
    size = fig.get_size_inches().copy()
    pairs = n_pairs(smoke_run, "two_moons")
    assert pairs == 6
    assert len(fig.axes) == 2 + pairs
    names = titles(fig)
    assert names[0].startswith("data") and names[1].startswith("oracle")
    assert sum("NLL" in t for t in names) == pairs
    record = next(r for r in smoke_run.records
                  if (r["dataset"], r["flow"], r["base"]) == ("two_moons", "glow", "bimodal"))
    assert any(t.startswith("glow · bimodal") and f"NLL {record['test_nll']:.3f}" in t
               for t in names)
    # one colour scale: every image shares vmin/vmax, and the oracle reaches into it
    images = [ax.images[0] for ax in fig.axes]
    assert len({im.get_clim() for im in images}) == 1
    oracle = images[1].get_array()
    assert 0.3 < float(oracle.max()) / images[1].get_clim()[1] <= 1.0
    # each model put most of its mass on the grid (density integrates to about 1 on the extent)
    x0, x1, y0, y1 = smoke_run.dataset("two_moons").info["extent"]
    cell = (x1 - x0) * (y1 - y0) / 60 ** 2
    for im in images[2:]:
        assert 0.5 < float(np.asarray(im.get_array()).sum()) * cell < 1.05
    paths = figures.density_grid(smoke_run, "two_moons", tmp_path, points=60)
    assert paths == [tmp_path / "density_two_moons.png"]
    check_png(paths[0], size)


def test_density_grid_seed_choice_and_missing_models(smoke_run: RunData, tmp_path: Path) -> None:
    assert figures.density_grid(smoke_run, "two_moons", tmp_path, seed=7) == []
    fig = figures.density_grid_figure(smoke_run, "eight_gaussians", seed=0, points=40)
    assert "seed 0" in fig._suptitle.get_text()
    # a run folder without saved models: nothing to draw, no crash
    no_models = variant(smoke_run, path=tmp_path / "elsewhere")
    for function in (figures.density_grid, figures.samples_vs_data, figures.flow_steps):
        assert function(no_models, "two_moons", tmp_path) == []
    assert not list(tmp_path.glob("*.png"))


def test_diverged_cell_keeps_its_panel(smoke_run: RunData) -> None:
    records = [dict(r) for r in smoke_run.records]
    bad = next(r for r in records if (r["dataset"], r["flow"], r["base"])
               == ("two_moons", "realnvp", "normal"))
    bad.update(status="diverged", test_nll=None, gap=None)
    fig = figures.density_grid_figure(variant(smoke_run, records), "two_moons", points=40)
    assert len(fig.axes) == 2 + 6
    empty = [ax for ax in fig.axes if not ax.images]
    assert len(empty) == 1 and empty[0].get_title() == "realnvp · normal"
    assert "diverged" in empty[0].texts[0].get_text()


def test_samples_vs_data(smoke_run: RunData, tmp_path: Path) -> None:
    fig = figures.samples_vs_data_figure(smoke_run, "eight_gaussians", n=300)
    size = fig.get_size_inches().copy()
    assert len(fig.axes) == n_pairs(smoke_run, "eight_gaussians")
    extent = smoke_run.dataset("eight_gaussians").info["extent"]
    for ax in fig.axes:
        data, model = ax.collections  # test data under model samples, two colours
        assert len(data.get_offsets()) == len(model.get_offsets()) == 300
        assert not np.allclose(data.get_facecolor()[0][:3], model.get_facecolor()[0][:3])
        assert ax.get_xlim() == pytest.approx(extent[:2])
    (path,) = figures.samples_vs_data(smoke_run, "eight_gaussians", tmp_path, n=300)
    check_png(path, size)


def test_learning_curves_lines(smoke_run: RunData, tmp_path: Path) -> None:
    fig = figures.learning_curves_figure(smoke_run, "two_moons")
    (ax,) = fig.axes
    pairs = n_pairs(smoke_run, "two_moons")
    lines = ax.get_lines()
    solid = [line for line in lines if line.get_linestyle() == "-"]
    dashed = [line for line in lines if line.get_linestyle() == "--"]
    dotted = [line for line in lines if line.get_linestyle() == ":"]
    assert len(solid) == len(dashed) == pairs and len(lines) == 2 * pairs + 1
    entropy = smoke_run.records[0]["entropy"]
    assert dotted[0].get_ydata()[0] == pytest.approx(entropy)
    # validation curves start at step 0; training curves have no step-0 value
    assert all(line.get_xdata()[0] == 0 for line in solid)
    assert all(line.get_xdata()[0] > 0 for line in dashed)
    low, high = ax.get_ylim()
    assert low < entropy < high
    size = fig.get_size_inches().copy()
    (path,) = figures.learning_curves(smoke_run, "two_moons", tmp_path)
    check_png(path, size)


def test_learning_curve_limits_ignore_the_huge_first_points() -> None:
    steps = np.arange(0, 2001, 100, dtype=float)
    values = np.r_[400.0, 3.0, np.linspace(2.0, 1.0, len(steps) - 2)]
    low, high = figures.curves._robust_ylim(values, steps, floor=0.8)
    assert low < 0.8 and 2.0 < high < 4.0
    # a single spike late in training does not squash the curves either
    values[10] = 1e6
    assert figures.curves._robust_ylim(values, steps, floor=0.8)[1] < 10
    assert figures.curves._robust_ylim(np.array([np.nan]), np.array([0.0]), math.nan) == (0.0, 1.0)


def test_learning_curves_with_a_diverged_seed_and_without_history(smoke_run: RunData) -> None:
    records = [dict(r) for r in smoke_run.records]
    bad = next(r for r in records if (r["dataset"], r["flow"]) == ("two_moons", "glow"))
    bad.update(status="diverged", test_nll=None)
    (ax,) = figures.learning_curves_figure(variant(smoke_run, records), "two_moons").axes
    marked = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(marked) == 1 and len(ax.get_lines()) == 2 * 5 + 1 + 1
    no_history = [{k: v for k, v in r.items() if k != "history"} for r in smoke_run.records]
    assert figures.learning_curves(variant(smoke_run, no_history), "two_moons", Path("/x")) == []


def test_flow_steps(smoke_run: RunData, tmp_path: Path) -> None:
    fig = figures.flow_steps_figure(smoke_run, "two_moons", n=400, max_panels=3)
    flows = ["nice", "realnvp", "glow"]
    assert len(fig.axes) == 3 * len(flows)  # every flow here has more than 3 steps
    for row, flow in enumerate(flows):
        row_axes = fig.axes[3 * row: 3 * row + 3]
        assert row_axes[0].get_title() == "base sample"
        assert row_axes[-1].get_title().endswith("data")
        assert row_axes[0].get_ylabel().startswith(f"{flow} · normal")
        assert len(row_axes[-1].collections) == 2  # data faintly under the samples
    one = figures.flow_steps_figure(smoke_run, "two_moons", flows=["glow"], n=200)
    record = next(r for r in smoke_run.records
                  if (r["dataset"], r["flow"], r["base"], r["seed"])
                  == ("two_moons", "glow", "normal", 0))
    n_layers = len(smoke_run.load_flow(record).layers())
    assert len(one.axes) == min(9, n_layers + 1)
    assert one.axes[-1].get_title().startswith(f"FixedAffine\n{n_layers}/{n_layers}")
    size = fig.get_size_inches().copy()
    (path,) = figures.flow_steps(smoke_run, "two_moons", tmp_path, n=400, max_panels=3)
    check_png(path, size)


def test_pick_steps() -> None:
    assert figures.toy2d._pick_steps(26, 9) == [0, 3, 6, 9, 12, 16, 19, 22, 25]
    assert figures.toy2d._pick_steps(5, 9) == [0, 1, 2, 3, 4]
    assert figures.toy2d._pick_steps(7, 2) == [0, 6]
    assert figures.toy2d._pick_steps(1, 9) == [0]


class ThreeD(RunData):
    def dataset(self, name: str) -> Dataset:
        points = torch.randn(50, 3)
        return Dataset(name, points, points, points, (3,))


def test_only_2d_vector_data_gets_pictures(smoke_run: RunData, tmp_path: Path) -> None:
    run = ThreeD(smoke_run.path, smoke_run.config, smoke_run.metadata, smoke_run.records, {})
    for function in (figures.density_grid, figures.samples_vs_data, figures.flow_steps):
        assert function(run, "two_moons", tmp_path) == []


# --- whole-run figures ---------------------------------------------------------------------------

def test_nll_spread_shows_failed_cells(smoke_run: RunData, tmp_path: Path) -> None:
    fig = figures.nll_spread_figure(smoke_run)
    datasets = panels(fig)
    assert [ax.get_title() for ax in datasets] == ["two_moons", "eight_gaussians"]
    assert not any(line.get_marker() == "x" for ax in datasets for line in ax.get_lines())
    records = [dict(r) for r in smoke_run.records]
    for record in records:
        if (record["dataset"], record["flow"], record["base"]) == ("eight_gaussians", "nice",
                                                                     "bimodal"):
            record.update(status="diverged", test_nll=None, gap=None)
        if (record["dataset"], record["flow"]) == ("two_moons", "glow") \
                and record["base"] == "normal":
            record.update(status="failed", test_nll=None, gap=None)
    fig = figures.nll_spread_figure(variant(smoke_run, records))
    for ax in panels(fig):
        crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
        assert len(crosses) == 1 and len(crosses[0].get_xdata()) == 1
        entropy = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(entropy) == 1
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    legend = [t.get_text() for leg in legends for t in leg.get_texts()]
    assert any("diverged" in t for t in legend)
    size = fig.get_size_inches().copy()
    (path,) = figures.nll_spread(variant(smoke_run, records), tmp_path)
    check_png(path, size)


def test_speed_vs_nll(smoke_run: RunData, tmp_path: Path) -> None:
    fig = figures.speed_vs_nll_figure(smoke_run)
    axes = panels(fig)
    assert len(axes) == 2 and all(ax.get_xscale() == "log" for ax in axes)
    for ax in axes:
        assert len(ax.containers) == 6  # one error-bar marker per (flow, base)
    size = fig.get_size_inches().copy()
    (path,) = figures.speed_vs_nll(smoke_run, tmp_path)
    assert path.name == "speed_vs_nll.png"
    check_png(path, size)
    # older runs without the throughput column, and an optional other speed column
    old = [{k: v for k, v in r.items() if not k.endswith("_examples_per_second")}
           for r in smoke_run.records]
    assert figures.speed_vs_nll(variant(smoke_run, old), tmp_path / "old") == []
    assert figures.speed_vs_nll(variant(smoke_run, old), tmp_path / "old",
                                speed="log_prob_examples_per_second") == []
    assert not (tmp_path / "old").exists()
    newer = [dict(r, log_prob_examples_per_second=1e5 * (1 + i)) for i, r in enumerate(old)]
    (path,) = figures.speed_vs_nll(variant(smoke_run, newer), tmp_path,
                                   speed="log_prob_examples_per_second")
    assert path.name == "speed_vs_nll_log_prob.png"


def cost_tables() -> dict[str, pd.DataFrame]:
    rows = []
    for flow in ("nice", "glow"):
        for path in ("analytic", "brute_force"):
            for dim in (2, 4, 8, 16, 32):
                seconds = 1e-5 * dim * (1 if path == "analytic" else dim) * (2 if flow == "glow"
                                                                              else 1)
                rows.append(dict(flow=flow, base="normal", dim=dim, path=path,
                                 seconds_median=seconds, seconds_iqr=seconds / 10,
                                 per_example_seconds=seconds / 64, repeats=5, batch=64,
                                 max_abs_error=1e-12, threads=1))
    linear = [dict(layer=layer, channels=c, operation=op, repeats=5,
                   seconds_median=1e-6 * c ** (3 if (op == "logdet" and layer == "plain") else 2),
                   seconds_iqr=1e-7 * c)
              for layer in ("lu", "plain") for op in ("logdet", "forward", "inverse")
              for c in (4, 8, 16, 32, 64)]
    return {"logdet_cost": pd.DataFrame(rows), "linear_cost": pd.DataFrame(linear)}


def test_logdet_and_linear_cost(smoke_run: RunData, tmp_path: Path) -> None:
    run = variant(smoke_run, tables=cost_tables())
    built = figures.logdet_cost_figures(run)
    assert set(built) == {"logdet_cost", "linear_cost"}
    (ax,) = panels(built["logdet_cost"])
    assert ax.get_xscale() == ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 4  # 2 flows x 2 paths
    assert sorted(line.get_linestyle() for line in lines) == ["-", "-", "--", "--"]
    linear = panels(built["linear_cost"])
    assert [a.get_title() for a in linear] == ["logdet", "forward", "inverse"]
    assert all(len(a.get_lines()) == 2 and a.get_yscale() == "log" for a in linear)
    sizes = {name: fig.get_size_inches().copy() for name, fig in built.items()}
    paths = figures.logdet_cost(run, tmp_path)
    assert [p.name for p in paths] == ["logdet_cost.png", "linear_cost.png"]
    for path in paths:
        check_png(path, sizes[path.stem])
    # several batch sizes: one panel each
    tables = cost_tables()
    tables["logdet_cost"] = pd.concat([tables["logdet_cost"],
                                       tables["logdet_cost"].assign(batch=256)])
    assert len(panels(figures.logdet_cost_figures(variant(smoke_run, tables=tables))[
        "logdet_cost"])) == 2
    # missing or empty tables, or tables without the needed columns
    assert figures.logdet_cost(smoke_run, tmp_path / "none") == []
    only = {"logdet_cost": pd.DataFrame(), "linear_cost": cost_tables()["linear_cost"]}
    assert [p.name for p in figures.logdet_cost(variant(smoke_run, tables=only),
                                                tmp_path / "one")] == ["linear_cost.png"]
    wrong = {"logdet_cost": pd.DataFrame({"flow": ["nice"], "dim": [2]})}
    assert figures.logdet_cost(variant(smoke_run, tables=wrong), tmp_path / "w") == []


# --- everything ----------------------------------------------------------------------------------

def test_make_all_is_deterministic_and_leaves_matplotlib_alone(smoke_run: RunData,
                                                               tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = mpl.rcParams.copy()
    figs_before = plt.get_fignums()
    first = figures.make_all(smoke_run, tmp_path / "a", strict=True, points=80, n=500)
    second = figures.make_all(smoke_run, tmp_path / "b", strict=True, points=80, n=500)
    assert list(first) == list(figures.FIGURE_KINDS)
    assert first["logdet_cost"] == []  # the smoke run measured no costs
    assert len(first["nll_spread"]) == 1
    # training throughput always; log_prob throughput when the runner measured it
    measured = any("log_prob_examples_per_second" in r for r in smoke_run.records)
    assert [p.name for p in first["speed_vs_nll"]] == ["speed_vs_nll.png"] + (
        ["speed_vs_nll_log_prob.png"] if measured else [])
    for kind in ("learning_curves", "density_grid", "samples_vs_data", "flow_steps"):
        assert len(first[kind]) == 2  # one per dataset
    for kind, paths in first.items():
        assert [p.name for p in paths] == [p.name for p in second[kind]]
        for a, b in zip(paths, second[kind], strict=True):
            assert a.read_bytes() == b.read_bytes(), a.name
    # (not `mpl.rcParams == before`: reading rcParams["backend"] would itself resolve it)
    assert all(mpl.rcParams[k] == before[k] for k in before if k != "backend")
    assert plt.get_fignums() == figs_before
    for module in [figures, *(getattr(figures, name) for name in figures._MODULES)]:
        assert "plt" not in vars(module) and "pyplot" not in vars(module), module.__name__


def test_make_all_on_an_empty_run_and_a_broken_figure(smoke_run: RunData, tmp_path: Path,
                                                      monkeypatch) -> None:
    empty = RunData(tmp_path, {}, [], [], {})
    assert figures.make_all(empty, tmp_path, strict=True) == {
        kind: [] for kind in figures.FIGURE_KINDS}
    # a run whose config names datasets that never finished a cell
    listed = RunData(tmp_path, {"datasets": ["two_moons"]}, [], [], {})
    assert all(v == [] for v in figures.make_all(listed, tmp_path, strict=True).values())

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(figures.curves, "nll_spread_figure", broken)
    monkeypatch.setattr(figures.toy2d, "density_grid_figure", broken)
    monkeypatch.setattr(figures.toy2d, "samples_vs_data_figure", lambda *a, **k: None)
    monkeypatch.setattr(figures.toy2d, "flow_steps_figure", lambda *a, **k: None)
    with pytest.warns(UserWarning) as caught:
        written = figures.make_all(smoke_run, tmp_path / "out")
    messages = sorted({str(w.message) for w in caught})
    assert messages == [f"figure {kind} skipped: RuntimeError: boom"
                        for kind in ("density_grid", "nll_spread")]
    assert written["nll_spread"] == [] and written["density_grid"] == []
    assert written["speed_vs_nll"] and len(written["learning_curves"]) == 2
    with pytest.raises(RuntimeError, match="boom"):
        figures.make_all(smoke_run, tmp_path / "strict", strict=True)


# --- the table of figure kinds, the style, the files ---------------------------------------------

def test_the_figure_kind_table_is_light_and_complete() -> None:
    import subprocess
    import sys

    code = ("import sys; from flowbench.report.figures import FIGURE_KINDS; "
            "print(','.join(FIGURE_KINDS)); "
            "print(','.join(m for m in ('matplotlib', 'seaborn', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    names, heavy = done.stdout.splitlines()
    assert names.split(",") == list(figures.FIGURE_KINDS) and len(names.split(",")) == 11
    assert heavy == ""  # the table imports no plotting library, nor pandas
    for name, kind in figures.FIGURE_KINDS.items():
        assert kind.name == name and callable(kind.load()) and kind.caption and kind.files
        assert all(("{dataset}" in f) == kind.per_dataset for f in kind.files)
        assert kind.section in figures.kinds.SECTIONS
        assert len(kind.file_captions) in (0, len(kind.files))
    with pytest.raises(TypeError, match="does not support item assignment"):
        figures.FIGURE_KINDS["new"] = figures.FIGURE_KINDS["tuning"]  # read-only


def test_unknown_figure_kinds_are_named_with_the_valid_ones(smoke_run: RunData,
                                                             tmp_path: Path) -> None:
    with pytest.raises(ValueError) as raised:
        figures.make_all(smoke_run, tmp_path, kinds=["density_grid", "densty_grid", "bogus"])
    message = str(raised.value)
    assert "'densty_grid' (did you mean 'density_grid'?)" in message and "'bogus'" in message
    assert all(name in message.split("valid kinds:")[1] for name in figures.FIGURE_KINDS)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())  # nothing drawn first


def test_every_figure_is_drawn_and_saved_inside_the_style_once(smoke_run: RunData,
                                                               tmp_path: Path,
                                                               monkeypatch) -> None:
    """Figures are created and saved with exactly one plot style open, and each written file is
    one the kind table announces."""
    from matplotlib.figure import Figure

    style = figures.style
    seen = {"created": [], "saved": []}
    new_figure, savefig = style.new_figure, Figure.savefig

    def creating(*args, **kwargs):
        seen["created"].append((style.style_depth(), mpl.rcParams["axes.titlesize"]))
        return new_figure(*args, **kwargs)

    def saving(self, *args, **kwargs):
        seen["saved"].append((style.style_depth(), mpl.rcParams["axes.titlesize"]))
        return savefig(self, *args, **kwargs)

    for module in (figures.toy2d, figures.curves, figures.costs, figures.images,
                   figures.families, figures.ranks, style):
        monkeypatch.setattr(module, "new_figure", creating, raising=False)
    monkeypatch.setattr(Figure, "savefig", saving)
    run = variant(smoke_run, tables=cost_tables())
    written = figures.make_all(run, tmp_path, strict=True, points=40, n=200)
    paths = [p for ps in written.values() for p in ps]
    # facet figures get their Figure through style.grid -> style.new_figure (patched above)
    assert len(seen["saved"]) == len(paths) >= 12
    assert len(seen["created"]) >= len(paths)
    assert set(seen["created"]) == set(seen["saved"]) == {(1, 7.5)}
    datasets = ["two_moons", "eight_gaussians"]
    for name, paths in written.items():
        kind = figures.FIGURE_KINDS[name]
        allowed = {f for d in (datasets if kind.per_dataset else [None])
                   for f in kind.filenames(d)}
        assert {p.name for p in paths} <= allowed, name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_the_docs_list_every_figure_kind() -> None:
    text = (Path(__file__).parents[1] / "docs" / "report.md").read_text()
    assert figures.kinds.kinds_markdown() in text  # regenerate the doc's table when this fails
