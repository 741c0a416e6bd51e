"""A real run over a dataset family (``gauss-2``, ``gauss-4`` of tests/plugins/gauss_family.py):
published rows stored by the runner and shown apart from measured ones, the gap-vs-dimension
figure, and the ranks-across-datasets section, each checked against the run's own records."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import flowbench
from flowbench import metadata
from flowbench.plan import plan_run
from flowbench.report import figures
from flowbench.report.build import write_report
from flowbench.report.figures import families
from flowbench.report.rundata import RunData
from flowbench.runner import execute
from flowbench.store import PUBLISHED, RunStore

GAUSS = str(Path(__file__).parent / "plugins" / "gauss_family.py")


def _plugin():
    spec = importlib.util.spec_from_file_location("gauss_family_for_tests", GAUSS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gauss(tmp_path_factory) -> Path:
    """The gauss_dims suite: nice and realnvp on gauss-2 and gauss-4, two seeds, references."""
    registry = flowbench.load_registry([GAUSS], strict=True)
    plan = plan_run(registry, "gauss_dims")
    folder = tmp_path_factory.mktemp("runs") / "gauss"
    store = RunStore(folder)
    store.write_config({**plan.config(), "config_hash": plan.config_hash()})
    store.add_session_metadata(metadata.collect())
    records = execute(plan, store)
    assert [r["status"] for r in records] == ["ok"] * 8
    return folder


@pytest.fixture(scope="module")
def report(gauss: Path):
    return write_report([gauss])


def _table(text: str, first: str) -> list[list[str]]:
    """The markdown table whose header starts with ``first``: header and rows, as cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


# --- published rows ------------------------------------------------------------------------------

def test_the_runner_stores_the_datasets_published_rows(gauss: Path) -> None:
    plugin = _plugin()
    stored = json.loads((gauss / PUBLISHED).read_text())["published"]
    assert stored == [{"dataset": "gauss-2", "method": "closed-form entropy",
                       "nll": pytest.approx(plugin.entropy(2)), "unit": "nats",
                       "source": plugin.ENTROPY_SOURCE}]  # gauss-4 publishes nothing
    assert RunData.load(gauss).published == stored
    # resuming with the same numbers leaves the file alone (and the report current)
    before = (gauss / PUBLISHED).stat().st_mtime_ns
    registry = flowbench.load_registry([GAUSS], strict=True)
    execute(plan_run(registry, "gauss_dims"), RunStore(gauss))
    assert (gauss / PUBLISHED).stat().st_mtime_ns == before


def test_published_rows_are_shown_apart_and_never_ranked(gauss: Path, report) -> None:
    text = report.markdown.read_text()
    entropy = _plugin().entropy(2)
    published = _table(text, "| dataset | row | NLL |")
    assert published == [["dataset", "row", "NLL", "unit", "source"],
                         ["gauss-2", "published: closed-form entropy", f"{entropy:.4f}", "nats",
                          _plugin().ENTROPY_SOURCE]]
    after = text.split("| gauss-2 | published: closed-form entropy |")[1]
    assert after.split("\n\n")[1] == ("NLL = −test log-likelihood, nats per example; lower is "
                                      "better.")
    # the measured table: no published column, and its bold best is a measured row although
    # the true density's entropy is below every flow's NLL there
    nll = _table(text, "| dataset | unit |")
    assert not any("published" in c or "entropy" in c for c in nll[0])
    row = dict(zip(nll[0], nll[1], strict=True))
    flows = [float(row[m].split(" ± ")[0]) for m in ("nice/normal", "realnvp/normal")]
    assert entropy < min(flows)
    assert sum(v.startswith("**") for v in row.values()) == 1
    for name in ("models", "ranks", "friedman_ranks", "win_tie_loss", "nll_table"):
        csv = (gauss / "tables" / f"{name}.csv").read_text()
        assert "published" not in csv and "closed-form" not in csv, name
    published_csv = pd.read_csv(gauss / "tables" / "published.csv")
    assert published_csv["nll"].tolist() == pytest.approx([entropy])
    page = report.html.read_text()
    assert "published: closed-form entropy" in page and "lower is better" in page


# --- the gap to the oracle against the dimension -------------------------------------------------

def test_family_membership_is_read_from_the_name_and_checked_against_the_shape(
        gauss: Path) -> None:
    assert families.member("funnel-8") == ("funnel", 8)
    assert families.member("my-funnel-32") == ("my-funnel", 32)
    assert families.member("funnel-08") is None and families.member("two_moons") is None
    assert families.member("funnel-0") is None and families.member("-4") is None
    run = RunData.load(gauss)
    assert families.dimension_families(run) == {"gauss": [(2, "gauss-2"), (4, "gauss-4")]}
    only_two = RunData(run.path, run.config, run.metadata,
                       [r for r in run.records if r["dataset"] == "gauss-2"], run.tables)
    only_two.config = {**run.config, "datasets": ["gauss-2"]}
    assert families.dimension_families(only_two) == {}
    assert families.gap_vs_dim_figure(only_two) is None  # one dimension: no panel


def test_gap_vs_dim_draws_the_records_gap_per_dimension(gauss: Path, report) -> None:
    run = RunData.load(gauss)
    with figures.plot_style():
        fig = families.gap_vs_dim_figure(run)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 1 and panels[0].get_title() == "gauss-<D>"
    ax = panels[0]
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == [2, 4]
    lines = {tuple(np.round(line.get_ydata(), 12)): line for line in ax.get_lines()
             if len(line.get_xdata()) == 2}
    records = [r for r in run.records if r["status"] == "ok"]
    for flow in ("nice", "realnvp"):
        expected = tuple(np.round([np.mean([r["gap"] / d for r in records
                                            if r["flow"] == flow and r["dataset"] == f"gauss-{d}"])
                                   for d in (2, 4)], 12))
        assert expected in lines, flow
        assert list(lines[expected].get_xdata()) == [2, 4]
    oracle = {r["dataset"]: r["oracle_test_nll"] for r in records}
    references = pd.read_csv(gauss / "references.csv")
    for method, group in references.groupby("method"):
        gaps = group.set_index("dataset")["test_nll"]
        expected = tuple(np.round([(gaps[f"gauss-{d}"] - oracle[f"gauss-{d}"]) / d
                                   for d in (2, 4)], 12))
        assert expected in lines, method
        assert lines[expected].get_linestyle() != "-"  # references dashed
    # flows are near a 0.16 nats/dim gap at D = 4, the Gaussian fits within noise of the truth
    assert report.markdown.read_text().count("figures/gap_vs_dim.png") == 1
    assert (gauss / "figures" / "gap_vs_dim.png").is_file()


# --- ranks across datasets -----------------------------------------------------------------------

def test_ranks_across_datasets_follow_from_the_models_table(gauss: Path, report) -> None:
    models = pd.read_csv(gauss / "tables" / "models.csv")
    competing = models[models["kind"] != "oracle"]
    values = competing.pivot(index="dataset", columns="model", values="test_nll_mean")
    expected = values.rank(axis=1, method="average").mean()
    friedman_ranks = pd.read_csv(gauss / "tables" / "friedman_ranks.csv", index_col=0)
    assert friedman_ranks.loc["mean rank"].to_dict() == pytest.approx(expected.to_dict())
    assert set(friedman_ranks.columns) == {"nice/normal", "realnvp/normal", "ref:gaussian",
                                           "ref:gmm", "ref:kde"}
    summary = pd.read_csv(gauss / "tables" / "friedman.csv").iloc[0]
    k, n = 5, 2
    chi2 = 12 * n / (k * (k + 1)) * ((expected ** 2).sum() - k * (k + 1) ** 2 / 4)
    assert (summary["methods"], summary["datasets"]) == (k, n)
    assert summary["chi2_F"] == pytest.approx(chi2)
    q = stats.studentized_range.ppf(0.95, k, np.inf) / math.sqrt(2)
    assert summary["critical_difference"] == pytest.approx(q * math.sqrt(k * (k + 1) / (6 * n)))
    text = report.markdown.read_text()
    section = text.split("## Ranks across datasets")[1].split("\n## ")[0]
    assert "the 2 flow/base combinations and the 3 reference baselines" in section
    assert "published numbers are never ranked" in section
    assert f"Friedman χ²_F = {chi2:.2f} (4 degrees of freedom)" in section
    assert "figures/critical_difference.png" in section
    assert "rule of thumb asks for N > 10 and k > 5" in section  # 2 datasets: say so
    # win/tie/loss of the two flows from their means and seed spreads
    nll = pd.read_csv(gauss / "tables" / "nll_summary.csv").set_index(["dataset", "flow"])
    wins = ties = losses = 0
    for dataset in ("gauss-2", "gauss-4"):
        a, b = nll.loc[(dataset, "nice")], nll.loc[(dataset, "realnvp")]
        delta = a["test_nll_mean"] - b["test_nll_mean"]
        if abs(delta) <= max(a["test_nll_std"], b["test_nll_std"]):
            ties += 1
        elif delta < 0:
            wins += 1
        else:
            losses += 1
    wtl = pd.read_csv(gauss / "tables" / "win_tie_loss.csv").set_index(["method", "versus"])
    assert wtl.loc[("nice/normal", "realnvp/normal"), ["wins", "ties", "losses"]].tolist() == \
        [wins, ties, losses]
    table = _table(section, "| method (vs column) |")
    nice = dict(zip(table[0], next(r for r in table if r[0] == "nice/normal"), strict=True))
    assert nice["realnvp/normal"] == f"{wins}/{ties}/{losses}" and nice["nice/normal"] == "·"


def test_the_critical_difference_diagram(gauss: Path) -> None:
    run = RunData.load(gauss)
    ranking = figures.ranks.run_ranking(run)
    with figures.plot_style():
        fig = figures.critical_difference_figure(run)
    texts = [t.get_text() for t in fig.axes[0].texts]
    for method, rank in ranking.friedman.mean_ranks.items():
        assert f"{method} ({rank:.2f})" in texts or f"({rank:.2f}) {method}" in texts
    assert f"CD = {ranking.cd:.2f}" in texts
    assert [str(t) for t in range(1, 6)] == [t for t in texts if t.isdigit()]
    # one thick bar per group, spanning its members' mean ranks
    bars = [line for line in fig.axes[0].get_lines() if line.get_linewidth() > 2]
    assert len(bars) == len(ranking.groups) >= 1
    for bar, group in zip(bars, ranking.groups, strict=True):
        members = ranking.friedman.mean_ranks[list(group)]
        assert bar.get_xdata()[0] < members.min() and bar.get_xdata()[1] > members.max()
