"""Execute a plan: every unfinished cell, the reference baselines, then the cost study; the
datasets' published numbers are stored first (``published.json``).

Each finished cell is appended to the run folder before the next one is reported, so an
interruption (Ctrl-C, a crash, kill -9) loses only the cells in flight. Cells run in this process
or in workers (``flowbench.backends``); each seeds itself and uses its own torch threads, so the
numbers do not depend on how many workers there are.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import torch

from .backends import Task, run_tasks
from .cell import MODEL_KEY, cached_dataset, run_cell, worker_registry
from .measure import linear_cost, logdet_cost
from .plan import Cell, RunPlan
from .registry import Registry, UnknownNameError
from .store import RunStore, jsonable

#: measurement tables of a run folder
REFERENCES, LOGDET, LINEAR = "references", "logdet_cost", "linear_cost"


def run_references(dataset_name: str, data_seed: int, plugins: tuple[str, ...] = (),
                   threads: int = 1) -> list[dict[str, Any]]:
    """Reference NLLs (full-covariance Gaussian, GMM, KDE, ...) of one dataset; a failure
    becomes a row with ``status="failed"`` rather than an exception."""
    from .references import reference_nlls

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dataset = cached_dataset(dataset_name, data_seed, plugins)
        frame = reference_nlls(dataset, seed=data_seed)
        return [{**row, "status": "ok"} for row in frame.to_dict(orient="records")]
    except Exception as error:  # noqa: BLE001 - recorded, the run goes on
        return [{"dataset": dataset_name, "method": "all", "status": "failed",
                 "message": f"{type(error).__name__}: {error}"}]
    finally:
        torch.set_num_threads(previous)


def cell_resources(cell: Cell) -> dict[str, float]:
    """Dask resources of a cell: one ``GPU`` for a cell that trains on CUDA, none otherwise."""
    return {"GPU": 1} if str(cell.train.get("device", "cpu")).startswith("cuda") else {}


def published_rows(registry: Registry, datasets: Sequence[str]) -> list[dict[str, Any]]:
    """The papers' numbers (``DatasetSpec.published``) on ``datasets``, one row each with the
    unit they are in: nats per example for vectors, bits per dimension for images."""
    rows = []
    for name in datasets:
        try:
            spec = registry.get("dataset", name).spec
        except UnknownNameError:  # its cells fail and say why; nothing to publish beside them
            continue
        unit = "nats" if spec.kind == "vector" else "bits/dim"
        rows += [{"dataset": name, "method": result.method, "nll": float(result.nll),
                  "unit": unit, "source": result.source} for result in spec.published]
    return rows


def execute(
    plan: RunPlan,
    store: RunStore,
    jobs: int = 1,
    threads: int = 1,
    retry_failed: bool = False,
    progress: bool = False,
    on_record: Callable[[dict[str, Any], int, int], None] | None = None,
    cell_timeout: float | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    checkpoint_every: float = 10.0,
) -> list[dict[str, Any]]:
    """Run every cell of ``plan`` not yet finished in ``store`` (and the reference baselines of
    datasets that lack them, when the plan asks for them); return all records of the plan.

    ``on_record(record, done, total)`` is called after each cell is on disk. ``backend="dask"``
    sends every task to the Dask scheduler at ``scheduler`` instead of ``jobs`` local
    processes. ``progress`` draws a per-step bar for cells trained in this process. Cells save
    their training state to ``RUN/checkpoints/`` every ``checkpoint_every`` minutes (0: never)
    and at Ctrl-C, continue from it when rerun, and lose it once their record is written.
    """
    with store.writing():
        # papers' numbers as the plugins give them now, beside (never among) the measurements
        store.write_published(published_rows(worker_registry(plan.plugins), plan.datasets))
        done = {r["cell_id"]: r for r in store.records()}
        wanted = [c for c in plan.cells if c.cell_id not in done
                  or (retry_failed and done[c.cell_id]["status"] == "failed")]
        tasks: list[Task] = []
        if plan.measure.get("references"):
            have = {row["dataset"] for row in store.rows(REFERENCES) if row.get("status") == "ok"}
            tasks += [Task("references", run_references, (name, plan.data_seed, plan.plugins,
                                                          threads))
                      for name in plan.datasets if name not in have]
        speed = (int(plan.measure["speed_batch"]), int(plan.measure["speed_repeats"])) \
            if plan.measure.get("speed", True) else None
        tasks += [Task("cell", run_cell, (cell,),
                       {"plugins": plan.plugins, "threads": threads, "speed": speed,
                        "timeout": cell_timeout,
                        "checkpoint_dir": str(store.checkpoints.resolve()),
                        "checkpoint_every": checkpoint_every},
                       in_process={"progress": progress}, interruptible=checkpoint_every > 0,
                       resources=cell_resources(cell))
                  for cell in wanted]
        finished = len(plan.cells) - len(wanted)
        with contextlib.closing(
                run_tasks(tasks, plan.plugins, jobs, backend, scheduler)) as results:
            for task, result in results:
                if task.kind == "references":
                    store.append_rows(REFERENCES, result)
                    continue
                state = result.pop(MODEL_KEY, None)
                if state is not None:  # the model first: a record on disk implies its model
                    store.save_model(result["cell_id"], state)
                record = jsonable(result)  # exactly what a later resume reads back (NaN -> None)
                store.append(record)
                store.drop_checkpoint(record["cell_id"])
                done[record["cell_id"]] = record
                finished += 1
                if on_record is not None:
                    on_record(record, finished, len(plan.cells))
        store.tidy_checkpoints()
    return [done[c.cell_id] for c in plan.cells if c.cell_id in done]


def measure_costs(plan: RunPlan, store: RunStore, registry: Registry,
                  on_progress: Callable[[str], None] | None = None) -> None:
    """The log-det cost of every flow of the plan (measured once per flow, with the plan's
    first base: a transform's log-det does not depend on the base), and the LU vs plain 1x1
    convolution when a flow's spec asks for it; here, one at a time, after training, so
    nothing else competes for the CPU. Already measured flows are skipped (resumable)."""
    dims = tuple(plan.measure.get("logdet_dims", ()))
    base = plan.bases[0]
    with store.writing():
        if dims:
            have = {row["flow"] for row in store.rows(LOGDET)}
            for flow in plan.flows:
                if flow in have:
                    continue
                if on_progress is not None:
                    on_progress(f"log-det cost of {flow}/{base} at D = "
                                f"{', '.join(map(str, dims))} (once per flow)")
                try:
                    rows = logdet_cost(
                        flow, base, dims, registry=registry,
                        batch=int(plan.measure["logdet_batch"]),
                        repeats=int(plan.measure["logdet_repeats"]),
                        brute_force_budget=plan.measure.get("logdet_call_budget"),
                        flow_hparams=plan.flow_hparams.get(flow),
                        base_hparams=plan.base_hparams.get(base),
                    ).to_dict(orient="records")
                except Exception as error:  # noqa: BLE001 - recorded; the other flows go on
                    rows = [{"flow": flow, "base": base, "status": "failed",
                             "message": f"{type(error).__name__}: {error}"}]
                store.append_rows(LOGDET, rows)
        channels = tuple(plan.measure.get("linear_channels", ()))
        wants_linear = any("linear_cost" in registry.spec("flow", flow).measures
                           for flow in plan.flows)
        if channels and wants_linear and not store.rows(LINEAR):
            if on_progress is not None:
                on_progress(f"LU vs plain 1x1 convolution at c = {', '.join(map(str, channels))}")
            store.append_rows(LINEAR, linear_cost(channels).to_dict(orient="records"))


__all__ = ["LINEAR", "LOGDET", "REFERENCES", "execute", "measure_costs", "published_rows",
           "run_references"]
