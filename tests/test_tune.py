"""Tuning with real Optuna studies, tuned runs, and the parallel / distributed backends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

import flowbench
from flowbench.plan import plan_run
from flowbench.runner import execute
from flowbench.store import RunStore
from flowbench.storage import open_storage
from flowbench.tune import (
    FINISHED, best_settings, run_study, split_params, study_name, study_tasks,
)

PLUGINS = Path(__file__).parent / "plugins"
SEALED, FAULTY = str(PLUGINS / "sealed_test.py"), str(PLUGINS / "faulty.py")
SMOKE = dict(datasets=["two_moons"], flows=["realnvp"], bases=["normal"])


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage))


@pytest.fixture(scope="module")
def registry() -> flowbench.Registry:
    return flowbench.load_registry([SEALED, FAULTY], strict=True)


def test_a_real_study_prunes_and_resumes(registry, tmp_path: Path) -> None:
    storage = str(tmp_path / "optuna.journal")
    plan = plan_run(registry, "smoke", **SMOKE)
    (task,) = study_tasks(plan, storage, trials=4)
    first = run_study(task)
    assert first["study"] == "smoke/two_moons/realnvp/normal" == study_name(
        "smoke", "two_moons", "realnvp", "normal")
    assert first["complete"] + first["pruned"] + first["failed"] == 4
    before = [(t.number, t.params) for t in load(storage, task.name).trials]

    (more,) = study_tasks(plan, storage, trials=12)
    summary = run_study(more)  # continues the same study up to 12 finished trials
    study = load(storage, task.name)
    assert [t.state in FINISHED for t in study.trials].count(True) == 12
    assert [(t.number, t.params) for t in study.trials[:4]] == before
    assert summary["pruned"] >= 1  # the median pruner stopped some trials early
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(max(t.intermediate_values) < 30 for t in pruned)  # stopped before the last step
    # every trial reported validation NLL as it trained
    assert all(t.intermediate_values for t in study.trials)
    flow, base, train = split_params(study.best_params)
    assert flow == summary["flow_hparams"] and set(flow) <= {
        "layers", "width", "depth", "activation", "scale_bound"}
    assert set(train) == {"lr"} and summary["best_val_nll"] == study.best_value


def test_tuning_never_reads_the_test_split(registry, tmp_path: Path) -> None:
    plan = plan_run(registry, "sealed")
    (task,) = study_tasks(plan, str(tmp_path / "j.journal"), trials=3)
    summary = run_study(task)
    assert summary["complete"] + summary["pruned"] == 3 and summary["failed"] == 0
    # while training a cell (which evaluates the test split) does read it
    record = execute(plan, RunStore(tmp_path / "run"))[0]
    assert record["status"] == "failed" and "the test split was read" in record["message"]


def test_tuned_run_trains_with_the_best_settings(tmp_path: Path) -> None:
    args = ["--suite", "smoke", "--datasets", "two_moons", "--flows", "glow", "--bases",
            "normal", "--results-dir", str(tmp_path)]
    missing = cli("run", *args, "--tuned", "-j", "1")
    assert missing.returncode == 2 and "flowbench tune --suite smoke" in missing.stderr
    tuned = cli("tune", *args, "--trials", "3", "-j", "1")
    assert tuned.returncode == 0, tuned.stderr
    assert "smoke/two_moons/glow/normal" in tuned.stdout
    storage = str(tmp_path / "smoke-tuning" / "optuna.journal")
    assert Path(storage).is_file() and (tmp_path / "smoke-tuning" / "studies.csv").is_file()
    best = best_settings(storage, "smoke", [("two_moons", "glow", "normal")])
    best = best[("two_moons", "glow", "normal")]

    run = cli("run", *args, "--tuned", "-j", "1")
    assert run.returncode == 0, run.stderr
    folder = next(p for p in tmp_path.iterdir() if p.name.startswith("smoke-2"))
    record = json.loads((folder / "cells.jsonl").read_text().splitlines()[0])
    assert record["flow_hparams"] == {**{"layers": 2, "width": 16}, **best["flow_hparams"]} \
        or all(record["flow_hparams"][k] == v for k, v in best["flow_hparams"].items())
    assert record["train"]["lr"] == pytest.approx(best["train"]["lr"])
    config = json.loads((folder / "config.json").read_text())
    assert list(config["tuning"]["studies"]) == ["smoke/two_moons/glow/normal"]
    report = (folder / "report.md").read_text()
    assert "## Tuning" in report and "tuning_history.png" in report
    assert (folder / "figures" / "tuning_importance.png").is_file()


def test_two_tuners_share_one_storage(tmp_path: Path) -> None:
    storage = str(tmp_path / "shared.journal")
    args = ["tune", "--suite", "smoke", "--datasets", "two_moons", "--flows", "realnvp",
            "--bases", "normal", "--trials", "6", "--steps", "300", "--storage", storage,
            "-j", "1", "--pruner", "none"]
    processes = [subprocess.Popen([sys.executable, "-m", "flowbench.cli", *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    study = load(storage, "smoke/two_moons/realnvp/normal")
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers)))  # no trial lost or numbered twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert len(study.trials) == 6  # the budget is shared, exactly (flowbench.budget)
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2  # both processes contributed
    param_sets = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(param_sets)) == len(param_sets)  # no trial evaluated twice


def test_database_storage_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    result = cli("tune", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice",
                 "--bases", "normal", "--trials", "2", "--storage", url, "-j", "1")
    assert result.returncode == 0, result.stderr
    assert len(load(url, "smoke/two_moons/nice/normal").trials) == 2


def test_cell_timeout_is_recorded_and_the_run_goes_on(registry, tmp_path: Path) -> None:
    plan = plan_run(registry, "smoke", datasets=["two_moons"], flows=["glow", "nice"],
                    bases=["normal"], steps=100000)
    records = {r["flow"]: r for r in execute(plan, RunStore(tmp_path), cell_timeout=1.5)}
    for record in records.values():
        assert record["status"] == "timeout"
        assert "exceeded the time limit" in record["message"]
        assert record["wall_seconds"] < 30
    result = cli("-p", FAULTY, "run", "--suite", "smoke", "--datasets", "two_moons", "--flows",
                 "nice", "--bases", "normal", "--steps", "100000", "--cell-timeout", "1",
                 "--out", str(tmp_path / "cli"), "-j", "1", "--no-measure", "--no-report")
    assert result.returncode == 1 and "timeout" in result.stdout


def test_dask_backend_on_a_local_cluster(registry, tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    plan = plan_run(registry, "smoke", datasets=["two_moons"], flows=["nice", "realnvp"],
                    bases=["normal"], steps=40)
    local = execute(plan, RunStore(tmp_path / "local"), jobs=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = execute(plan, RunStore(tmp_path / "dask"), backend="dask",
                         scheduler=cluster.scheduler_address)
        (task,) = study_tasks(plan_run(registry, "smoke", **SMOKE),
                              str(tmp_path / "dask.journal"), trials=2)
        from flowbench.backends import Task, run_tasks

        [(done, summary)] = list(run_tasks([Task("study", run_study, (task,))], (),
                                           backend="dask", scheduler=cluster.scheduler_address))
        kind = done.kind
    assert [r["test_nll"] for r in remote] == [r["test_nll"] for r in local]
    assert {r["status"] for r in remote} == {"ok"}
    assert kind == "study" and summary["complete"] + summary["pruned"] == 2


def test_backend_errors_are_usage_errors(tmp_path: Path) -> None:
    no_address = cli("run", "--suite", "smoke", "--backend", "dask", "--out", str(tmp_path / "a"))
    assert no_address.returncode == 2 and "needs --scheduler" in no_address.stderr
    unreachable = cli("run", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice",
                      "--backend", "dask", "--scheduler", "tcp://127.0.0.1:1",
                      "--out", str(tmp_path / "b"), "--no-measure")
    assert unreachable.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in unreachable.stderr


def test_studies_csv_matches_the_storage(tmp_path: Path) -> None:
    result = cli("tune", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice,glow",
                 "--bases", "normal", "--trials", "3", "--results-dir", str(tmp_path), "-j", "2")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "smoke-tuning" / "studies.csv").set_index("study")
    storage = str(tmp_path / "smoke-tuning" / "optuna.journal")
    for name, row in table.iterrows():
        study = load(storage, name)
        assert row["trials"] == len(study.trials) == 3
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert row["best_val_nll"] == pytest.approx(min(t.value for t in complete))
