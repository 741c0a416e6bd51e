"""Optuna studies: every flow tuned the same way, on validation NLL only, resumably and in parallel.

One study per (suite, dataset, flow, base), named ``"<suite>/<dataset>/<flow>/<base>"``. A trial
draws the flow's hyperparameters from its spec's ``search_space``, the base's from its own, and
the training settings from the suite's ``train_space`` (parameter names are prefixed ``flow.``,
``base.`` and ``train.`` so they cannot collide), trains with the suite's first seed and returns
the best validation NLL. The validation NLL measured during training is reported to Optuna, so
a pruner (median by default, or Hyperband) stops hopeless trials early. The test split is never
read here.

Storage is Optuna's: by default a journal file inside the results folder (no server needed,
safe for several processes on one machine); any SQLAlchemy URL (``postgresql://...``) lets
processes on many machines work on the same studies. Re-running continues a study up to the
requested number of finished trials; concurrent tuners share that budget.
"""

from __future__ import annotations

import inspect
import os
import socket
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna
import torch

from .api import build_cell_flow
from .runner import RunPlan, _dataset, _worker_registry
from .train import TrainConfig, fit

PREFIXES = ("flow.", "base.", "train.")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL)
PRUNERS = ("median", "hyperband", "none")
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")


def study_name(suite: str, dataset: str, flow: str, base: str) -> str:
    return f"{suite}/{dataset}/{flow}/{base}"


def default_storage(results_dir: Path, suite: str) -> str:
    """Where ``flowbench tune`` keeps its studies unless told otherwise."""
    return str((Path(results_dir) / f"{suite}-tuning" / "optuna.journal").resolve())


def open_storage(storage: str) -> Any:
    """A database URL is handed to Optuna as is; anything else is a journal file path."""
    scheme = storage.split(":", 1)[0].split("+", 1)[0].lower()
    if "://" in storage and scheme in DATABASE_SCHEMES:
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


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
        for part, prefix in zip(parts, PREFIXES):
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


def _pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; valid choices: {', '.join(PRUNERS)}")


@dataclass(frozen=True)
class StudyTask:
    """Everything a worker needs to contribute trials to one study."""

    suite: str
    dataset: str
    flow: str
    base: str
    seed: int
    data_seed: int
    train: Mapping[str, Any]
    flow_hparams: Mapping[str, Any]
    base_hparams: Mapping[str, Any]
    plugins: tuple[str, ...]
    storage: str
    trials: int
    timeout: float | None = None
    pruner: str = "median"
    preprocessing: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return study_name(self.suite, self.dataset, self.flow, self.base)


def study_tasks(plan: RunPlan, storage: str, trials: int, timeout: float | None = None,
                pruner: str = "median", workers: int = 1) -> list[StudyTask]:
    """Tasks for every (dataset, flow, base) of the plan (the suite's first seed is used). With
    more ``workers`` than studies, each study gets several tasks that share its trial budget,
    so every worker has trials to run."""
    _pruner(pruner)  # validate early
    combos = [(d, f, b) for d in plan.datasets for f in plan.flows for b in plan.bases]
    copies = max(1, workers // max(1, len(combos)))
    return [
        StudyTask(plan.suite, d, f, b, plan.seeds[0], plan.data_seed, plan.train,
                  plan.flow_hparams[f], plan.base_hparams[b], plan.plugins, storage, trials,
                  timeout, pruner, plan.cells[0].preprocessing if plan.cells else {})
        for d, f, b in combos for _ in range(copies)
    ]


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
    """Add trials to ``task``'s study until it has ``task.trials`` finished ones (or the
    timeout passes); return its summary. Safe to run in several processes at once."""
    torch.set_num_threads(threads)
    registry = _worker_registry(task.plugins)
    flow_spec, base_spec = registry.spec("flow", task.flow), registry.spec("base", task.base)
    train_space = registry.spec("suite", task.suite).train_space
    dataset = _dataset(task.dataset, task.data_seed, task.plugins)
    storage = open_storage(task.storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, study_name=task.name, direction="minimize", load_if_exists=True,
        sampler=TrialSeededTPE(seed=_study_seed(task.name)), pruner=_pruner(task.pruner),
    )
    existing = sum(t.state in FINISHED for t in study.trials)

    def objective(trial: optuna.Trial) -> float:
        shape = dataset.event_shape
        flow_hparams = {**task.flow_hparams,
                        **suggest(flow_spec.search_space, _Prefixed(trial, "flow."), shape)}
        base_hparams = {**task.base_hparams,
                        **suggest(base_spec.search_space, _Prefixed(trial, "base."), shape)}
        train = {**task.train, **(dict(train_space(_Prefixed(trial, "train.")))
                                  if train_space else {})}
        torch.manual_seed(task.seed)
        flow = build_cell_flow({"flow": task.flow, "base": task.base,
                                "flow_hparams": flow_hparams, "base_hparams": base_hparams,
                                "preprocessing": task.preprocessing}, dataset, registry)

        config = TrainConfig(**train)

        def report(row: dict[str, float]) -> None:
            step, value = int(row["step"]), row["val_nll"]
            if value == value and abs(value) != float("inf"):
                trial.report(value, step)
                # a trial that reached its last step is complete, not pruned
                if step < config.steps and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step}")

        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        result = fit(flow, dataset.train, dataset.val, config, seed=task.seed, on_eval=report,
                     dequantise=dataset.levels is not None)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("steps_done", result.steps_done)
        if result.status != "ok":
            trial.set_user_attr("message", result.message)
            return float("nan")  # Optuna records the trial as failed
        return result.best_val_nll

    remaining = task.trials - existing
    if remaining > 0:
        study.optimize(
            objective, n_trials=remaining, timeout=task.timeout, catch=(),
            callbacks=[optuna.study.MaxTrialsCallback(task.trials, states=FINISHED)],
        )
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
    opened = open_storage(storage)
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
            f"no tuned settings in {storage} for {len(missing)} combination(s): "
            f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}; run "
            f"`flowbench tune --suite {suite}` (with the same --storage) first")
    return found


def time_and_run(task: StudyTask, threads: int = 1) -> dict[str, Any]:
    """``run_study`` with its wall time (for the progress lines)."""
    start = time.perf_counter()
    summary = run_study(task, threads)
    summary["seconds"] = time.perf_counter() - start
    return summary
