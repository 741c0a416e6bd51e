"""The tabular plugin end to end: its suites, its dataset families on demand, and its runs
through the real command line (real training on the oracle densities)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

from flowbench.data import oracles


def flowbench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_the_tabular_suite_is_what_the_issue_asks_for(registry) -> None:
    suite = registry.get("suite", "tabular").spec
    assert set(suite.datasets) == {f"{family}-{dim}" for family in oracles.FAMILIES
                                   for dim in (8, 32)}
    assert set(suite.flows) == {"nice", "realnvp", "glow", "maf"}
    assert set(suite.bases) == {"normal", "gmm"} and tuple(suite.seeds) == (0, 1, 2)
    assert suite.measure.get("references", True), "the tabular suite runs its references"
    for name in suite.datasets:
        dataset = registry.get("dataset", name)
        assert dataset.plugin == "tabular" and dataset.spec.has_oracle


def test_uci_suite_names_the_five_standard_datasets_and_their_published_rows(registry) -> None:
    suite = registry.get("suite", "uci").spec
    assert suite.datasets == ("power", "gas", "hepmass", "miniboone", "bsds300")
    assert set(suite.flows) == {"realnvp", "glow", "maf"}
    for name in suite.datasets:
        published = registry.get("dataset", name).spec.published
        methods = {row.method for row in published}
        assert {"MAF (5)", "Real NVP (5)", "Glow", "FFJORD"} <= methods, (name, methods)
        assert all(math.isfinite(row.nll) and row.source for row in published)


def test_tabular_smoke_trains_every_flow_and_base_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = flowbench("run", "--suite", "tabular-smoke", "--out", str(out), "-j", "2")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 * 4 * 2 and set(table["status"]) == {"ok"}
    assert set(table["flow"]) == {"nice", "realnvp", "glow", "maf"}
    assert set(table["dataset"]) == {"funnel-4", "banana-4"}
    # every cell is scored against the exact oracle: a finite gap, and the true entropy shown
    assert table["test_nll"].map(math.isfinite).all()
    for name in ("funnel-4", "banana-4"):
        entropy = oracles.load_oracle(name.split("-")[0], 4, 0).entropy
        assert f"{entropy:.4f}" in result.stdout
    # the speed table carries MAF's trade-off: density in one pass, sampling in D passes
    records = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert all(r["sample_examples_per_second"] > 0 for r in records)


def test_any_dimension_of_a_family_runs_by_name_and_a_bad_one_names_the_range(
        tmp_path: Path) -> None:
    args = ["run", "--suite", "tabular-smoke", "--flows", "maf", "--bases", "normal",
            "--no-measure", "--no-report", "--steps", "5", "-j", "1"]
    made = flowbench(*args, "--datasets", "funnel-6", "--out", str(tmp_path / "run"))
    assert made.returncode == 0, made.stderr
    (record,) = [json.loads(line) for line in
                 (tmp_path / "run" / "cells.jsonl").read_text().splitlines()]
    assert record["dataset"] == "funnel-6" and record["status"] == "ok"
    assert math.isclose(record["entropy"], oracles.load_oracle("funnel", 6, 0).entropy)

    bad = flowbench(*args, "--datasets", "funnel-1", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "funnel-1" in bad.stderr and "2 <= D" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_uci_suite_without_files_stops_before_training_naming_the_paths(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    result = flowbench("run", "--suite", "uci", "--data-dir", str(empty),
                       "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(empty) in result.stderr and "data.npy" in result.stderr
    assert not (tmp_path / "run").exists()


def test_uci_run_reports_the_papers_numbers_as_published_rows(tmp_path: Path) -> None:
    """A real uci-suite run (on a small MINIBOONE-format file): the papers' numbers appear as
    labelled published rows, negated into NLL nats, apart from the measured table."""
    import numpy as np

    (tmp_path / "data" / "miniboone").mkdir(parents=True)
    np.save(tmp_path / "data" / "miniboone" / "data.npy",
            np.random.default_rng(0).normal(size=(1200, 43)))
    out = tmp_path / "run"
    result = flowbench("run", "--suite", "uci", "--datasets", "miniboone", "--flows", "maf",
                       "--seeds", "0", "--steps", "5", "--no-measure", "--data-dir",
                       str(tmp_path / "data"), "--out", str(out), "-j", "1")
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    published = report[report.index("### Published results"):]
    # MAF paper Table 1: MAF (5) test log-likelihood -11.75 on MINIBOONE -> NLL 11.75 nats
    assert ("| miniboone | published: MAF (5) | 11.7500 | nats | Papamakarios et al. 2017"
            in published)
    assert "published: FFJORD | 10.4300" in published and "published: Glow | 10.5500" in published
    measured = report[:report.index("### Published results")]
    assert "published:" not in measured
