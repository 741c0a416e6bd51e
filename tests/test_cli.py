"""The command line through real subprocesses: list, run, resume after kill/Ctrl-C, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

FAULTY = str(Path(__file__).parent / "plugins" / "faulty.py")


def flowbench(*args: str, cwd: Path | None = None, timeout: float = 300
              ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _interruptible() -> None:
    # a test runner started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Python keeps it ignored; the child gets Ctrl-C as a terminal user's would
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowbench.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)


def wait_for_records(path: Path, count: int, process: subprocess.Popen, limit: float = 120):
    deadline = time.time() + limit
    while time.time() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {count} records")


def test_console_script_and_help() -> None:
    result = subprocess.run(["flowbench", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for word in ("list", "run", "-p PLUGIN", "--strict"):
        assert word in result.stdout
    run_help = flowbench("run", "--help").stdout
    for option in ("--flows", "--bases", "--datasets", "--seeds", "--steps", "--out", "--jobs"):
        assert option in run_help


def test_list_shows_everything_with_its_plugin() -> None:
    result = flowbench("list")
    assert result.returncode == 0, result.stderr
    for name in ("nice", "realnvp", "glow", "maf", "normal", "diag", "bimodal", "gmm",
                 "two_moons", "pinwheel", "toy2d", "smoke"):
        assert name in result.stdout
    data = json.loads(flowbench("list", "--json").stdout)
    items = {(i["kind"], i["name"]): i["plugin"] for i in data["items"]}
    assert items[("flow", "glow")] == "glow"
    assert items[("flow", "maf")] == "maf"
    assert items[("dataset", "two_spirals")] == "toy2d"
    assert items[("base", "gmm")] == "bases"
    assert data["problems"] == []


def test_run_writes_a_run_folder_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--suite", "smoke", "--out", str(out), "-j", "1"]
    first = flowbench(*args)
    assert first.returncode == 0, first.stderr
    assert "two_moons" in first.stdout and "gap to oracle" in first.stdout
    # the run ends with its report
    assert f"report: {out / 'report.html'}" in first.stdout
    assert (out / "report.md").is_file() and (out / "figures" / "density_two_moons.png").is_file()
    assert (out / "logdet_cost.csv").is_file() and (out / "linear_cost.csv").is_file()
    assert "0.2892" in first.stdout  # two_moons' true entropy is in the table
    for name in ("config.json", "metadata.json", "cells.jsonl", "results.csv"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 12 and set(table["status"]) == {"ok"}
    config = json.loads((out / "config.json").read_text())
    assert config["suite"] == "smoke" and len(config["cells"]) == 12
    metadata = json.loads((out / "metadata.json").read_text())["sessions"][0]
    assert metadata["packages"]["torch"] and metadata["cpu_count"]
    # where the wall time went, recorded and said
    phases = metadata["phase_seconds"]
    assert list(phases) == ["start-up", "training and evaluation", "cost study", "tables",
                            "report"]
    assert all(seconds >= 0 for seconds in phases.values()) and phases["start-up"] > 0
    assert f"wall {sum(phases.values()):.0f} s: start-up" in first.stderr

    records = (out / "cells.jsonl").read_text()
    second = flowbench(*args)
    assert second.returncode == 0
    assert "resuming" in second.stderr and "(12 already finished)" in second.stderr
    assert (out / "cells.jsonl").read_text() == records  # nothing retrained
    assert second.stdout == first.stdout
    assert "measuring" not in second.stderr  # costs were measured already
    assert len(json.loads((out / "metadata.json").read_text())["sessions"]) == 2


def test_same_command_finds_its_run_under_results(tmp_path: Path) -> None:
    args = ["run", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice",
            "--bases", "normal", "--no-measure", "--steps", "5", "--no-report"]
    assert flowbench(*args, cwd=tmp_path).returncode == 0
    folders = list((tmp_path / "results").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("smoke-")
    again = flowbench(*args, cwd=tmp_path)
    assert f"resuming run {Path('results') / folders[0].name}" in again.stderr
    assert len(list((tmp_path / "results").iterdir())) == 1
    # a different budget is a different run
    other = flowbench(*args[:-2], "6", "--no-report", cwd=tmp_path)
    assert "new run" in other.stderr and len(list((tmp_path / "results").iterdir())) == 2


def test_kill_loses_nothing_finished_and_rerun_completes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--suite", "toy2d", "--datasets", "two_moons", "--flows", "realnvp",
            "--bases", "normal", "--seeds", "0,1,2,3,4,5", "--steps", "120", "--out", str(out),
            "-j", "1", "--no-report", "--no-measure"]
    process = start(*args)
    wait_for_records(out / "cells.jsonl", 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = (out / "cells.jsonl").read_text()
    finished_before = len(before.splitlines())
    assert 2 <= finished_before < 6

    result = flowbench(*args)
    assert result.returncode == 0, result.stderr
    assert f"({finished_before} already finished)" in result.stderr
    after = (out / "cells.jsonl").read_text()
    assert after.startswith(before)  # finished cells were kept, not retrained
    ids = [json.loads(line)["cell_id"] for line in after.splitlines()]
    assert len(ids) == len(set(ids)) == 6


def test_ctrl_c_saves_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = start("run", "--suite", "toy2d", "--datasets", "two_moons", "--flows", "glow",
                    "--bases", "normal", "--seeds", "0,1,2,3,4,5,6,7", "--steps", "300",
                    "--out", str(out), "-j", "1", "--no-report", "--no-measure")
    wait_for_records(out / "cells.jsonl", 1, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "run the same command again to resume" in stderr
    table = pd.read_csv(out / "results.csv")
    assert 1 <= len(table) < 8 and set(table["status"]) == {"ok"}
    assert "two_moons" in stdout


def _choices(kind: str) -> str:
    """The registered names, whatever plugins are installed besides the built-ins."""
    import flowbench

    return ", ".join(flowbench.load_registry(warn=False).names(kind))


@pytest.mark.parametrize("args,expected", [
    (["run", "--suite", "smoke", "--flows", "realnpv"],
     f"unknown flow 'realnpv'; valid choices: {_choices('flow')}; did you mean 'realnvp'?"),
    (["run", "--suite", "smoke", "--bases", "bimodel"], "did you mean 'bimodal'?"),
    (["run", "--suite", "toy2"], f"unknown suite 'toy2'; valid choices: {_choices('suite')}"),
    (["run", "--suite", "smoke", "--datasets", "two_moon"], "did you mean 'two_moons'?"),
    (["run", "--suite", "smoke", "--seeds", "a,b"], "--seeds takes integers"),
    (["run", "--suite", "smoke", "--steps", "0"], "--steps must be >= 1"),
])
def test_bad_input_fails_before_training(tmp_path: Path, args, expected: str) -> None:
    result = flowbench(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert not (tmp_path / "results").exists()  # nothing was started


def test_out_folder_of_another_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["run", "--suite", "smoke", "--datasets", "two_moons", "--flows", "nice",
            "--out", str(out), "-j", "1", "--no-report"]
    assert flowbench(*base, "--steps", "5").returncode == 0
    records = (out / "cells.jsonl").read_text()
    result = flowbench(*base, "--steps", "6")
    assert result.returncode == 2 and "holds a different run" in result.stderr
    assert (out / "cells.jsonl").read_text() == records  # the old results are untouched


def test_plugin_file_and_failing_cells_exit_1(tmp_path: Path) -> None:
    result = flowbench("-p", FAULTY, "run", "--suite", "faulty", "--out", str(tmp_path / "r"),
                       "-j", "1", "--no-report")
    assert result.returncode == 1
    assert "explodes" in result.stdout and "0/1 (1 failed)" in result.stdout
    assert "0/1 (1 diverged)" in result.stdout
    assert "did not finish ok" in result.stderr
    listing = flowbench("list", "-p", FAULTY)  # -p also works after the subcommand
    assert "blows_up" in listing.stdout and "faulty" in listing.stdout


def test_broken_plugin_warns_but_strict_fails(write_plugin) -> None:
    broken = write_plugin("broken", "import not_a_real_module\n")
    loose = flowbench("-p", str(broken), "list")
    assert loose.returncode == 0
    assert "warning: plugin 'broken'" in loose.stderr and "not_a_real_module" in loose.stderr
    assert "realnvp" in loose.stdout
    strict = flowbench("--strict", "-p", str(broken), "list")
    assert strict.returncode == 2 and "plugin 'broken'" in strict.stderr


def test_measurements_skipped_once_are_added_by_a_later_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--suite", "smoke", "--datasets", "two_moons", "--flows", "glow", "--bases",
            "normal", "--out", str(out), "-j", "1", "--no-report"]
    assert flowbench(*args, "--no-measure").returncode == 0
    assert not (out / "logdet_cost.csv").exists() and not (out / "linear_cost.csv").exists()
    records = (out / "cells.jsonl").read_text()
    again = flowbench(*args)
    assert again.returncode == 0 and "resuming" in again.stderr
    assert "measuring log-det cost of glow/normal" in again.stderr
    assert (out / "cells.jsonl").read_text() == records
    cost = pd.read_csv(out / "logdet_cost.csv")
    assert set(cost["dim"]) == {2, 4, 8} and set(cost["path"]) == {"analytic", "brute_force"}
    assert (pd.read_csv(out / "linear_cost.csv")["channels"].isin([4, 8, 16])).all()


def test_compile_without_a_compiler_says_so_and_trains_eagerly(tmp_path: Path) -> None:
    """`--compile` on a machine without a C++ compiler (PATH holds only Python here): one clear
    message, then the cells train eagerly; the run is still a compiled-mode run of its own."""
    out = tmp_path / "run"
    env = {"PATH": str(Path(sys.executable).parent), "CXX": "no-such-compiler"}
    result = subprocess.run(
        [sys.executable, "-m", "flowbench.cli", "run", "--suite", "smoke", "--flows", "realnvp",
         "--datasets", "two_moons", "--steps", "30", "--compile", "-j", "1", "--no-measure",
         "--no-report", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "--compile: no C++ compiler found ('no-such-compiler' is not on PATH" in result.stderr
    assert "cells will train eagerly" in result.stderr
    records = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert records and all(r["status"] == "ok" and r["compiled"] is False for r in records)
    assert all(r["train"]["compile"] is True for r in records)
    assert json.loads((out / "config.json").read_text())["train"]["compile"] is True


def test_missing_dataset_files_stop_before_training(tmp_path: Path) -> None:
    result = flowbench("run", "--suite", "digits", "--datasets", "mnist", "--data-dir",
                       str(tmp_path / "nothing"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train-images-idx3-ubyte" in result.stderr and str(tmp_path / "nothing") in result.stderr
    assert not (tmp_path / "run").exists()
