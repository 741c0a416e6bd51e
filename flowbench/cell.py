"""One cell's work: build its flow, train it, evaluate every split, measure its speed.

Runs in the run's own process or in a worker (a local process or a Dask worker on another
machine): it only needs the cell and the plugin references, reloads what it needs, and returns a
plain record. A failing cell never raises: its record says ``failed`` (or ``diverged``,
``timeout``) with the reason, so one bad cell never stops a run.
"""

from __future__ import annotations

import functools
import io
import json
import math
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .api import build_cell_flow, load_dataset
from .checkpoint import CheckpointPolicy, minutes, stop_requested
from .data.dataset import Dataset
from .data.dequantise import DEQUANTISE_SEEDS
from .device import describe, is_out_of_memory
from .flow import Flow
from .measure import tail_statistics, throughput
from .plan import Cell
from .registry import Registry, get_registry
from .specs import TrainConfig
from .train import arithmetic, evaluate_nll, fit, per_point_nll

#: the record key under which a cell returns its trained state dict (serialised bytes)
MODEL_KEY = "_model_state"


@functools.lru_cache(maxsize=None)
def worker_registry(plugins: tuple[str, ...]) -> Registry:
    """The registry of a worker: installed plugins plus the run's ``plugins`` references."""
    return get_registry(plugins)


@functools.lru_cache(maxsize=8)
def cached_dataset(name: str, data_seed: int, plugins: tuple[str, ...]) -> Dataset:
    """Each dataset loaded once per process (cells of one dataset share it)."""
    return load_dataset(name, data_seed, registry=worker_registry(plugins))


@functools.lru_cache(maxsize=8)
def _oracle_test_nll(name: str, data_seed: int, plugins: tuple[str, ...]) -> float:
    dataset = cached_dataset(name, data_seed, plugins)
    if dataset.log_prob is None:
        return float("nan")
    with torch.no_grad():
        return float(-dataset.log_prob(dataset.test.double()).mean())


def _finite_or_nan(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


def run_cell(cell: Cell, keep_model: bool = True, plugins: tuple[str, ...] = (),
             threads: int = 1, progress: bool = False,
             speed: tuple[int, int] | None = (4096, 5), timeout: float | None = None,
             checkpoint_dir: str | None = None, checkpoint_every: float = 0.0
             ) -> dict[str, Any]:
    """Train and evaluate one cell; never raises for a failing cell (status ``failed``), only
    ``KeyboardInterrupt`` when asked to stop.
    ``speed`` is ``(batch, repeats)`` of the throughput measurement, or ``None`` for none.
    ``timeout`` (seconds for the whole cell) ends training early with status ``timeout``.
    With ``keep_model`` the trained state dict comes back (serialised) under :data:`MODEL_KEY`,
    so whichever machine ran the cell, the run folder's owner saves it. With
    ``checkpoint_dir`` training continues from ``<dir>/<cell_id>.pt`` if there is one and saves
    there every ``checkpoint_every`` minutes (0: never) and when interrupted."""
    if stop_requested():  # a worker told to stop starts no further cell
        raise KeyboardInterrupt("stop requested before the cell started")
    started = time.time()
    record: dict[str, Any] = {
        "cell_id": cell.cell_id, **asdict(cell), "status": "failed", "message": "",
        "started_at": started,
    }
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dataset = cached_dataset(cell.dataset, cell.data_seed, plugins)
        record["entropy"] = _finite_or_nan(dataset.entropy if dataset.entropy is not None
                                           else float("nan"))
        record["oracle_test_nll"] = _oracle_test_nll(cell.dataset, cell.data_seed, plugins)
        torch.manual_seed(cell.seed)
        flow = build_cell_flow(asdict(cell), dataset, worker_registry(plugins))
        record["n_params"] = sum(p.numel() for p in flow.parameters() if p.requires_grad)
        record["setup_seconds"] = time.time() - started
        config = TrainConfig(**cell.train)
        record["device"] = describe(config.device)
        # every split moves to the cell's device once; training and evaluation use them there
        splits = {name: data.to(config.device) for name, data in dataset.splits().items()}
        remaining = None if timeout is None else max(0.0, timeout - (time.time() - started))
        result = fit(flow, splits["train"], splits["val"], config, seed=cell.seed,
                     progress=progress, description=cell.label(), timeout=remaining,
                     dequantise=dataset.levels is not None,
                     checkpoint=cell_checkpoint(cell, checkpoint_dir, checkpoint_every))
        record.update(
            status=result.status, message=result.message, steps_done=result.steps_done,
            best_step=result.best_step, best_val_nll=result.best_val_nll,
            train_seconds=result.train_seconds,
            train_examples_per_second=result.examples_per_second,
            train_step_seconds_median=result.step_seconds[0],
            train_step_seconds_iqr=result.step_seconds[1], threads=torch.get_num_threads(),
            compiled=result.compiled, eval_seconds=result.eval_seconds, history=result.history,
            resumed_from_step=result.resumed_from_step,
        )
        if result.status == "ok":
            with arithmetic(config):  # evaluated and timed as trained
                _evaluate(flow, dataset, splits, config.eval_batch_size, record)
                if record["status"] == "ok" and speed is not None:
                    measuring = time.perf_counter()
                    record.update(throughput(flow, splits["test"], *speed))
                    record["speed_seconds"] = time.perf_counter() - measuring
            if record["status"] == "ok" and keep_model:
                buffer = io.BytesIO()  # saved from the CPU: loadable on any machine
                torch.save({k: v.cpu() for k, v in flow.state_dict().items()}, buffer)
                record[MODEL_KEY] = buffer.getvalue()
    except Exception as error:  # noqa: BLE001 - a failing cell is recorded, the run goes on
        record["status"] = "failed"
        record["message"] = f"{type(error).__name__}: {error}"
        if is_out_of_memory(error):
            record["message"] = out_of_memory_message(cell, error)
        record["traceback"] = traceback.format_exc(limit=8)
    finally:
        torch.set_num_threads(previous_threads)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # what this cell held, for the next one on this GPU
    record["wall_seconds"] = time.time() - started
    return record


def cell_checkpoint(cell: Cell, folder: str | None, every: float) -> CheckpointPolicy | None:
    """The checkpoint policy of ``cell`` in ``folder`` (``None``: no folder, no checkpoints),
    saving every ``every`` minutes and at an interrupt; with ``every`` 0 nothing is saved, but
    a checkpoint left by an earlier session is still continued from."""
    if folder is None:
        return None
    identity = json.dumps({"cell_id": cell.cell_id, **asdict(cell)}, sort_keys=True, default=str)
    return CheckpointPolicy(Path(folder) / f"{cell.cell_id}.pt", minutes(every), identity,
                            on_interrupt=every > 0)


def out_of_memory_message(cell: Cell, error: BaseException) -> str:
    """What ran out, and what to change: the batch sizes of this cell's settings."""
    train = TrainConfig(**cell.train)
    first = (str(error).strip().splitlines() or [""])[0][:200]
    return (f"out of memory on {train.device} (batch_size {train.batch_size}, eval_batch_size "
            f"{train.eval_batch_size}): try a smaller batch, e.g. a suite file with "
            f"train.batch_size = {max(1, train.batch_size // 2)} and train.eval_batch_size = "
            f"{max(1, train.eval_batch_size // 2)}, or fewer/narrower layers "
            f"({type(error).__name__}: {first})")


def _evaluate(flow: Flow, dataset: Dataset, splits: dict[str, torch.Tensor], batch: int,
              record: dict[str, Any]) -> None:
    """NLL of every split (bits/dim too for discrete data), the gap to the oracle, and the
    test split's per-point tail statistics; a non-finite test NLL makes the cell ``diverged``
    (it would otherwise be averaged into the tables)."""
    started = time.perf_counter()
    discrete = dataset.levels is not None
    dims = math.prod(dataset.event_shape)
    for split, data in splits.items():
        noise = DEQUANTISE_SEEDS[split] if discrete else None
        if split == "test":
            mean, points = per_point_nll(flow, data, batch, noise)
            record.update(tail_statistics(points, dims))
        else:
            mean = evaluate_nll(flow, data, batch, noise)
        record[f"{split}_nll"] = _finite_or_nan(mean)
        if discrete:  # bits per dimension of the original discrete data
            record[f"{split}_bpd"] = record[f"{split}_nll"] / (dims * math.log(2))
    record["gap"] = record["test_nll"] - record["oracle_test_nll"]
    record["final_eval_seconds"] = time.perf_counter() - started
    if not math.isfinite(record["test_nll"]):
        record.update(status="diverged", message="non-finite log-likelihood on the test split")
