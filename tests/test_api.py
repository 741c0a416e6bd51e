"""The Python API for whole jobs: ``run_suite`` is ``flowbench run``, ``tune_suite`` is
``flowbench tune``, ``write_report`` is ``flowbench report``; and suites from TOML files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import flowbench
from flowbench.suitefile import SuiteFileError, read_suite_file

ARGS = dict(datasets=["two_moons"], flows=["nice", "glow"], bases=["normal"], seeds=[0, 1],
            steps=20)


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_run_suite_reproduces_flowbench_run(tmp_path: Path) -> None:
    command = cli("run", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice,glow",
                  "--bases", "normal", "--seeds", "0,1", "--steps", "20", "-j", "1",
                  "--no-report", "--out", str(tmp_path / "cli"))
    assert command.returncode == 0, command.stderr
    messages = []
    run = flowbench.run_suite("smoke", **ARGS, jobs=1, report=False,
                              out=tmp_path / "api", say=messages.append)
    assert not run.interrupted and not run.resumed and run.not_ok == []
    assert messages[0].startswith(f"new run {tmp_path / 'api'}: 4 cells")
    from_cli = {r["cell_id"]: r for r in map(json.loads,
                                            (tmp_path / "cli" / "cells.jsonl").read_text()
                                            .splitlines())}
    assert set(from_cli) == {r["cell_id"] for r in run.records}
    for record in run.records:  # same cells, same numbers, bit for bit
        assert record["test_nll"] == from_cli[record["cell_id"]]["test_nll"]
        assert record["history"] == from_cli[record["cell_id"]]["history"]
    table = run.results
    assert isinstance(table, pd.DataFrame) and len(table) == 4
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "api" / "results.csv")[["cell_id", "test_nll"]],
        pd.read_csv(tmp_path / "cli" / "results.csv")[["cell_id", "test_nll"]])
    again = flowbench.run_suite("smoke", **ARGS, jobs=1, report=False, out=tmp_path / "api")
    assert again.resumed and [r["test_nll"] for r in again.records] == \
        [r["test_nll"] for r in run.records]

    report = flowbench.write_report([tmp_path / "api", tmp_path / "cli"])
    assert report.html == tmp_path / "api" / "comparison" / "report.html"
    assert report.html.is_file()


def test_tune_suite_and_a_tuned_run(tmp_path: Path) -> None:
    tuning = flowbench.tune_suite("smoke", datasets=["two_moons"], flows=["nice"],
                                  bases=["normal"], trials=2, steps=10, jobs=1,
                                  results_dir=tmp_path)
    assert not tuning.interrupted and len(tuning.studies) == 1
    (study,) = tuning.studies
    assert study["study"] == "smoke/two_moons/nice/normal"
    assert study["complete"] + study["pruned"] + study["failed"] == 2
    assert tuning.summary_csv == tmp_path / "smoke-tuning" / "studies.csv"
    run = flowbench.run_suite("smoke", datasets=["two_moons"], flows=["nice"],
                              bases=["normal"], seeds=[0], steps=10, jobs=1, tuned=True,
                              results_dir=tmp_path, report=False, measure=False)
    (record,) = run.records
    assert record["train"]["lr"] == pytest.approx(study["train"]["lr"])


SUITE = """\
name = "moons-study"
description = "NICE against Glow on two moons"
datasets = ["two_moons"]
flows = ["nice", "glow"]
bases = ["normal"]
seeds = [3]

[train]
steps = 15
batch_size = 64

[flow_hparams.nice]
layers = 2
width = 8

[measure]
references = false
logdet_dims = []
linear_channels = []
"""


def test_a_suite_from_a_toml_file_runs_and_tunes(tmp_path: Path) -> None:
    path = tmp_path / "my-suite.toml"
    path.write_text(SUITE)
    spec = read_suite_file(path)
    assert spec.name == "moons-study" and spec.seeds == (3,)
    out = tmp_path / "run"
    result = cli("run", "--suite", str(path), "--out", str(out), "-j", "1", "--no-report")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {r["suite"] for r in records} == {"moons-study"}
    assert {r["seed"] for r in records} == {3}
    assert all(r["train"]["steps"] == 15 and r["train"]["batch_size"] == 64 for r in records)
    nice = next(r for r in records if r["flow"] == "nice")
    assert nice["flow_hparams"] == {"layers": 2, "width": 8}
    assert json.loads((out / "config.json").read_text())["suite"] == "moons-study"
    again = cli("run", "--suite", str(path), "--out", str(out), "-j", "1", "--no-report")
    assert again.returncode == 0 and "(2 already finished)" in again.stderr
    # two worker processes: each loads the suite file to find the study's suite
    tuned = cli("tune", "--suite", str(path), "--flows", "nice", "--trials", "2", "-j", "2",
                "--results-dir", str(tmp_path))
    assert tuned.returncode == 0, tuned.stderr
    assert "moons-study/two_moons/nice/normal" in tuned.stdout


@pytest.mark.parametrize("change,expected", [
    ('seeds = [3]', "my-suite.toml: seeds: must be a non-empty list of integers, got 'a'"),
    ('bases = ["normal"]', "my-suite.toml: bases: unknown base 'norml'; valid choices: "),
    ('[train]', "my-suite.toml: train.stepz: unknown setting; valid: "),
    ('[flow_hparams.nice]', "my-suite.toml: flow_hparams.nice.depht: flow 'nice' has no such "
                            "hyperparameter; valid: "),
    ('name = "moons-study"', "my-suite.toml: nmae: unknown key; valid keys: name, "),
])
def test_a_bad_suite_file_is_exit_2_naming_file_and_key(tmp_path: Path, change: str,
                                                        expected: str) -> None:
    broken = {
        'seeds = [3]': 'seeds = "a"',
        'bases = ["normal"]': 'bases = ["norml"]',
        '[train]': '[train]\nstepz = 3',
        '[flow_hparams.nice]': '[flow_hparams.nice]\ndepht = 2',
        'name = "moons-study"': 'nmae = "moons-study"',
    }[change]
    path = tmp_path / "my-suite.toml"
    path.write_text(SUITE.replace(change, broken, 1))
    result = cli("run", "--suite", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_suite_file_that_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("datasets = [\n")
    with pytest.raises(SuiteFileError, match=r"x.toml: not valid TOML"):
        read_suite_file(path)
    with pytest.raises(SuiteFileError, match=r"nowhere.toml: no such suite file"):
        read_suite_file(tmp_path / "nowhere.toml")
    result = cli("run", "--suite", str(tmp_path / "nowhere.toml"))
    assert result.returncode == 2 and "no such suite file" in result.stderr


def test_readme_python_examples_run(tmp_path: Path, monkeypatch) -> None:
    """README's Python API section, as doctests (in a scratch folder: it writes results/)."""
    import doctest

    monkeypatch.chdir(tmp_path)
    readme = Path(__file__).parents[1] / "README.md"
    result = doctest.testfile(str(readme), module_relative=False, verbose=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0, result


def test_python_api_names_are_documented() -> None:
    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text.split("## Python API")[1].split("\n## ")[0]
    for name in ("run_suite", "tune_suite", "write_report", "build_flow", "load_dataset",
                 "get_registry"):
        assert f"flowbench.{name}" in section, name
    assert set(flowbench.__all__) >= {"run_suite", "tune_suite", "write_report", "Run"}
    assert textwrap.dedent(flowbench.run_suite.__doc__ or "").strip()


def test_a_suite_file_holds_per_flow_recipes_notes_and_a_device(tmp_path: Path) -> None:
    """Every data field of SuiteSpec is read from a suite file, none silently ignored."""
    path = tmp_path / "recipes.toml"
    top = 'seeds = [3]\nnotes = "NICE on its own base and batch"\ndevice = "cpu"\n'
    path.write_text(SUITE.replace("seeds = [3]\n", top, 1) + textwrap.dedent('''
        [flow_train.nice]
        batch_size = 32

        [flow_bases]
        nice = ["normal"]

        [flow_preprocessing.nice]
        logit = false
    '''))
    spec = read_suite_file(path)
    assert spec.notes.startswith("NICE") and spec.device == "cpu"
    assert spec.flow_train == {"nice": {"batch_size": 32}}
    assert spec.flow_bases == {"nice": ("normal",)}
    assert spec.flow_preprocessing == {"nice": {"logit": False}}
    path.write_text(SUITE + '\n[flow_train.nice]\nbatch_sise = 32\n')
    with pytest.raises(SuiteFileError, match="flow_train.nice.batch_sise: unknown setting"):
        read_suite_file(path)
