"""Reports built from real runs: tables checked against the raw records, a self-contained HTML
page, comparisons between runs, and the `flowbench report` command."""

from __future__ import annotations

import base64
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import flowbench
from flowbench import metadata
from flowbench.report.build import write_report
from flowbench.plan import plan_run
from flowbench.runner import execute, measure_costs
from flowbench.store import RunStore

PLUGINS = Path(__file__).parent / "plugins"
TINY, FAULTY = str(PLUGINS / "tiny.py"), str(PLUGINS / "faulty.py")


def _run(folder: Path, suite: str, steps: int | None = None) -> Path:
    registry = flowbench.load_registry([TINY, FAULTY], strict=True)
    plan = plan_run(registry, suite, steps=steps)
    store = RunStore(folder)
    store.write_config({**plan.config(), "config_hash": plan.config_hash()})
    store.add_session_metadata(metadata.collect())
    execute(plan, store)
    measure_costs(plan, store, registry)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("runs") / "tiny", "tiny")


@pytest.fixture(scope="module")
def tiny_report(tiny: Path):
    return write_report([tiny])


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "cells.jsonl").read_text().splitlines()]


def test_nll_tables_match_the_raw_records(tiny: Path, tiny_report) -> None:
    models = pd.read_csv(tiny / "tables" / "models.csv").set_index("model")
    records = _records(tiny)
    for flow in ("nice", "glow"):
        values = [r["test_nll"] for r in records if r["flow"] == flow and r["status"] == "ok"]
        row = models.loc[f"{flow}/normal"]
        assert row["ok"] == len(values) == 2
        assert row["test_nll_mean"] == pytest.approx(statistics.mean(values), abs=1e-12)
        assert row["test_nll_std"] == pytest.approx(statistics.stdev(values), abs=1e-12)
    oracle = records[0]["oracle_test_nll"]
    assert models.loc["oracle", "test_nll_mean"] == pytest.approx(oracle)
    references = pd.read_csv(tiny / "references.csv").set_index("method")
    assert set(references.index) == {"gaussian", "gmm", "kde"}
    for method, row in references.iterrows():
        assert models.loc[f"ref:{method}", "test_nll_mean"] == pytest.approx(row["test_nll"])
        assert models.loc[f"ref:{method}", "gap_mean"] == pytest.approx(row["test_nll"] - oracle)
        assert row["test_nll"] >= oracle - 0.05  # nothing beats the truth by more than noise
    ranked = models.dropna(subset=["rank"])
    best = ranked["test_nll_mean"].idxmin()
    assert ranked.loc[best, "rank"] == 1
    # the best is bold in the markdown table, and only it
    text = tiny_report.markdown.read_text()
    table_line = next(line for line in text.splitlines() if line.startswith("| tiny_moons | nats"))
    assert table_line.count("**") == 2
    cells = [c.strip() for c in table_line.strip("|").split("|")]
    header = next(line for line in text.splitlines() if line.startswith("| dataset | unit |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert cells[columns.index(best)].startswith("**")
    assert "mean rank" in text


def test_html_is_self_contained_with_every_figure(tiny: Path, tiny_report) -> None:
    page = tiny_report.html.read_text()
    figures = sorted((tiny / "figures").glob("*.png"))
    kinds = {p.stem.split("_tiny_moons")[0] for p in figures}
    assert {"density", "samples", "learning_curves", "flow_steps", "nll_spread", "speed_vs_nll",
            "logdet_cost", "linear_cost"} <= kinds
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == page.count("<img") == len(tiny_report.figures)
    payloads = {base64.b64decode(data) for data in embedded}
    assert payloads == {p.read_bytes() for p in tiny_report.figures}
    assert set(tiny_report.figures) <= set(figures)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched when opened
    assert "<table>" in page and "tiny_moons" in page


def test_speed_and_cost_tables(tiny: Path, tiny_report) -> None:
    speed = pd.read_csv(tiny / "tables" / "speed.csv").set_index("flow/base")
    records = _records(tiny)
    glow = [r["log_prob_examples_per_second"] for r in records if r["flow"] == "glow"]
    assert speed.loc["glow/normal", "log_prob ex/s"] == pytest.approx(statistics.median(glow))
    glow_params = {r["n_params"] for r in records if r["flow"] == "glow"}
    assert speed.loc["glow/normal", "parameters"] == glow_params.pop()
    cost = pd.read_csv(tiny / "logdet_cost.csv")
    table = pd.read_csv(tiny / "tables" / "logdet.csv")
    for _, row in table.iterrows():
        raw = cost[(cost.flow == row["flow"]) & (cost.base == row["base"]) & (cost.dim == row["dim"])]
        per = raw.set_index("path")["per_example_seconds"]
        assert row["brute / analytic"] == pytest.approx(per["brute_force"] / per["analytic"])
        assert row["max |log-det error|"] < 1e-6
    assert set(table["dim"]) == {2, 4}
    exponents = pd.read_csv(tiny / "tables" / "logdet_exponents.csv")
    assert set(exponents["path"]) == {"analytic", "brute_force"}
    linear = pd.read_csv(tiny / "tables" / "linear.csv")
    assert set(linear["operation"]) == {"logdet", "forward", "inverse"}
    assert (linear["plain / lu"] > 0).all()


def test_comparing_a_run_with_itself_shows_zero_deltas(tiny: Path, tmp_path: Path) -> None:
    result = write_report([tiny, tiny], out=tmp_path / "cmp")
    table = pd.read_csv(next((tmp_path / "cmp" / "tables").glob("compare_*.csv")))
    assert len(table) == 2
    assert (table["delta"] == 0).all()
    assert set(table["beyond_spread"]) == {"no"}
    text = result.markdown.read_text()
    assert "Warnings" not in text and "0 differ by more than the seed spread" in text


def test_comparing_different_runs_flags_and_warns(tiny: Path, tmp_path: Path) -> None:
    longer = _run(tmp_path / "longer", "tiny", steps=300)
    result = write_report([tiny, longer], out=tmp_path / "cmp")
    table = pd.read_csv(next((tmp_path / "cmp" / "tables").glob("compare_*.csv")))
    assert (table["delta"] < 0).all()  # 300 steps beat 40 steps
    assert "yes" in set(table["beyond_spread"])
    text = result.markdown.read_text()
    assert "Warnings" in text and "training settings differ" in text


def test_unfinished_cells_are_shown_not_hidden(tmp_path: Path) -> None:
    folder = _run(tmp_path / "faulty", "faulty")
    result = write_report([folder], figures=False)
    text = result.markdown.read_text()
    assert "1 failed" in text and "1 diverged" in text
    assert "Cells that did not finish ok" in text
    assert "this flow cannot be built" in text and "non-finite training loss" in text


def test_report_command(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    done = subprocess.run([sys.executable, "-m", "flowbench.cli", "report", str(tiny), "--out",
                           str(out), "--no-figures"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"report: {out / 'report.html'}" in done.stdout
    assert (out / "report.md").is_file() and (out / "tables" / "models.csv").is_file()
    bad = subprocess.run([sys.executable, "-m", "flowbench.cli", "report", str(tmp_path / "no")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "is not a flowbench run folder" in bad.stderr
