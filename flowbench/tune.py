"""Optuna studies: every flow tuned the same way, on validation NLL only, resumably and in parallel.

One study per (suite, dataset, flow, base), named ``"<suite>/<dataset>/<flow>/<base>"``. A trial
draws the flow's hyperparameters from its spec's ``search_space``, the base's from its own, and
the training settings from the suite's ``train_space`` (parameter names are prefixed ``flow.``,
``base.`` and ``train.`` so they cannot collide), trains with the suite's first seed and returns
the best validation NLL. The validation NLL measured during training is reported to Optuna, so
a pruner (median by default, or Hyperband) stops hopeless trials early. The test split is never
read here.

Storage is Optuna's (``flowbench.storage``): by default a journal file inside the results folder
(no server needed, safe for several processes on one machine); a database URL
(``postgresql://...``) lets processes on many machines work on the same studies. Re-running
continues a study up to the requested number of finished trials (complete, pruned or failed);
concurrent tuners share that budget. A trial whose loss or validation NLL goes non-finite is
recorded as failed (user attribute ``status``: ``diverged``), never as a value.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna
import torch

from .api import build_cell_flow
from .budget import BudgetLock
from .cell import cached_dataset, worker_registry
from .plan import Cell, RunPlan
from .pruners import make_pruner
from .storage import WORKER_ATTR, fail_abandoned_trials, open_storage, shown
from .train import TrainConfig, fit

PREFIXES = ("flow.", "base.", "train.")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL)
#: what counts against a study's trial budget: finished trials and those running (a worker
#: counts and creates its next trial under the study's lock, ``flowbench.budget``)
COUNTED = FINISHED + (optuna.trial.TrialState.RUNNING,)


def study_name(suite: str, dataset: str, flow: str, base: str) -> str:
    return f"{suite}/{dataset}/{flow}/{base}"


def default_storage(results_dir: Path, suite: str) -> str:
    """Where ``flowbench tune`` keeps its studies unless told otherwise."""
    return str((Path(results_dir) / f"{suite}-tuning" / "optuna.journal").resolve())


class _Prefixed:
    """A view of a trial that prefixes every parameter name (``width`` -> ``flow.width``)."""

    def __init__(self, trial: optuna.Trial, prefix: str):
        self._trial, self._prefix = trial, prefix

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._trial, name)
        if not name.startswith("suggest_"):
            return method
        return lambda param, *args, **kwargs: method(self._prefix + param, *args, **kwargs)


def split_params(params: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """``{"flow.width": 64, "train.lr": 1e-3, ...}`` -> (flow, base, train) dictionaries."""
    parts: tuple[dict, dict, dict] = ({}, {}, {})
    for key, value in params.items():
        for part, prefix in zip(parts, PREFIXES, strict=True):
            if key.startswith(prefix):
                part[key[len(prefix):]] = value
    return parts


def suggest(space: Any, trial: Any, event_shape: tuple[int, ...]) -> dict[str, Any]:
    """Call a ``search_space``: ``space(trial)``, or ``space(trial, event_shape)`` when it takes
    the data's event shape (flows with vector and image forms tune different settings)."""
    if space is None:
        return {}
    parameters = inspect.signature(space).parameters
    return dict(space(trial, event_shape) if len(parameters) >= 2 else space(trial))


@dataclass(frozen=True)
class StudyTask:
    """Everything a worker needs to contribute trials to one study: the cell it tunes (the
    suite's first seed, the suite's settings as the starting point) and where the study lives."""

    cell: Cell
    storage: str
    trials: int
    plugins: tuple[str, ...] = ()
    timeout: float | None = None
    pruner: str = "median"

    @property
    def name(self) -> str:
        return study_name(self.cell.suite, self.cell.dataset, self.cell.flow, self.cell.base)


def study_tasks(plan: RunPlan, storage: str, trials: int, timeout: float | None = None,
                pruner: str = "median", workers: int = 1) -> list[StudyTask]:
    """Tasks for every (dataset, flow, base) of the plan (the suite's first seed is used). With
    more ``workers`` than studies, each study gets several tasks that share its trial budget,
    so every worker has trials to run."""
    make_pruner(pruner)  # validate early
    first_seed = [cell for cell in plan.cells if cell.seed == plan.seeds[0]]
    copies = max(1, workers // max(1, len(first_seed)))
    return [StudyTask(cell, storage, trials, plan.plugins, timeout, pruner)
            for cell in first_seed for _ in range(copies)]


def _study_seed(name: str) -> int:
    return sum(ord(c) * 31 ** i for i, c in enumerate(name)) % (2**31)


class TrialSeededTPE(optuna.samplers.TPESampler):
    """TPE whose random state is re-seeded from (study seed, trial number) before each trial.

    One seed per sampler would make two tuners that start together on one storage draw the same
    start-up suggestions (each trial evaluated twice); trial numbers are unique in the storage,
    so this stays deterministic for one tuner and distinct across concurrent ones.
    """

    def __init__(self, seed: int, **options: Any):
        super().__init__(seed=seed, **options)
        self._base_seed = seed

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seed = (self._base_seed + 1_000_003 * trial.number) % (2**32)
        self._rng.rng.seed(seed)
        self._random_sampler._rng.rng.seed((seed + 1) % (2**32))
        super().before_trial(study, trial)


def run_study(task: StudyTask, threads: int = 1) -> dict[str, Any]:
    """Add trials to ``task``'s study until ``task.trials`` are finished or running (or the
    timeout passes); return its summary. Safe to run in several processes, on several machines,
    at once: each takes its next trial under the study's budget lock."""
    torch.set_num_threads(threads)
    cell = task.cell
    registry = worker_registry(task.plugins)
    flow_spec, base_spec = registry.spec("flow", cell.flow), registry.spec("base", cell.base)
    train_space = registry.spec("suite", cell.suite).train_space
    dataset = cached_dataset(cell.dataset, cell.data_seed, task.plugins)
    storage = open_storage(task.storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, study_name=task.name, direction="minimize", load_if_exists=True,
        sampler=TrialSeededTPE(seed=_study_seed(task.name)), pruner=make_pruner(task.pruner),
    )
    lock = BudgetLock(task.storage, task.name)

    def objective(trial: optuna.Trial) -> float:
        # named before the lock goes: a nameless RUNNING trial seen under the lock is orphaned
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        lock.release()  # this trial exists now: other workers may take theirs
        shape = dataset.event_shape
        flow_hparams = {**cell.flow_hparams,
                        **suggest(flow_spec.search_space, _Prefixed(trial, "flow."), shape)}
        base_hparams = {**cell.base_hparams,
                        **suggest(base_spec.search_space, _Prefixed(trial, "base."), shape)}
        train = {**cell.train, **(dict(train_space(_Prefixed(trial, "train.")))
                                  if train_space else {})}
        trial_cell = dataclasses.replace(cell, flow_hparams=flow_hparams,
                                         base_hparams=base_hparams, train=train)
        torch.manual_seed(cell.seed)
        flow = build_cell_flow(dataclasses.asdict(trial_cell), dataset, registry)

        config = TrainConfig(**train)

        def report(row: dict[str, float]) -> None:
            step, value = int(row["step"]), row["val_nll"]
            if value == value and abs(value) != float("inf"):
                trial.report(value, step)
                # a trial that reached its last step is complete, not pruned
                if step < config.steps and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step}")

        result = fit(flow, dataset.train, dataset.val, config, seed=cell.seed, on_eval=report,
                     dequantise=dataset.levels is not None)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("steps_done", result.steps_done)
        if result.status != "ok":  # diverged (or timed out): a failed trial, never a value
            trial.set_user_attr("message", result.message)
            return float("nan")  # Optuna records a NaN objective as a failed trial
        return result.best_val_nll

    started = time.monotonic()
    try:
        while task.timeout is None or time.monotonic() - started < task.timeout:
            # count and take the next trial under the study's lock: never one over the budget
            lock.acquire()
            try:
                # trials whose process died (a kill between creating and naming one included)
                # count as failed, not as running forever
                fail_abandoned_trials(study, storage, wait=0.0, budget_locked=lock.exclusive)
                taken = sum(t.state in COUNTED for t in study.get_trials(deepcopy=False))
                if taken >= task.trials:
                    break
                study.optimize(objective, n_trials=1, catch=())
            finally:
                lock.release()
    finally:
        lock.close()
    return summarise_study(study)


def summarise_study(study: optuna.Study) -> dict[str, Any]:
    """Counts, best value and best parameters (split into flow / base / train)."""
    states = [t.state for t in study.trials]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "trials": len(states),
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "failed": states.count(optuna.trial.TrialState.FAIL),
        "running": states.count(optuna.trial.TrialState.RUNNING),
        "best_val_nll": float("nan"), "flow_hparams": {}, "base_hparams": {}, "train": {},
        "best_trial": None,
    }
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = min(complete, key=lambda t: t.value)
        flow, base, train = split_params(best.params)
        summary.update(best_val_nll=best.value, flow_hparams=flow, base_hparams=base,
                       train=train, best_trial=best.number)
    return summary


class StudyMissing(LookupError):
    """``run --tuned`` needs studies that do not exist (yet) or have no complete trial."""


def best_settings(storage: str, suite: str, combos: list[tuple[str, str, str]]
                  ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The best trial's settings of every (dataset, flow, base) study of ``suite``."""
    opened = open_storage(storage, create=True)
    found, missing = {}, []
    for combo in combos:
        name = study_name(suite, *combo)
        try:
            summary = summarise_study(optuna.load_study(study_name=name, storage=opened))
        except KeyError:
            summary = None
        if summary is None or summary["best_trial"] is None:
            missing.append(name)
        else:
            found[combo] = summary
    if missing:
        raise StudyMissing(
            f"no tuned settings in {shown(storage)} for {len(missing)} combination(s): "
            f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}; tune suite "
            f"{suite!r} into the same storage first")
    return found


def time_and_run(task: StudyTask, threads: int = 1) -> dict[str, Any]:
    """``run_study`` with its wall time (for the progress lines)."""
    start = time.perf_counter()
    summary = run_study(task, threads)
    summary["seconds"] = time.perf_counter() - start
    return summary
