"""Fault injection: no fault, race or bad file loses a result, and none gives a traceback.

Real subprocesses of the command line, killed (SIGKILL) or interrupted (SIGINT) at awkward
moments with worker processes busy; two processes on one run folder; damaged and foreign files;
committed reference runs; storages that cannot work; and every non-finite path. The kills with
busy workers, during the report and during tuning, and the rarer damage cases, are ``slow``
(``tox -e slow``; CI runs both).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pandas as pd
import pytest

import flowbench
from flowbench.plan import plan_run
from flowbench.runner import execute
from flowbench.storage import StorageError, check_storage, open_storage
from flowbench.store import RECORDS, RunStore

PLUGINS = Path(__file__).parent / "plugins"
NONFINITE, FAULTY = str(PLUGINS / "nonfinite.py"), str(PLUGINS / "faulty.py")
REPOSITORY = Path(__file__).parents[1]
SMALL = ["--suite", "smoke", "--datasets", "two_moons", "--flows", "nice,realnvp", "--bases",
         "normal", "--no-measure", "--no-report"]


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as a terminal user's child would have it


def cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowbench.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)


def wait_until(condition, process: subprocess.Popen | None = None, limit: float = 120) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process ended early: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError("condition never became true")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] \
        if Path(f"/proc/{pid}/stat").exists() else "X"
    return state not in ("Z", "X")


def digest(folder: Path) -> dict[str, str]:
    """Every file's hash, but the lock's own bookkeeping (who holds ``.lock``)."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")


# --- finding 1: committed reference runs are exhibits ---------------------------------------

def test_a_fresh_clone_starts_a_new_run_and_never_touches_the_reference(tmp_path: Path) -> None:
    """README command 1 in a copy of the repository's results/: the committed reference runs
    are not resumed (the first line says "new run ... 0 already finished") nor written."""
    shutil.copytree(REPOSITORY / "results", tmp_path / "results")
    before = digest(tmp_path / "results")
    process = start("run", "--suite", "toy2d", cwd=tmp_path)
    first = process.stderr.readline()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.startswith("flowbench: new run results/toy2d-"), first
    assert "(0 already finished)" in first
    after = digest(tmp_path / "results")
    assert {k: v for k, v in after.items() if k in before} == before


@pytest.mark.slow
def test_a_reference_run_of_the_same_command_is_neither_resumed_nor_written(tmp_path) -> None:
    args = ["run", *SMALL, "--steps", "5", "-j", "1"]
    made = cli(*args, "--out", str(tmp_path / "made"))
    assert made.returncode == 0, made.stderr
    for where in ("results/smoke-reference", "results/reference/smoke"):  # old and new places
        shutil.copytree(tmp_path / "made", tmp_path / where)
        (tmp_path / where / "REFERENCE-RUN.md").write_text("read-only exhibit\n")
    before = digest(tmp_path / "results")
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "new run results/smoke-2" in again.stderr and "(0 already finished)" in again.stderr
    into = cli(*args, "--out", "results/reference/smoke", cwd=tmp_path)
    assert into.returncode == 2 and "committed reference run" in into.stderr
    report = cli("report", "results/reference/smoke", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "results/reference-smoke-report/report.html" in report.stdout
    after = digest(tmp_path / "results")
    assert {k: v for k, v in after.items() if k in before} == before


# --- findings 2 and 3: storages -------------------------------------------------------------

def test_a_new_sqlite_database_with_two_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new-studies.db'}"
    result = cli("tune", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice,glow",
                 "--bases", "normal", "--trials", "2", "--steps", "10", "--storage", url,
                 "-j", "2")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for flow in ("nice", "glow"):
        study = optuna.load_study(study_name=f"smoke/two_moons/{flow}/normal",
                                  storage=open_storage(url))
        assert len(study.trials) == 2


@pytest.mark.parametrize("storage", ["bogus://x", "postgressql://user@host/db"])
def test_a_storage_url_with_an_unknown_scheme_is_refused(tmp_path: Path, storage: str) -> None:
    result = cli("tune", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice",
                 "--trials", "1", "--storage", storage, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown database scheme" in result.stderr
    assert "a journal file path" in result.stderr and "postgresql://" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no 'bogus:' folder, nothing tuned


def test_postgres_is_an_alias_and_a_missing_driver_names_the_extra() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        with pytest.raises(StorageError, match=r"flowbench-nf\[postgres\]"):
            check_storage("postgres://user@localhost/db")
    else:
        assert check_storage("postgres://user@localhost/db").startswith("postgresql://")
    assert check_storage("results/x.journal") == str(Path("results/x.journal").resolve())


# --- finding 4: a torn last line --------------------------------------------------------------

def test_a_torn_last_line_never_swallows_the_next_record(tmp_path: Path) -> None:
    registry = flowbench.load_registry(strict=True)
    plan = plan_run(registry, "smoke", datasets=["two_moons"], flows=["nice", "realnvp"],
                    bases=["normal"], seeds=[0, 1], steps=10)
    store = RunStore(tmp_path)
    execute(plan, store)
    written = lines(tmp_path / RECORDS)
    torn = json.loads(written[-1])["cell_id"]
    (tmp_path / RECORDS).write_text("\n".join(written[:-1]) + "\n" + written[-1][:40])
    with pytest.warns(UserWarning, match="moved to cells.jsonl.torn"):
        records = execute(plan, store)
    assert len(records) == len(plan.cells)
    every = [json.loads(line) for line in lines(tmp_path / RECORDS)]  # read back: all parse
    assert sorted(r["cell_id"] for r in every) == sorted(c.cell_id for c in plan.cells)
    assert every[-1]["cell_id"] == torn
    assert (tmp_path / "cells.jsonl.torn").read_text() == written[-1][:40] + "\n"
    assert len(RunStore(tmp_path).records()) == len(plan.cells)


# --- finding 5: two processes on one run folder ---------------------------------------------

@pytest.mark.slow
def test_two_runs_on_one_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--suite", "toy2d", "--datasets", "two_moons", "--flows", "glow", "--bases",
            "normal", "--seeds", "0,1,2", "--steps", "400", "--out", str(out), "-j", "1",
            "--no-measure", "--no-report"]
    first = start(*args)
    wait_until(lambda: (out / ".lock").is_file() and (out / "config.json").is_file(), first)
    second = cli(*args)
    assert first.poll() is None, "the first run ended before the second started"
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid} on host" in second.stderr and "Traceback" not in second.stderr
    report = cli("report", str(out))
    assert report.returncode == 2 and f"pid {first.pid}" in report.stderr
    assert "--out DIR" in report.stderr
    first.send_signal(signal.SIGINT)  # the owner ends, on its own terms
    _, stderr = first.communicate(timeout=120)
    assert first.returncode in (0, 130), stderr
    ids = [json.loads(line)["cell_id"] for line in lines(out / RECORDS)]
    assert len(ids) == len(set(ids)) <= 3  # each cell trained once, by the owner only
    after = cli(*args)  # the lock went with its owner: the same command now resumes
    assert after.returncode == 0 and "resuming" in after.stderr, after.stderr
    ids = [json.loads(line)["cell_id"] for line in lines(out / RECORDS)]
    assert len(ids) == len(set(ids)) == 3


@pytest.mark.slow
@needs_proc
def test_kill_with_busy_workers_then_resume(tmp_path: Path) -> None:
    """kill -9 of a run with two busy workers: the workers stop too, the finished cells are
    on disk (each with its model), the stale lock does not block, the rerun trains the rest."""
    out = tmp_path / "run"
    args = ["run", "--suite", "toy2d", "--datasets", "two_moons", "--flows", "nice",
            "--bases", "normal", "--seeds", "0,1,2,3,4,5,6,7", "--steps", "300", "--out",
            str(out), "-j", "2", "--no-measure", "--no-report"]
    process = start(*args)
    wait_until(lambda: len(lines(out / RECORDS)) >= 2 and len(children(process.pid)) >= 2,
               process)
    workers = [pid for pid in children(process.pid)]
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_until(lambda: not any(alive(pid) for pid in workers), limit=10)
    before = (out / RECORDS).read_text()
    finished = [json.loads(line)["cell_id"] for line in before.splitlines()]
    assert 2 <= len(finished) < 8
    assert all((out / "models" / f"{cell}.pt").is_file() for cell in finished)
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"({len(finished)} already finished)" in again.stderr
    after = (out / RECORDS).read_text()
    assert after.startswith(before)
    ids = [json.loads(line)["cell_id"] for line in after.splitlines()]
    assert len(ids) == len(set(ids)) == 8


@pytest.mark.slow
@needs_proc
def test_ctrl_c_with_busy_workers(tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = start("run", "--suite", "toy2d", "--datasets", "two_moons", "--flows", "glow",
                    "--bases", "normal", "--seeds", "0,1,2,3,4,5,6,7", "--steps", "400",
                    "--out", str(out), "-j", "2", "--no-measure", "--no-report")
    wait_until(lambda: len(lines(out / RECORDS)) >= 1 and len(children(process.pid)) >= 2,
               process)
    workers = children(process.pid)
    started = time.time()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert time.time() - started < 30  # the workers' cells were not waited for
    assert "Traceback" not in stderr and "run the same command again to resume" in stderr
    wait_until(lambda: not any(alive(pid) for pid in workers), limit=10)
    table = pd.read_csv(out / "results.csv")
    assert len(table) == len(lines(out / RECORDS)) >= 1 and set(table["status"]) == {"ok"}
    assert "two_moons" in stdout


def _whole(path: Path) -> bool:
    data = path.read_bytes()
    if path.suffix == ".png":
        return data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    if path.suffix == ".html":
        return data.rstrip().endswith(b"</html>")
    if path.suffix == ".csv":
        pd.read_csv(path)
        return True
    return True


@pytest.mark.slow
def test_kill_while_the_report_is_written_leaves_no_half_file(tmp_path: Path) -> None:
    out = tmp_path / "run"
    made = cli("run", "--suite", "smoke", "--datasets", "two_moons", "--out", str(out),
               "-j", "1", "--no-report")
    assert made.returncode == 0, made.stderr
    for delay, how in ((1.0, signal.SIGKILL), (2.0, signal.SIGKILL), (3.0, signal.SIGINT),
                       (4.0, signal.SIGKILL), (6.0, signal.SIGINT)):
        process = start("report", str(out))
        time.sleep(delay)
        process.send_signal(how)
        _, stderr = process.communicate(timeout=60)
        if how == signal.SIGINT and process.returncode != 0:  # interrupted, not finished first
            # -SIGINT: the signal landed after the report was written, while the interpreter
            # shut down with the OS default handler back in place (a shell shows 130 too)
            assert process.returncode in (130, -signal.SIGINT), stderr
            assert "Traceback" not in stderr, stderr
        for path in [*out.glob("report.*"), *out.glob("figures/*"), *out.glob("tables/*")]:
            if not path.name.startswith("."):
                assert _whole(path), (delay, path)
    final = cli("report", str(out))  # a leftover lock or temporary file does not get in the way
    assert final.returncode == 0, final.stderr
    assert _whole(out / "report.html")


# --- finding 6: damaged and foreign files -----------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    result = cli("run", *SMALL, "--steps", "5", "-j", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


SLOW = pytest.mark.slow


@pytest.mark.parametrize("name,content,expected", [
    ("config.json", '{"suite": "smoke",\n  "cells": [1, 2\n', "config.json, line 3"),
    pytest.param("config.json", '["not", "a", "config"]\n', "not a flowbench run configuration",
                 marks=SLOW),
    ("metadata.json", '{"sessions": [}\n', "metadata.json, line 1"),
    pytest.param("metadata.json", '{"sessions": 3}\n', "expected {\"sessions\"", marks=SLOW),
    (RECORDS, None, "cells.jsonl, line 2: a JSON object without a 'cell_id'"),
    pytest.param(RECORDS, "list", "cells.jsonl, line 2: not a JSON object", marks=SLOW),
    pytest.param(RECORDS, "garbage", "cells.jsonl, line 2: not a JSON record", marks=SLOW),
])
def test_a_damaged_file_is_named_and_left_alone(finished_run: Path, tmp_path: Path, name: str,
                                                content: str | None, expected: str) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    if name == RECORDS:
        records = lines(out / RECORDS)
        middle = {None: json.dumps({"dataset": "two_moons"}), "list": "[1, 2, 3]",
                  "garbage": "{\"cell_id\": \"x\", oops"}[content]
        (out / RECORDS).write_text("\n".join([records[0], middle, *records[1:]]) + "\n")
    else:
        (out / name).write_text(content)
    before = digest(out)
    for command in (["run", *SMALL, "--steps", "5", "-j", "1", "--out", str(out)],
                    ["report", str(out)]):
        result = cli(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr
        assert "Nothing was overwritten" in result.stderr
    assert digest(out) == before


def test_a_damaged_folder_under_results_is_skipped_with_a_warning(finished_run, tmp_path):
    shutil.copytree(finished_run, tmp_path / "results" / "smoke-20000101-000000")
    (tmp_path / "results" / "smoke-20000101-000000" / "config.json").write_text("{oops")
    result = cli("run", *SMALL, "--steps", "5", "-j", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipping results/smoke-20000101-000000" in result.stderr
    assert "new run" in result.stderr


# --- one test point must not wreck a table ----------------------------------------------------

def test_one_far_test_point_is_flagged_and_an_infinite_one_diverges(tmp_path: Path) -> None:
    registry = flowbench.load_registry([NONFINITE], strict=True)
    records = {r["dataset"]: r for r in execute(plan_run(registry, "outlier"),
                                               RunStore(tmp_path))}
    far = records["far_point"]
    assert far["status"] == "ok" and far["test_tail_flag"] is True
    assert far["test_tail_points"] == 1 and far["test_nll_top"][0] > 1000
    assert far["test_nll_median"] < 10 and far["test_nll_trimmed"] < 10
    assert far["test_nll"] == pytest.approx(far["test_nll_trimmed"] + far["test_tail_shift"])
    assert far["test_tail_share"] > 0.5
    inf = records["inf_point"]
    assert inf["status"] == "diverged"
    assert inf["message"] == "non-finite log-likelihood on the test split"


# --- every non-finite path is recorded, never averaged ----------------------------------------

def test_every_non_finite_path_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    registry = flowbench.load_registry([NONFINITE], strict=True)
    records = {r["flow"]: r for r in execute(plan_run(registry, "nonfinite"), RunStore(tmp_path))}
    assert records["nan_grad"]["status"] == "diverged"
    assert records["nan_grad"]["message"] == "non-finite gradient at step 6"
    assert records["nan_val_init"]["status"] == "diverged"
    assert records["nan_val_init"]["message"] == "validation NLL is not finite at initialisation"
    assert records["nan_val_later"]["status"] == "diverged"
    assert records["nan_val_later"]["message"] == "non-finite validation NLL at step 30"
    for record in records.values():
        assert record.get("test_nll") is None  # nothing to average


def test_a_diverged_trial_is_a_failed_trial(tmp_path: Path) -> None:
    from flowbench.tune import run_study, study_tasks

    registry = flowbench.load_registry([FAULTY], strict=True)
    storage = str(tmp_path / "j.journal")
    plan = plan_run(registry, "faulty", flows=["blows_up"])
    (task,) = study_tasks(plan, storage, trials=2)
    summary = run_study(task)
    assert summary["failed"] == 2 and summary["complete"] == 0
    study = optuna.load_study(study_name=task.name, storage=open_storage(storage))
    assert {t.user_attrs["status"] for t in study.trials} == {"diverged"}


# --- kill during tuning ---------------------------------------------------------------------

def _finished(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    return study.trials


@pytest.mark.slow
@needs_proc
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_kill_during_tuning_then_rerun_ends_at_exactly_the_trials(tmp_path: Path, kind: str):
    storage = str(tmp_path / "t.journal") if kind == "journal" else \
        f"sqlite:///{tmp_path / 't.db'}"
    args = ["tune", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice,realnvp",
            "--bases", "normal", "--trials", "4", "--steps", "400", "--pruner", "none",
            "--storage", storage, "-j", "2"]
    names = [f"smoke/two_moons/{flow}/normal" for flow in ("nice", "realnvp")]
    process = start(*args)

    def one_done_and_busy() -> bool:
        try:
            trials = [t for name in names for t in _finished(storage, name)]
        except Exception:  # noqa: BLE001 - the storage is still being created
            return False
        states = [t.state for t in trials]
        return optuna.trial.TrialState.COMPLETE in states and \
            states.count(optuna.trial.TrialState.RUNNING) >= 1

    wait_until(one_done_and_busy, process, limit=300)
    process.send_signal(signal.SIGKILL)
    process.wait()
    again = cli(*args, timeout=600)
    assert again.returncode == 0, again.stderr
    interrupted = 0
    for name in names:
        trials = _finished(storage, name)
        states = [t.state for t in trials]
        assert optuna.trial.TrialState.RUNNING not in states
        assert [t.number for t in trials] == list(range(len(trials)))
        assert len(trials) == 4, (name, states)
        failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
        assert all("ended before the trial finished" in t.user_attrs["failed_because"]
                   for t in failed)
        interrupted += len(failed)
    assert interrupted >= 1


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_trial_killed_before_it_was_named_is_failed(tmp_path: Path, kind: str) -> None:
    """A kill between Optuna creating a trial and flowbench naming its process leaves a nameless
    RUNNING trial. The next worker, under the study's budget lock, knows no live process can be
    naming it and fails it; a failed trial counts against the budget as a kill's always has (it
    used to stay RUNNING for good, and tuning reported a study with a trial still running)."""
    from flowbench.tune import run_study, study_tasks

    storage = str(tmp_path / "t.journal") if kind == "journal" else \
        f"sqlite:///{tmp_path / 't.db'}"
    plan = plan_run(flowbench.load_registry(), "smoke", datasets=["two_moons"], flows=["nice"],
                    bases=["normal"], steps=20)
    (task,) = study_tasks(plan, storage, trials=2, pruner="none")
    study = optuna.create_study(study_name=task.name, storage=open_storage(storage, create=True),
                                direction="minimize")
    with warnings.catch_warnings():  # Optuna: heartbeats are meant for Study.optimize
        warnings.simplefilter("ignore", UserWarning)
        orphan = study.ask()  # created, never named: its process was killed in between
    summary = run_study(task)
    assert (summary["trials"], summary["complete"], summary["failed"], summary["running"]) == \
        (2, 1, 1, 0)
    trials = optuna.load_study(study_name=task.name, storage=open_storage(storage)).trials
    assert trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert trials[orphan.number].user_attrs["failed_because"] == \
        "its process ended before the trial finished"
