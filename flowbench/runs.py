"""Whole jobs, from Python, exactly as the command line does them: :func:`run_suite`,
:func:`tune_suite` and :func:`write_report`. The CLI is argument parsing, progress printing and
exit codes around these three.

Each raises, before anything trains, a ``ValueError`` subclass for input that cannot work (an
unknown name: ``UnknownNameError``; a bad suite file; a damaged, read-only or foreign run folder:
``StoreError``; a storage that cannot be used: ``StorageError``), ``RunLocked`` when another
process owns the run folder, ``FileNotFoundError`` (``DataMissing``) when a dataset's files are
missing, and ``DataUnreadable`` when one is present but cannot be read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from . import metadata
from .api import load_dataset
from .backends import BackendError, Task, default_jobs, run_tasks
from .checkpoint import minutes as checkpoint_minutes
from .data.files import DataFileError, MissingReader
from .device import describe
from .plan import PlanError, RunPlan, plan_run
from .registry import Registered, Registry, get_registry
from .runner import execute, measure_costs
from .storage import check_storage, fail_abandoned_trials, is_database, prepare_storage, shown
from .store import REPORT, DamagedFile, ReadOnlyRun, RunStore, StoreError, records_frame, \
    write_atomic
from .suitefile import SuiteFileError, check_names, is_suite_file, read_suite_file
from .tune import best_settings, default_storage, study_tasks, time_and_run

Say = Callable[[str], None]


class NothingToTune(ValueError):
    """None of the suite's flows has a search space, and the suite has no training space."""


@dataclasses.dataclass
class Run:
    """What :func:`run_suite` did: its folder, plan and records (one per finished cell)."""

    folder: Path
    plan: RunPlan
    records: list[dict[str, Any]]
    resumed: bool
    interrupted: bool = False
    report: Path | None = None
    phase_seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def results(self) -> pd.DataFrame:
        """One row per finished cell (as ``results.csv``)."""
        return records_frame(self.records)

    @property
    def not_ok(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


@dataclasses.dataclass
class Tuning:
    """What :func:`tune_suite` did: the storage and the latest summary of every study."""

    storage: str
    studies: list[dict[str, Any]]
    summary_csv: Path | None = None
    interrupted: bool = False


def use_suite(registry: Registry, suite: str) -> tuple[Registry, str]:
    """``(registry, name)`` for a suite given by name or by a suite file (``.toml``, see
    ``flowbench.suitefile``); a file's suite joins a copy of the registry, and its path the
    plugin references that worker processes reload."""
    if not is_suite_file(suite):
        return registry, suite
    path = Path(suite).resolve()
    spec = read_suite_file(path)
    check_names(spec, suite, registry)
    existing = registry.suites.get(spec.name)
    if existing is not None and existing.source != f"suite file {path}":
        raise SuiteFileError(f"{suite}: name: suite {spec.name!r} is already registered by "
                             f"plugin {existing.plugin!r}; give the file's suite another name")
    entries = {kind: dict(names) for kind, names in registry.entries.items()}
    entries["suite"][spec.name] = Registered("suite", spec, path.stem, f"suite file {path}")
    plugins = registry.extra_plugins + ((str(path),) if str(path) not in
                                        registry.extra_plugins else ())
    return dataclasses.replace(registry, entries=entries, extra_plugins=plugins), spec.name


def _check_options(jobs: int | None, threads: int, steps: int | None, backend: str,
                   scheduler: str | None, cell_timeout: float | None = None) -> int:
    """The number of local workers; a ``ValueError`` naming the parameter for bad values."""
    jobs = default_jobs() if jobs is None else jobs
    for name, value in (("jobs", jobs), ("threads", threads), ("steps", steps)):
        if value is not None and value < 1:
            raise PlanError(f"{name} must be >= 1, got {value}")
    if cell_timeout is not None and not cell_timeout > 0:
        raise PlanError(f"cell_timeout must be positive, got {cell_timeout}")
    if backend == "dask" and not scheduler:
        raise BackendError("the dask backend needs a scheduler address (e.g. tcp://host:8786)")
    if scheduler and backend != "dask":
        raise BackendError("a scheduler address is for the dask backend")
    return jobs


class DataMissing(PlanError, FileNotFoundError):
    """A dataset's files are not where it looked (the message names every path tried)."""


class DataUnreadable(PlanError):
    """A dataset's file is present but unusable (truncated, corrupted, another format), or a
    package needed to read it is missing; the message names the file or the package."""


def _check_datasets(registry: Registry, plan: RunPlan) -> None:
    """Load every dataset once, so missing or unreadable files stop the run before any
    training."""
    for name in plan.datasets:
        try:
            load_dataset(name, plan.data_seed, registry=registry)
        except FileNotFoundError as error:
            raise DataMissing(str(error)) from None
        except (DataFileError, MissingReader) as error:
            raise DataUnreadable(f"dataset {name!r}: {error}") from None


def _matching_run(results_dir: Path, suite: str, config_hash: str) -> Path | None:
    """The latest folder under ``results_dir`` holding this same run (reference runs and
    damaged folders are never picked; a damaged one is named in a warning)."""
    candidates = []
    for folder in Path(results_dir).glob(f"{suite}-*"):
        store = RunStore(folder)
        if not store.exists() or store.is_reference:
            continue
        try:
            if store.read_config()["config_hash"] == config_hash:
                candidates.append(folder)
        except DamagedFile as error:
            warnings.warn(f"skipping {folder} while looking for this run: {error}", stacklevel=3)
    return max(candidates, key=lambda p: p.name) if candidates else None


def choose_folder(plan: RunPlan, config: dict[str, Any], out: Path | None, results_dir: Path,
                  fresh: bool) -> tuple[Path, bool]:
    """``(folder, resuming)``: ``out`` (resumed when it holds this run, refused when it holds
    another or anything else), else the latest matching run under ``results_dir`` (unless
    ``fresh``), else a new ``results_dir/<suite>-<timestamp>``."""
    if out is not None:
        store = RunStore(out)
        if store.is_reference:
            raise ReadOnlyRun(f"{out} is a committed reference run: it is never resumed or "
                              "written into; choose another folder")
        if store.exists():
            existing = store.read_config()
            if existing["config_hash"] != config["config_hash"]:
                differing = sorted(k for k in config if k not in ("plugins", "config_hash")
                                   and existing.get(k) != config[k])
                raise StoreError(
                    f"{out} holds a different run (differs in: {', '.join(differing)}); choose "
                    "another folder, or ask for that run's own settings to resume it")
            return Path(out), True
        if Path(out).exists() and any(Path(out).iterdir()):
            raise StoreError(f"{out} exists, is not empty and is not a flowbench run folder; "
                             "choose another folder")
        return Path(out), False
    if not fresh:
        match = _matching_run(results_dir, plan.suite, config["config_hash"])
        if match is not None:
            return match, True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(results_dir) / f"{plan.suite}-{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = Path(results_dir) / f"{plan.suite}-{stamp}-{suffix}"
    return folder, False


def device_choice(plan: RunPlan, requested: str) -> dict[str, Any]:
    """What the run's device is, what was asked for, and the line that says so."""
    device = plan.train.get("device", "cpu")
    precision = plan.train.get("precision", "fp32")
    why = f" (--device {requested} chose it)" if requested == "auto" else ""
    name = describe(device)
    return {"device": device, "device_requested": requested, "device_name": name,
            "precision": precision,
            "device_line": f"on {device} [{name}]{why}, precision {precision}"}


def _tuned(plan: RunPlan, registry: Registry, storage: str, steps: int | None, measure: bool,
           compile: bool, precision: str | None) -> RunPlan:
    """The plan with every cell's settings replaced by its study's best trial (on the plan's
    device, already resolved)."""
    combos = list(dict.fromkeys((c.dataset, c.flow, c.base) for c in plan.cells))
    best = best_settings(storage, plan.suite, combos)
    tuned = plan_run(registry, plan.suite, list(plan.datasets), list(plan.flows),
                     list(plan.bases), list(plan.seeds), steps, measure=measure, tuned=best,
                     compile=compile, device=plan.train.get("device", "cpu"),
                     precision=precision, device_here=False)
    studies = {summary["study"]: summary for summary in best.values()}
    # recorded in config.json and reports: never a database password
    return dataclasses.replace(tuned, tuning={"storage": shown(storage), "studies": studies})


def run_suite(
    suite: str, *, datasets: Sequence[str] | None = None, flows: Sequence[str] | None = None,
    bases: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
    steps: int | None = None, out: str | Path | None = None,
    results_dir: str | Path = "results", fresh: bool = False, jobs: int | None = None,
    threads: int = 1, retry_failed: bool = False, measure: bool = True, report: bool = True,
    tuned: bool = False, storage: str | None = None, compile: bool = False,
    device: str | None = None, precision: str | None = None,
    backend: str = "local", scheduler: str | None = None, cell_timeout: float | None = None,
    registry: Registry | None = None, say: Say | None = None,
    on_record: Callable[[dict[str, Any], int, int], None] | None = None,
    progress: bool = False, started: float | None = None, checkpoint_every: float = 10.0,
) -> Run:
    """Train and evaluate every cell of ``suite`` (a registered name or a ``.toml`` suite
    file), record each as it finishes, then the baselines, the cost study and the report.

    The run folder is ``out``, or the latest folder under ``results_dir`` holding this same
    run (resumed: finished cells are not retrained), or a new ``<suite>-<timestamp>``. The
    process owns the folder while it works (a second one is refused). Ctrl-C stops training;
    what finished is on disk and the returned run says ``interrupted``. ``say`` receives
    one-line messages, ``on_record(record, done, total)`` each finished cell; ``progress`` draws
    per-step bars for cells trained in this process; ``started`` (a ``time.perf_counter()``
    value) counts the time before this call as start-up. ``device`` (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``; default: the suite's) and ``precision`` (``fp32``, ``tf32``, ``bf16``)
    choose the arithmetic (see ``flowbench.device``); a GPU run is a separate run. With no
    ``jobs``, a GPU run uses one worker (raise it to share the GPU between processes). A cell
    in training saves its state every ``checkpoint_every`` minutes (0: never) and at Ctrl-C to
    ``RUN/checkpoints/``, and the next run of the same command continues it from there (see
    ``flowbench.checkpoint``).
    """
    import torch

    say = say or (lambda text: None)
    registry, suite = use_suite(registry or get_registry(), suite)
    gpu_default_jobs = jobs is None
    jobs = _check_options(jobs, threads, steps, backend, scheduler, cell_timeout)
    try:
        checkpoint_minutes(checkpoint_every)
    except ValueError as error:
        raise PlanError(str(error)) from None
    torch.set_num_threads(threads)  # in-process cells and the cost measurements
    plan = plan_run(registry, suite, datasets, flows, bases, seeds, steps, measure=measure,
                    compile=compile, device=device, precision=precision,
                    device_here=backend != "dask")
    if tuned:
        storage = check_storage(storage or default_storage(Path(results_dir), plan.suite))
        plan = _tuned(plan, registry, storage, steps, measure, compile, precision)
    elif storage:
        raise PlanError("a storage is only used by tuned runs (and by tuning)")
    _check_datasets(registry, plan)
    chosen = device_choice(plan, device or registry.spec("suite", suite).device)
    if gpu_default_jobs and chosen["device"] != "cpu" and backend == "local":
        jobs = 1
    config = {**plan.config(), "config_hash": plan.config_hash()}
    folder, resuming = choose_folder(plan, config, Path(out) if out else None,
                                     Path(results_dir), fresh)
    store = RunStore(folder)
    phases = {"start-up": time.perf_counter() - started} if started is not None else {}
    clock = time.perf_counter()

    def phase_done(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - clock
        clock = now

    run = Run(folder, plan, [], resuming, phase_seconds=phases)
    with store.writing("flowbench run"):
        store.check()
        if not resuming:
            store.write_config(config)
        store.add_session_metadata(metadata.collect({"jobs": jobs, "threads": threads,
                                                     **chosen}))
        already = {r["cell_id"] for r in store.records()}
        done_before = sum(c.cell_id in already for c in plan.cells)
        say(f"{'resuming' if resuming else 'new'} run {folder}: {len(plan.cells)} cells "
            f"({done_before} already finished), {min(jobs, len(plan.cells))} worker(s), "
            f"{chosen['device_line']}")
        try:
            run.records = execute(plan, store, jobs=jobs, threads=threads,
                                  retry_failed=retry_failed, progress=progress,
                                  on_record=on_record, cell_timeout=cell_timeout,
                                  backend=backend, scheduler=scheduler,
                                  checkpoint_every=checkpoint_every)
            phase_done("training and evaluation")
            measure_costs(plan, store, registry, on_progress=lambda text: say(f"measuring {text}"))
            phase_done("cost study")
        except KeyboardInterrupt:
            run.interrupted = True
            wanted = {c.cell_id for c in plan.cells}
            run.records = [r for r in store.records() if r["cell_id"] in wanted]
        store.write_table(run.records)
        phase_done("tables")
        if report and run.records and not run.interrupted:
            if store.report_is_current():  # nothing new since it was written: keep it
                run.report = store.path / REPORT
            else:
                try:
                    run.report = write_report([folder]).html
                    phase_done("report")
                except KeyboardInterrupt:
                    run.interrupted = True
        store.update_session_metadata({"phase_seconds": phases})
    return run


def tune_suite(
    suite: str, *, datasets: Sequence[str] | None = None, flows: Sequence[str] | None = None,
    bases: Sequence[str] | None = None, trials: int = 20, timeout: float | None = None,
    storage: str | None = None, pruner: str = "median", steps: int | None = None,
    results_dir: str | Path = "results", jobs: int | None = None, backend: str = "local",
    scheduler: str | None = None, registry: Registry | None = None, say: Say | None = None,
    on_study: Callable[[dict[str, Any]], None] | None = None, device: str | None = None,
    precision: str | None = None,
) -> Tuning:
    """One Optuna study per (dataset, flow, base) of ``suite``, continued until each has
    ``trials`` finished trials (see ``flowbench.tune``). The storage (default: a journal file
    under ``results_dir``) is checked and prepared here, once, before any worker starts.
    ``on_study`` receives each task's study summary as it finishes. Ctrl-C stops the workers,
    fails their unfinished trials, and returns with ``interrupted``."""
    say = say or (lambda text: None)
    registry, suite = use_suite(registry or get_registry(), suite)
    jobs = _check_options(jobs, 1, steps, backend, scheduler)
    if trials < 1:
        raise PlanError(f"trials must be >= 1, got {trials}")
    plan = plan_run(registry, suite, datasets, flows, bases, None, steps, measure=False,
                    device=device, precision=precision, device_here=backend != "dask")
    _check_datasets(registry, plan)
    if not registry.spec("suite", suite).train_space and not any(
            registry.spec("flow", f).search_space for f in plan.flows):
        raise NothingToTune(f"nothing to tune: the flows {list(plan.flows)} have no "
                            f"search_space and suite {suite!r} has no train_space")
    storage = check_storage(storage or default_storage(Path(results_dir), plan.suite))
    tasks = study_tasks(plan, storage, trials, timeout, pruner,
                        workers=jobs if backend == "local" else 1)
    names = list(dict.fromkeys(task.name for task in tasks))
    opened = prepare_storage(storage, names)
    where = f"dask {scheduler}" if backend == "dask" else f"{min(jobs, len(tasks))} worker(s)"
    chosen = device_choice(plan, device or registry.spec("suite", suite).device)
    say(f"tuning {len(names)} studies ({trials} trials each) in {shown(storage)}, {where}, "
        f"{chosen['device_line']}")
    latest: dict[str, dict[str, Any]] = {}
    interrupted = False
    try:
        with contextlib.closing(run_tasks([Task("study", time_and_run, (task,)) for task in tasks],
                                          plan.plugins, jobs, backend, scheduler)) as results:
            for _, summary in results:
                if summary["trials"] >= latest.get(summary["study"], {}).get("trials", -1):
                    latest[summary["study"]] = summary
                if on_study is not None:
                    on_study(summary)
    except KeyboardInterrupt:
        interrupted = True
        import optuna

        for name in names:  # the stopped workers' trials: failed, not RUNNING forever
            fail_abandoned_trials(optuna.load_study(study_name=name, storage=opened), opened)
    summaries = [latest[name] for name in names if name in latest]
    csv = None
    if summaries and (not is_database(storage) or storage.startswith("sqlite")):
        csv = Path(storage.replace("sqlite:///", "")).with_name("studies.csv")
        write_atomic(csv, pd.DataFrame(summaries).to_csv(index=False))
    return Tuning(storage, summaries, csv, interrupted)


def write_report(runs: Sequence[str | Path], out: str | Path | None = None, *,
                 figures: bool = True, figure_kinds: Sequence[str] | None = None,
                 figure_datasets: Sequence[str] | None = None) -> Any:
    """Write the report of one run folder (into it), or the comparison of several against the
    first (into ``<first>/comparison``), or into ``out``. A committed reference run is never
    written into: its report goes to ``results/reference-<name>-report`` unless ``out`` says
    otherwise. The run folder written into is locked while the report is written."""
    from .report.build import write_report as build_report

    runs = [Path(run) for run in runs]
    for run in runs:
        if not RunStore(run).exists():
            raise StoreError(f"{run} is not a flowbench run folder (no config.json); give "
                             "folders written by a run")
    first = RunStore(runs[0])
    if out is None and first.is_reference:
        kind = "report" if len(runs) == 1 else "comparison"
        out = Path("results") / f"reference-{runs[0].name}-{kind}"
    target = Path(out) if out is not None else (
        runs[0] if len(runs) == 1 else runs[0] / "comparison")
    owner = next((run for run in runs if target.resolve() in (run.resolve(),
                                                              (run / "comparison").resolve())),
                 None)
    guard = RunStore(owner).writing("flowbench report") if owner is not None \
        else contextlib.nullcontext()
    with guard:
        return build_report(runs, target, figures=figures, figure_kinds=figure_kinds,
                            figure_datasets=figure_datasets)
