"""Reports built from real runs: tables checked against the raw records, a self-contained HTML
page, comparisons between runs, and the `flowbench report` command."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flowbench
from flowbench import metadata
from flowbench.report.build import write_report
from flowbench.plan import plan_run
from flowbench.report.tables import format_nll_table, nll_summary
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
        raw = cost[(cost.flow == row["flow"]) & (cost.base == row["base"])
                   & (cost.dim == row["dim"])]
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


def test_unknown_figure_kinds_fail_before_anything_is_written(tiny: Path,
                                                              tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown figure kind 'nll_sprad' \(did you mean "
                                         r"'nll_spread'\?\); valid kinds: nll_spread, "):
        write_report([tiny], out=tmp_path / "out", figure_kinds=["nll_sprad"])
    assert not (tmp_path / "out").exists()


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


# --- one test point must not wreck a table -----------------------------------------------------

def tail_fields(nll: np.ndarray, threshold: float = 0.5) -> dict:
    """The runner's robust companions of a mean test NLL, from per-point NLLs (as specified for
    the runner: k = max(1, ceil(0.001 n)) largest points; the flag threshold is the runner's)."""
    n = len(nll)
    k = max(1, math.ceil(0.001 * n))
    ordered = np.sort(nll)[::-1]
    median = float(np.median(nll))
    share = float((ordered[:k] - median).sum() / np.abs(nll - median).sum())
    trimmed = float(ordered[k:].mean())
    return {"test_nll": float(nll.mean()), "test_nll_median": median,
            "test_nll_top": [float(v) for v in ordered[:5]], "test_tail_points": k,
            "test_nll_trimmed": trimmed, "test_tail_shift": float(nll.mean()) - trimmed,
            "test_tail_share": share, "test_tail_flag": share > threshold, "n_test": n}


def cell(dataset: str, flow: str, seed: int, nll: np.ndarray, oracle: float = 2.3) -> dict:
    fields = tail_fields(nll)
    return {"cell_id": f"{dataset}-{flow}-normal-s{seed}", "dataset": dataset, "flow": flow,
            "base": "normal", "seed": seed, "status": "ok", "entropy": oracle - 0.01,
            "oracle_test_nll": oracle, "gap": fields["test_nll"] - oracle, **fields}


def synthetic_records() -> list[dict]:
    """pinwheel: glow seed 2 has one test point at NLL 1.22e11 among 10 000 (mean 1.22e7);
    moons: realnvp seed 0 is flagged although its mean is the lowest there."""
    rng = np.random.default_rng(0)
    records = []
    for seed in range(3):
        for flow, centre in (("realnvp", 2.40), ("glow", 2.43)):
            nll = centre + 0.5 * rng.standard_normal(10_000)
            if (flow, seed) == ("glow", 2):
                nll[17] = 1.22e11
            records.append(cell("pinwheel", flow, seed, nll))
        for flow, centre in (("realnvp", 0.30), ("glow", 0.35)):
            nll = centre + 0.05 * rng.standard_normal(2_000)
            if (flow, seed) == ("realnvp", 0):
                nll[:2] += 150.0  # two points carry most of the deviation: 0.15 nats of mean
            records.append(cell("moons", flow, seed, nll, oracle=0.29))
    return records


def test_a_flagged_cell_is_marked_explained_and_never_best() -> None:
    records = synthetic_records()
    summary = nll_summary(records).set_index(["dataset", "flow"])
    glow = summary.loc[("pinwheel", "glow")]
    assert glow["tail_flagged"] == 1 and not glow["best"]
    assert glow["test_nll_mean"] == pytest.approx(statistics.mean(
        r["test_nll"] for r in records if (r["dataset"], r["flow"]) == ("pinwheel", "glow")))
    assert glow["test_nll_median"] == pytest.approx(2.43, abs=0.02)
    assert glow["test_nll_trimmed"] == pytest.approx(2.43, abs=0.02)
    assert bool(summary.loc[("pinwheel", "realnvp"), "best"])
    # the flagged realnvp has the lowest mean on moons, yet glow is the best there
    moons = summary.loc["moons"]
    assert moons.loc["realnvp", "test_nll_mean"] < moons.loc["glow", "test_nll_mean"]
    assert moons.loc["realnvp", "tail_flagged"] == 1
    assert not moons.loc["realnvp", "best"] and moons.loc["glow", "best"]

    text = format_nll_table(nll_summary(records))
    glow_line = next(line for line in text.splitlines() if " glow " in line and "e+06" in line)
    assert "†" in glow_line and not glow_line.rstrip().endswith("*")
    assert re.search(r"\b4\.07e\+06 ± 7\.0e\+06 †", glow_line)  # compact, not 20 digits
    best_lines = [line for line in text.splitlines() if line.rstrip().endswith("*")]
    assert len(best_lines) == 2 and all("†" not in line for line in best_lines)
    sentence = next(line for line in text.splitlines()
                    if line.startswith("† pinwheel glow/normal seed 2"))
    # k = max(1, ceil(0.001 n)) = 10 points of 10 000
    assert ("10 of 10\u202f000 test points carry 100.0 % of the deviation from the median"
            in sentence)
    assert "(largest per-point NLLs 1.22e+11, 4." in sentence
    assert re.search(r"; mean 1\.22e\+07, median 2\.4\d, trimmed mean 2\.4\d nats\.$", sentence)
    assert sum(line.startswith("† ") for line in text.splitlines()) == 2  # one per flagged cell


def test_old_records_without_tail_fields_are_not_flagged(tiny: Path, tiny_report,
                                                        tmp_path: Path) -> None:
    tail = ("n_test", "test_nll_median", "test_nll_trimmed", "test_nll_top", "test_tail_points",
            "test_tail_shift", "test_tail_share", "test_tail_flag")
    records = [{k: v for k, v in r.items() if k not in tail}  # as written before the fields
               for r in _records(tiny)]
    assert not any("test_tail_flag" in r for r in records)
    summary = nll_summary(records)
    assert (summary["tail_flagged"] == 0).all() and summary["test_nll_median"].isna().all()
    assert "†" not in format_nll_table(summary)
    assert "†" not in tiny_report.markdown.read_text()
    old = tmp_path / "old"
    shutil.copytree(tiny, old)
    (old / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    report = write_report([old], figures=False)
    assert "†" not in report.markdown.read_text()
    models = pd.read_csv(old / "tables" / "models.csv")
    assert models.dropna(subset=["rank"])["model"].str.contains("/").any()


def flag_a_cell(tiny: Path, folder: Path) -> dict:
    """A copy of the tiny run whose glow/normal seed 1 has one test point at NLL 1e9."""
    shutil.copytree(tiny, folder)
    lines = (folder / "cells.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    record = next(r for r in records if (r["flow"], r["seed"]) == ("glow", 1))
    nll = record["test_nll"] + 0.3 * np.random.default_rng(1).standard_normal(500)
    nll[3] = 1e9
    record.update(tail_fields(nll))
    record["gap"] = record["test_nll"] - record["oracle_test_nll"]
    (folder / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return record


def test_the_report_marks_a_flagged_cell_everywhere(tiny: Path, tmp_path: Path) -> None:
    record = flag_a_cell(tiny, tmp_path / "flagged")
    result = write_report([tmp_path / "flagged"], out=tmp_path / "report", figures=False)
    text = result.markdown.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| dataset | unit |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    nll_row = next(line for line in text.splitlines() if line.startswith("| tiny_moons | nats"))
    glow = [c.strip() for c in nll_row.strip("|").split("|")][columns.index("glow/normal")]
    assert glow.endswith("†") and "e+06 ± " in glow and "**" not in glow
    rank_rows = [line for line in text.splitlines() if line.startswith("| tiny_moons |")
                 and "nats" not in line]
    gap_row, rank_row = rank_rows[:2]  # the gap table, then the rank table (then settings)
    rank_header = next(line for line in text.splitlines()
                       if line.startswith("| dataset | nice/normal"))
    rank_columns = [c.strip() for c in rank_header.strip("|").split("|")]
    rank_cells = [c.strip() for c in rank_row.strip("|").split("|")]
    gap_cells = [c.strip() for c in gap_row.strip("|").split("|")]
    assert rank_cells[rank_columns.index("glow/normal")] == "†"
    assert gap_cells[rank_columns.index("glow/normal")].endswith("†")
    mean_rank = next(line for line in text.splitlines() if line.startswith("| mean rank |  |"))
    assert [c.strip() for c in mean_rank.strip("|").split("|")][
        columns.index("glow/normal")] == "- (0 of 1)"
    assert "not ranked on that dataset" in text
    sentence = (f"tiny_moons glow/normal seed 1: 1 of 500 test points carries "
                f"{100 * record['test_tail_share']:.1f} % of the deviation from the median")
    assert sentence in text
    page = result.html.read_text()
    assert sentence in page and "†" in page
    ranks = pd.read_csv(tmp_path / "report" / "tables" / "ranks.csv").set_index("dataset")
    assert "glow/normal" not in ranks.columns  # never ranked, so no number for it
    summary = pd.read_csv(tmp_path / "report" / "tables" / "nll_summary.csv")
    glow_row = summary.set_index("flow").loc["glow"]
    assert glow_row["tail_flagged"] == 1 and np.isfinite(glow_row["test_nll_median"])
    # and the comparison with the unflagged run marks the flagged side and says why
    compared = write_report([tiny, tmp_path / "flagged"], out=tmp_path / "cmp")
    text = compared.markdown.read_text()
    line = next(row for row in text.splitlines() if row.startswith("| tiny_moons | glow | normal"))
    assert line.count("†") == 1 and "e+06 †" in line
    assert f"flagged: † {sentence}" in text and "1 carry the mark †" in text


def test_speed_table_reads_as_grouped_numbers(tiny: Path, tiny_report) -> None:
    text = tiny_report.markdown.read_text()
    speed = pd.read_csv(tiny / "tables" / "speed.csv").set_index("flow/base")
    assert speed["train ex/s"].dtype.kind == "f"  # the CSV stays numeric
    value = speed.loc["glow/normal", "train ex/s"]
    grouped = f"{round(value):,}".replace(",", "\u202f")
    line = next(row for row in text.splitlines() if row.startswith("| glow/normal |"))
    assert f"| {grouped} |" in line and "e+0" not in line
    assert grouped in tiny_report.html.read_text()


# --- report files appear whole or not at all -----------------------------------------------------

_WATCH: list[Path] = []
_OPENED: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event != "open" or not _WATCH or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path, mode, flags = args
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
    path = Path(os.fsdecode(path)).absolute()
    if writing and _WATCH[0] in path.parents:
        _OPENED.append(str(path))


def test_every_report_file_is_written_under_a_temporary_name(tiny: Path, tmp_path: Path) -> None:
    """Nothing under the report folder is ever opened for writing under its final name: PNGs,
    CSVs, report.md and report.html are written to hidden temporary files and renamed."""
    out = (tmp_path / "report").absolute()
    sys.addaudithook(_audit)  # cannot be removed; inert while _WATCH is empty
    _WATCH.append(out)
    try:
        result = write_report([tiny], out=out, figure_kinds=["nll_spread", "density_grid"])
    finally:
        _WATCH.clear()
    written = [result.markdown, result.html, *result.figures, *result.tables]
    assert len(result.figures) == 2 and len(result.tables) > 5
    assert _OPENED, "the audit hook saw no write at all"
    assert all(Path(p).name.startswith(".") for p in _OPENED), sorted(
        p for p in _OPENED if not Path(p).name.startswith("."))
    assert len(_OPENED) >= len(written)
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
