"""Turn a suite into cells, train and evaluate each, record results as they finish.

A *cell* is one (dataset, flow, base, seed, hyperparameters, training config). Its id is a hash of
exactly those, so a re-run of the same command recognises what is already done and skips it.
Cells run in this process (``jobs=1``) or in ``jobs`` spawned worker processes; each cell seeds
itself and uses ``threads`` torch threads, so results do not depend on ``jobs``.
"""

from __future__ import annotations

import concurrent.futures as futures
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from .api import build_cell_flow, load_dataset
from .data.dataset import Dataset
from .registry import Registry, UnknownNameError, get_registry
from .store import RunStore, jsonable
from .data.dequantise import DEQUANTISE_SEEDS
from .specs import MEASURE_DEFAULTS, PREPROCESSING_DEFAULTS, TrainConfig
from .train import evaluate_nll, fit


class PlanError(ValueError):
    """A run that cannot start (bad names, incompatible data kinds, bad settings)."""


@dataclass(frozen=True)
class Cell:
    """One training + evaluation job."""

    suite: str
    dataset: str
    flow: str
    base: str
    seed: int
    data_seed: int
    flow_hparams: Mapping[str, Any]
    base_hparams: Mapping[str, Any]
    train: Mapping[str, Any]
    preprocessing: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cell_id(self) -> str:
        # an empty preprocessing (the default) is left out, so ids of earlier runs still match
        identity = {k: v for k, v in asdict(self).items()
                    if k != "suite" and not (k == "preprocessing" and not v)}
        digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.dataset}-{self.flow}-{self.base}-s{self.seed}-{digest}"

    def label(self) -> str:
        return f"{self.dataset} {self.flow}/{self.base} seed {self.seed}"


@dataclass(frozen=True)
class RunPlan:
    """A suite resolved against the registry and the command-line overrides."""

    suite: str
    datasets: tuple[str, ...]
    flows: tuple[str, ...]
    bases: tuple[str, ...]
    seeds: tuple[int, ...]
    data_seed: int
    train: Mapping[str, Any]
    flow_hparams: Mapping[str, Mapping[str, Any]]
    base_hparams: Mapping[str, Mapping[str, Any]]
    plugins: tuple[str, ...] = ()
    measure: Mapping[str, Any] = field(default_factory=dict)
    dataset_kinds: Mapping[str, str] = field(default_factory=dict)
    #: for ``run --tuned``: the storage and the summary of each study whose settings were used
    tuning: Mapping[str, Any] = field(default_factory=dict)
    cells: tuple[Cell, ...] = field(default=(), compare=False)

    def config(self) -> dict[str, Any]:
        """The resolved configuration as plain JSON data (``config.json``)."""
        data = asdict(self)
        data.pop("cells")
        data["cells"] = [cell.cell_id for cell in self.cells]
        return data

    def config_hash(self) -> str:
        """Identifies the run: what is trained. Measurement settings are left out, so skipping
        them once (``--no-measure``) and adding them later continues the same run."""
        identity = {k: v for k, v in self.config().items()
                    if k not in ("plugins", "measure", "dataset_kinds", "tuning")}
        return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _pick(registry: Registry, kind: str, names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        registry.get(kind, name)  # raises UnknownNameError with choices and closest match
    if len(set(names)) != len(names):
        raise PlanError(f"{kind} names are repeated: {list(names)}")
    return tuple(names)


def plan_run(
    registry: Registry,
    suite: str,
    datasets: Sequence[str] | None = None,
    flows: Sequence[str] | None = None,
    bases: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    steps: int | None = None,
    measure: bool = True,
    tuned: Mapping[tuple[str, str, str], Mapping[str, Any]] | None = None,
    compile: bool = False,
) -> RunPlan:
    """Resolve ``suite`` and the overrides; every name is checked before anything trains.

    ``tuned`` maps (dataset, flow, base) to a study's best settings (``flow_hparams``,
    ``base_hparams``, ``train``), which then replace the suite's for those cells. ``compile``
    trains every cell through ``torch.compile`` (a separate run: the cells' ids change).
    """
    spec = registry.spec("suite", suite)
    datasets = _pick(registry, "dataset", list(datasets or spec.datasets))
    flows = _pick(registry, "flow", list(flows or spec.flows))
    bases = _pick(registry, "base", list(bases or spec.bases))
    seeds = tuple(int(s) for s in (seeds if seeds is not None else spec.seeds))
    if not seeds:
        raise PlanError("at least one seed is needed")
    train = dict(spec.train)
    if steps is not None:
        train["steps"] = int(steps)
    if compile:
        train["compile"] = True
    try:
        train = TrainConfig(**train).as_dict()
    except (TypeError, ValueError) as error:
        raise PlanError(f"training settings of suite {suite!r}: {error}") from None
    for flow in flows:
        kinds = registry.spec("flow", flow).data_kinds
        for dataset in datasets:
            kind = registry.spec("dataset", dataset).kind
            if kind not in kinds:
                raise PlanError(
                    f"flow {flow!r} does not support {kind} data (dataset {dataset!r}); "
                    f"it supports {', '.join(kinds)}"
                )
    flow_hparams = {f: dict(spec.flow_hparams.get(f, {})) for f in flows}
    base_hparams = {b: dict(spec.base_hparams.get(b, {})) for b in bases}
    def settings(d: str, f: str, b: str) -> tuple[dict, dict, dict]:
        best = (tuned or {}).get((d, f, b))
        if best is None:
            return flow_hparams[f], base_hparams[b], train
        tuned_train = TrainConfig(**{**train, **best["train"], **({"compile": True} if compile
                                                                    else {})}).as_dict()
        if steps is not None:
            tuned_train["steps"] = int(steps)
        return ({**flow_hparams[f], **best["flow_hparams"]},
                {**base_hparams[b], **best["base_hparams"]}, tuned_train)

    preprocessing = dict(spec.preprocessing)
    unknown = sorted(set(preprocessing) - set(PREPROCESSING_DEFAULTS))
    if unknown:
        raise PlanError(f"suite {suite!r}: unknown preprocessing options {unknown}; valid: "
                        f"{sorted(PREPROCESSING_DEFAULTS)}")
    cells = tuple(
        Cell(suite, d, f, b, s, spec.data_seed, *settings(d, f, b), preprocessing)
        for d in datasets for f in flows for b in bases for s in seeds
    )
    measure_settings = {**MEASURE_DEFAULTS, **dict(spec.measure)}
    if not measure:
        measure_settings.update(references=False, logdet_dims=(), linear_channels=())
    kinds = {d: registry.spec("dataset", d).kind for d in datasets}
    return RunPlan(suite, datasets, flows, bases, seeds, spec.data_seed, train, flow_hparams,
                   base_hparams, registry.extra_plugins, measure_settings, kinds, {}, cells)


# --- executing one cell (also inside worker processes) ------------------------------------------

@functools.lru_cache(maxsize=None)
def _worker_registry(plugins: tuple[str, ...]) -> Registry:
    return get_registry(plugins)


@functools.lru_cache(maxsize=8)
def _dataset(name: str, data_seed: int, plugins: tuple[str, ...]) -> Dataset:
    return load_dataset(name, data_seed, registry=_worker_registry(plugins))


@functools.lru_cache(maxsize=8)
def _oracle_test_nll(name: str, data_seed: int, plugins: tuple[str, ...]) -> float:
    dataset = _dataset(name, data_seed, plugins)
    if dataset.log_prob is None:
        return float("nan")
    with torch.no_grad():
        return float(-dataset.log_prob(dataset.test.double()).mean())


def _finite_or_nan(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


def run_cell(cell: Cell, keep_model: bool = True, plugins: tuple[str, ...] = (),
             threads: int = 1, progress: bool = False, speed: bool = True,
             timeout: float | None = None) -> dict[str, Any]:
    """Train and evaluate one cell; never raises for a failing cell (status ``failed``).
    ``timeout`` (seconds for the whole cell) ends training early with status ``timeout``.
    With ``keep_model`` the trained state dict comes back (serialised) under ``MODEL_KEY``, so
    whichever machine ran the cell, the run folder's owner saves it."""
    started = time.time()
    record: dict[str, Any] = {
        "cell_id": cell.cell_id, **asdict(cell), "status": "failed", "message": "",
        "started_at": started,
    }
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dataset = _dataset(cell.dataset, cell.data_seed, plugins)
        record["entropy"] = _finite_or_nan(dataset.entropy if dataset.entropy is not None
                                           else float("nan"))
        record["oracle_test_nll"] = _oracle_test_nll(cell.dataset, cell.data_seed, plugins)
        torch.manual_seed(cell.seed)
        flow = build_cell_flow(asdict(cell), dataset, _worker_registry(plugins))
        record["n_params"] = sum(p.numel() for p in flow.parameters() if p.requires_grad)
        record["setup_seconds"] = time.time() - started
        remaining = None if timeout is None else max(0.0, timeout - (time.time() - started))
        discrete = dataset.levels is not None
        result = fit(flow, dataset.train, dataset.val, TrainConfig(**cell.train), seed=cell.seed,
                     progress=progress, description=cell.label(), timeout=remaining,
                     dequantise=discrete)
        record.update(
            status=result.status, message=result.message, steps_done=result.steps_done,
            best_step=result.best_step, best_val_nll=result.best_val_nll,
            train_seconds=result.train_seconds,
            train_examples_per_second=result.examples_per_second,
            train_step_seconds_median=result.step_seconds[0],
            train_step_seconds_iqr=result.step_seconds[1], threads=torch.get_num_threads(),
            compiled=result.compiled, eval_seconds=result.eval_seconds, history=result.history,
        )
        if result.status == "ok":
            final_eval = time.perf_counter()
            batch = TrainConfig(**cell.train).eval_batch_size
            dims = math.prod(dataset.event_shape)
            for split, data in dataset.splits().items():
                noise = DEQUANTISE_SEEDS[split] if discrete else None
                record[f"{split}_nll"] = _finite_or_nan(evaluate_nll(flow, data, batch, noise))
                if discrete:  # bits per dimension of the original discrete data
                    record[f"{split}_bpd"] = record[f"{split}_nll"] / (dims * math.log(2))
            record["gap"] = record["test_nll"] - record["oracle_test_nll"]
            record["final_eval_seconds"] = time.perf_counter() - final_eval
            if not math.isfinite(record["test_nll"]):
                record.update(status="diverged",
                              message="non-finite log-likelihood on the test split")
            elif speed:
                from .measure import throughput

                measuring = time.perf_counter()
                record.update(throughput(flow, dataset.test))
                record["speed_seconds"] = time.perf_counter() - measuring
            if keep_model:
                buffer = io.BytesIO()
                torch.save(flow.state_dict(), buffer)
                record[MODEL_KEY] = buffer.getvalue()
    except Exception as error:  # noqa: BLE001 - a failing cell is recorded, the run goes on
        record["status"] = "failed"
        record["message"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc(limit=8)
    finally:
        torch.set_num_threads(previous_threads)
    record["wall_seconds"] = time.time() - started
    return record


MODEL_KEY = "_model_state"


def _save_model(state: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    tmp.write_bytes(state)
    os.replace(tmp, path)


# --- executing a plan ----------------------------------------------------------------------------

REFERENCES, LOGDET, LINEAR = "references", "logdet_cost", "linear_cost"


def _init_worker(plugins: tuple[str, ...]) -> None:
    torch.set_num_threads(1)
    _worker_registry(plugins)


def run_references(dataset_name: str, data_seed: int, plugins: tuple[str, ...] = (),
                   threads: int = 1) -> list[dict[str, Any]]:
    """Reference NLLs (full-covariance Gaussian, GMM, KDE) of one dataset; a failure becomes a
    row with ``status="failed"`` rather than an exception."""
    from .references import reference_nlls

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dataset = _dataset(dataset_name, data_seed, plugins)
        frame = reference_nlls(dataset, seed=data_seed)
        return [{**row, "status": "ok"} for row in frame.to_dict(orient="records")]
    except Exception as error:  # noqa: BLE001 - recorded, the run goes on
        return [{"dataset": dataset_name, "method": "all", "status": "failed",
                 "message": f"{type(error).__name__}: {error}"}]
    finally:
        torch.set_num_threads(previous)


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
) -> list[dict[str, Any]]:
    """Run every cell of ``plan`` not yet finished in ``store`` (and the reference baselines of
    datasets that lack them, when the plan asks for them); return all records of the plan.

    Each finished cell is appended to the store before the next one is reported, so an
    interruption (Ctrl-C, a crash) loses only the cells in flight. ``on_record(record, done,
    total)`` is called after each cell. ``backend="dask"`` sends every cell to the Dask
    scheduler at ``scheduler`` instead of ``jobs`` local processes.
    """
    done = {r["cell_id"]: r for r in store.records()}
    wanted = [c for c in plan.cells
              if c.cell_id not in done or (retry_failed and done[c.cell_id]["status"] == "failed")]
    tasks: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
    if plan.measure.get("references"):
        have = {row["dataset"] for row in store.rows(REFERENCES) if row.get("status") == "ok"}
        tasks += [("references", run_references, (name, plan.data_seed, plan.plugins, threads))
                  for name in plan.datasets
                  if name not in have and plan.dataset_kinds.get(name) in ("vector", "image")]
    speed = bool(plan.measure.get("speed", True))
    tasks += [("cell", run_cell, (cell, True, plan.plugins, threads, False, speed, cell_timeout))
              for cell in wanted]
    finished = len(plan.cells) - len(wanted)
    for kind, result in run_tasks(tasks, plan.plugins, jobs, progress, backend, scheduler):
        if kind == "references":
            store.append_rows(REFERENCES, result)
            continue
        state = result.pop(MODEL_KEY, None)
        if state is not None:  # the model first: a record on disk implies its model is there
            _save_model(state, store.models / f"{result['cell_id']}.pt")
        record = jsonable(result)  # exactly what a later resume reads back (NaN -> None)
        store.append(record)
        done[record["cell_id"]] = record
        finished += 1
        if on_record is not None:
            on_record(record, finished, len(plan.cells))
    return [done[c.cell_id] for c in plan.cells if c.cell_id in done]


BACKENDS = ("local", "dask")


class BackendError(RuntimeError):
    """The execution backend cannot be used (e.g. no Dask scheduler at that address)."""


def run_tasks(tasks: list[tuple[str, Callable[..., Any], tuple[Any, ...]]],
              plugins: tuple[str, ...], jobs: int = 1, progress: bool = False,
              backend: str = "local", scheduler: str | None = None
              ) -> Iterator[tuple[str, Any]]:
    """Run ``(kind, function, args)`` tasks here, in ``jobs`` spawned local workers, or on a
    Dask cluster; yield ``(kind, result)`` as each finishes."""
    if backend == "dask":
        yield from _run_on_dask(tasks, scheduler)
        return
    if backend != "local":
        raise BackendError(f"unknown backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if jobs <= 1 or len(tasks) <= 1:
        for kind, function, args in tasks:
            if kind == "cell":  # only in-process cells can drive a per-step progress bar
                args = (*args[:4], progress, *args[5:])
            yield kind, function(*args)
        return
    context = multiprocessing.get_context("spawn")
    pool = futures.ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)), mp_context=context,
        initializer=_init_worker, initargs=(plugins,),
    )
    try:
        pending = {pool.submit(function, *args): kind for kind, function, args in tasks}
        for future in futures.as_completed(pending):
            yield pending[future], future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_on_dask(tasks: list[tuple[str, Callable[..., Any], tuple[Any, ...]]],
                 scheduler: str | None) -> Iterator[tuple[str, Any]]:
    """Each task becomes a Dask task on the cluster whose scheduler is at ``scheduler``.
    Workers need flowbench (and any ``-p`` plugin file, at the same path) installed."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise BackendError("the dask backend needs dask.distributed: "
                           "pip install 'flowbench-nf[dask]'") from None
    if not scheduler:
        raise BackendError("--backend dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    try:
        client = Client(scheduler, timeout=20)
    except (OSError, TimeoutError) as error:
        raise BackendError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        submitted = {client.submit(function, *args, pure=False): kind
                     for kind, function, args in tasks}
        for future in as_completed(submitted):
            yield submitted[future], future.result()
    finally:
        client.close()


def measure_costs(plan: RunPlan, store: RunStore, registry: Registry,
                  on_progress: Callable[[str], None] | None = None) -> None:
    """Log-det cost of every flow/base of the plan (and, when Glow is in it, the LU vs plain
    1x1 convolution), measured here, one at a time, after training: nothing else runs, so
    the timings are clean. Already measured combinations are skipped (resumable)."""
    from .measure import linear_cost, logdet_cost

    dims = tuple(plan.measure.get("logdet_dims", ()))
    if dims:
        have = {(row["flow"], row["base"]) for row in store.rows(LOGDET)}
        for flow in plan.flows:
            for base in plan.bases:
                if (flow, base) in have:
                    continue
                if on_progress is not None:
                    on_progress(f"log-det cost of {flow}/{base} at D = {', '.join(map(str, dims))}")
                try:
                    rows = logdet_cost(
                        flow, base, dims, registry=registry,
                        batch=int(plan.measure.get("logdet_batch", 16)),
                        repeats=int(plan.measure.get("logdet_repeats", 5)),
                        flow_hparams=plan.flow_hparams.get(flow),
                        base_hparams=plan.base_hparams.get(base),
                    ).to_dict(orient="records")
                except Exception as error:  # noqa: BLE001 - recorded; the other flows go on
                    rows = [{"flow": flow, "base": base, "status": "failed",
                             "message": f"{type(error).__name__}: {error}"}]
                store.append_rows(LOGDET, rows)
    channels = tuple(plan.measure.get("linear_channels", ()))
    if channels and "glow" in plan.flows and not store.rows(LINEAR):
        if on_progress is not None:
            on_progress(f"LU vs plain 1x1 convolution at c = {', '.join(map(str, channels))}")
        store.append_rows(LINEAR, linear_cost(channels).to_dict(orient="records"))


def default_jobs() -> int:
    """Usable CPU cores (respecting affinity masks)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


__all__ = ["BACKENDS", "BackendError", "Cell", "PlanError", "RunPlan", "UnknownNameError",
           "default_jobs", "execute", "measure_costs", "plan_run", "run_cell",
           "run_references", "run_tasks"]
