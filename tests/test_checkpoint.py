"""Checkpoints inside a cell: a fit stopped and continued, and real CLI processes killed
(SIGKILL) or interrupted (SIGINT) mid-cell, end with exactly the numbers of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import flowbench
from flowbench.checkpoint import CheckpointPolicy, CheckpointWarning, request_stop
from flowbench.data.dataset import Dataset
from flowbench.flow import Flow
from flowbench.plan import PlanError
from flowbench.specs import TrainConfig
from flowbench.train import FitResult, fit

CONFIG = TrainConfig(steps=200, eval_every=50, batch_size=128, patience=0)
#: what must agree bit for bit between an interrupted-and-continued fit and an uninterrupted one
EXACT = ("status", "steps_done", "best_step", "best_val_nll", "examples_seen", "message")


@pytest.fixture(scope="module")
def moons() -> Dataset:
    return flowbench.load_dataset("two_moons", 0)


def _model(moons) -> Flow:
    torch.manual_seed(0)
    return flowbench.build_flow("realnvp", "normal", moons.event_shape)


def _fit(moons, **options) -> tuple[Flow, FitResult]:
    flow = _model(moons)
    return flow, fit(flow, moons.train, moons.val, CONFIG, seed=3, **options)


def _same(left: tuple[Flow, FitResult], right: tuple[Flow, FitResult]
          ) -> None:
    (flow_a, a), (flow_b, b) = left, right
    assert {k: getattr(a, k) for k in EXACT} == {k: getattr(b, k) for k in EXACT}
    assert _bits(a.history) == _bits(b.history)
    left_state, right_state = flow_a.state_dict(), flow_b.state_dict()
    assert list(left_state) == list(right_state)
    for name, tensor in left_state.items():
        assert torch.equal(tensor, right_state[name]), name


def _bits(history: list[dict[str, float]]) -> list[dict[str, str]]:
    """Each value's exact bits (``float.hex``), so NaN (the step-0 train NLL) equals NaN."""
    return [{key: float(value).hex() for key, value in row.items()} for row in history]


def _stop_at(step: int):
    def on_eval(row: dict[str, float]) -> None:
        if row["step"] == step:
            request_stop()
    return on_eval


@pytest.fixture(scope="module")
def uninterrupted(moons) -> tuple[Flow, FitResult]:
    return _fit(moons)


def test_stopped_and_continued_fit_is_exact(moons, uninterrupted, tmp_path: Path) -> None:
    path = tmp_path / "cell.pt"
    with pytest.raises(KeyboardInterrupt, match="checkpoint saved"):
        _fit(moons, checkpoint=CheckpointPolicy(path, 0, "cell"), on_eval=_stop_at(100))
    saved = torch.load(path, weights_only=True)
    assert saved["step"] == 100 and len(saved["history"]) == 3  # saved at the interrupt
    resumed = _fit(moons, checkpoint=CheckpointPolicy(path, 0, "cell"))
    assert resumed[1].resumed_from_step == 100 and uninterrupted[1].resumed_from_step == 0
    _same(resumed, uninterrupted)


def test_images_with_warmup_flips_and_dequantisation_continue_exactly(tmp_path: Path) -> None:
    """Every random stream of an image cell: dequantisation noise, flip coins, the warm-up."""
    digits = flowbench.load_dataset("digits", 0)
    config = TrainConfig(steps=60, eval_every=20, batch_size=32, warmup_steps=30,
                         augment="hflip", init_batch_size=64, eval_batch_size=256)

    def train(**options) -> tuple[Flow, FitResult]:
        torch.manual_seed(0)
        flow = flowbench.build_flow("glow", "normal", digits.event_shape, steps=2, hidden=8)
        return flow, fit(flow, digits.train, digits.val, config, seed=1, dequantise=True,
                         **options)

    path = tmp_path / "cell.pt"
    with pytest.raises(KeyboardInterrupt):
        train(checkpoint=CheckpointPolicy(path, 0, "cell"), on_eval=_stop_at(20))
    _same(train(checkpoint=CheckpointPolicy(path, 0, "cell")), train())


def test_periodic_checkpoints_change_nothing(moons, uninterrupted, tmp_path: Path) -> None:
    path = tmp_path / "cell.pt"
    done = _fit(moons, checkpoint=CheckpointPolicy(path, 1e-9, "cell"))  # after every step
    _same(done, uninterrupted)
    assert torch.load(path, weights_only=True)["step"] == CONFIG.steps
    _same(_fit(moons, checkpoint=CheckpointPolicy(path, 0, "cell")), uninterrupted)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other cell"])
def test_unusable_checkpoint_is_named_and_the_fit_starts_over(
        moons, uninterrupted, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "cell.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(moons, checkpoint=CheckpointPolicy(path, 0, "other"), on_eval=_stop_at(50))
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(CheckpointWarning, match=str(path)):
        restarted = _fit(moons, checkpoint=CheckpointPolicy(path, 0, "cell"))
    assert restarted[1].resumed_from_step == 0
    _same(restarted, uninterrupted)


def test_timeout_counts_the_training_time_of_earlier_sessions(moons, tmp_path: Path) -> None:
    path = tmp_path / "cell.pt"
    with pytest.raises(KeyboardInterrupt):
        _fit(moons, checkpoint=CheckpointPolicy(path, 0, "cell"), on_eval=_stop_at(50))
    state = torch.load(path, weights_only=True)
    torch.save({**state, "elapsed": 3600.0}, path)  # an hour of training before the kill
    _, result = _fit(moons, checkpoint=CheckpointPolicy(path, 0, "cell"), timeout=60.0)
    assert result.status == "timeout" and result.best_step == 50


def test_in_a_thread_as_on_a_dask_worker(moons, uninterrupted, tmp_path: Path) -> None:
    """Dask runs cells in threads, where no signal handler can be set: periodic saves only."""
    done: dict = {}
    path = tmp_path / "cell.pt"
    worker = threading.Thread(target=lambda: done.update(
        fitted=_fit(moons, checkpoint=CheckpointPolicy(path, 1e-9, "cell"))))
    worker.start()
    worker.join()
    _same(done["fitted"], uninterrupted)
    assert torch.load(path, weights_only=True)["step"] == CONFIG.steps


def test_no_run_folder_here_warns_once_and_trains_on(moons, uninterrupted, tmp_path: Path
                                                     ) -> None:
    """A Dask worker that does not share the run folder's filesystem: no checkpoints there."""
    path = tmp_path / "elsewhere" / "checkpoints" / "cell.pt"
    with pytest.warns(CheckpointWarning, match="trains on without checkpoints") as caught:
        fitted = _fit(moons, checkpoint=CheckpointPolicy(path, 1e-9, "cell"))
    assert len(caught) == 1 and not (tmp_path / "elsewhere").exists()
    _same(fitted, uninterrupted)


# --- real CLI processes ----------------------------------------------------------------------

ARGS = ("run", "--suite", "smoke", "--datasets", "two_moons", "--flows", "realnvp", "--bases",
        "normal", "--steps", "1500", "--no-measure", "--no-report")
#: record fields that must be equal bit for bit after a kill and a resume
NUMBERS = ("cell_id", "status", "steps_done", "best_step", "best_val_nll", "train_nll",
           "val_nll", "test_nll")


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as a terminal user's process would have it


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flowbench.cli", *ARGS, "--out", str(out), *extra]


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(out, *extra), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_command(out, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_interruptible,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _wait_for_checkpoints(folder: Path, count: int, process: subprocess.Popen,
                          limit: float = 120) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if len(list(folder.glob("checkpoints/*.pt"))) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no {count} checkpoint(s) in {folder} after {limit} s")


def _records(folder: Path) -> dict[int, dict]:
    lines = (folder / "cells.jsonl").read_text().splitlines()
    return {record["seed"]: record for record in map(json.loads, lines)}


def _numbers(record: dict) -> dict:
    return {**{key: record[key] for key in NUMBERS},
            "val_curve": [row["val_nll"] for row in record["history"]]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, dict]:
    """Seeds 0 and 1 trained without interruption (and with the default interval)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = _run(out, "--seeds", "0,1", "-j", "2")
    assert result.returncode == 0, result.stderr
    return _records(out)


def _resume_and_compare(out: Path, reference: dict[int, dict], seeds: tuple[int, ...],
                        *extra: str) -> None:
    result = _run(out, "--checkpoint-every", "0.002", *extra)
    assert result.returncode == 0, result.stderr
    records = _records(out)
    for seed in seeds:
        assert records[seed]["resumed_from_step"] > 0, "the cell started over"
        assert _numbers(records[seed]) == _numbers(reference[seed])
    assert not (out / "checkpoints").exists()  # each removed with its record, then the folder


def test_sigkill_mid_cell_then_resume_is_exact(reference, tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = _start(out, "--seeds", "0", "-j", "1", "--checkpoint-every", "0.002")
    _wait_for_checkpoints(out, 1, process)
    process.kill()
    process.communicate()  # also closes its pipes
    assert not (out / "cells.jsonl").is_file() or not _records(out)
    _resume_and_compare(out, reference, (0,), "--seeds", "0", "-j", "1")


def test_ctrl_c_mid_cell_saves_then_resume_is_exact(reference, tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = _start(out, "--seeds", "0", "-j", "1", "--checkpoint-every", "0.002")
    _wait_for_checkpoints(out, 1, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "saving a checkpoint at the end of this step" in stderr
    assert (out / "checkpoints").glob("*.pt")
    _resume_and_compare(out, reference, (0,), "--seeds", "0", "-j", "1")


@pytest.mark.slow
def test_ctrl_c_with_workers_checkpoints_their_cells(reference, tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = _start(out, "--seeds", "0,1", "-j", "2", "--checkpoint-every", "0.002")
    _wait_for_checkpoints(out, 2, process)
    process.send_signal(signal.SIGINT)  # the parent only: it signals its workers
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "save their cells' checkpoints" in stderr
    _resume_and_compare(out, reference, (0, 1), "--seeds", "0,1", "-j", "2")


@pytest.mark.slow
def test_killed_cell_resumes_on_a_dask_worker_sharing_the_folder(reference, tmp_path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    out = tmp_path / "run"
    process = _start(out, "--seeds", "0", "-j", "1", "--checkpoint-every", "0.002")
    _wait_for_checkpoints(out, 1, process)
    process.kill()
    process.communicate()  # also closes its pipes
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        run = flowbench.run_suite(
            "smoke", datasets=["two_moons"], flows=["realnvp"], bases=["normal"], seeds=[0],
            steps=1500, out=out, measure=False, report=False, backend="dask",
            scheduler=cluster.scheduler_address, checkpoint_every=0.002)
    [record] = run.records
    assert record["resumed_from_step"] > 0
    assert _numbers(json.loads(json.dumps(record))) == _numbers(reference[0])
    assert not (out / "checkpoints").exists()


def test_cell_timeout_counts_earlier_sessions_and_drops_the_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = _start(out, "--seeds", "0", "-j", "1", "--checkpoint-every", "0.002")
    _wait_for_checkpoints(out, 1, process)
    process.kill()
    process.communicate()  # also closes its pipes
    [path] = (out / "checkpoints").glob("*.pt")
    state = torch.load(path, weights_only=True)
    torch.save({**state, "elapsed": 3600.0}, path)  # as if the killed session trained an hour
    result = _run(out, "--seeds", "0", "-j", "1", "--cell-timeout", "600")
    assert result.returncode == 1, result.stderr
    [record] = _records(out).values()
    assert record["status"] == "timeout" and record["resumed_from_step"] == state["step"]
    assert not path.exists()


def test_negative_interval_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(tmp_path / "run", "--checkpoint-every", "-1")
    assert result.returncode == 2 and "--checkpoint-every" in result.stderr
    with pytest.raises(PlanError, match="checkpoint_every"):
        flowbench.run_suite("smoke", out=tmp_path / "api", checkpoint_every=-1)
