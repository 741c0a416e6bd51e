"""Figures of a ``--tuned`` run's Optuna studies: the optimisation history and the
hyperparameter importances, one panel per study."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..rundata import RunData
from .style import DATA_COLOR, MODEL_COLOR, grid, write_figure


def _studies(run: RunData) -> list[Any]:
    """The Optuna studies a ``--tuned`` run used, loaded from the storage its config names
    (empty when the run was not tuned or the storage is out of reach)."""
    tuning = run.config.get("tuning") or {}
    if not tuning.get("studies"):
        return []
    import optuna

    from ...tune import open_storage

    try:
        storage = open_storage(tuning["storage"])
        return [optuna.load_study(study_name=name, storage=storage)
                for name in tuning["studies"]]
    except Exception as error:  # noqa: BLE001 - a missing storage only costs these figures
        warnings.warn(f"tuning figures skipped: cannot open {tuning['storage']}: {error}",
                      stacklevel=2)
        return []


def _short(study: Any) -> str:
    return study.study_name.split("/", 1)[-1]


def tuning_history_figure(studies: Sequence[Any]) -> Figure | None:
    """Optuna's optimisation history per study: each trial's value and the best so far."""
    import optuna

    if not studies:
        return None
    facets = grid(len(studies), 2.3, 1.9)
    for ax, study in zip(facets.axes, studies, strict=True):
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        numbers = [t.number for t in complete]
        values = [t.value for t in complete]
        ax.scatter(numbers, values, s=8, color=DATA_COLOR, label="trial")
        best = np.minimum.accumulate(values) if values else []
        ax.step(numbers, best, where="post", color=MODEL_COLOR, label="best so far")
        pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
        if pruned:
            ax.scatter(pruned, [max(values or [0])] * len(pruned), marker="|",
                       color="0.3", label="pruned")
        if values:
            low, high = min(values), float(np.quantile(values, 0.9))
            ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
        ax.set_title(_short(study), fontsize=6.5)
        ax.set_xlabel("trial")
        ax.set_ylabel("val NLL")
    facets.axes[0].legend(loc="upper right")
    facets.fig.suptitle("optimisation history (validation NLL; pruned trials at the top)")
    return facets.fig


def tuning_importance_figure(studies: Sequence[Any]) -> Figure | None:
    """Optuna's parameter importances (fANOVA) per study, as horizontal bars."""
    import optuna

    usable = [s for s in studies if sum(
        t.state == optuna.trial.TrialState.COMPLETE for t in s.trials) >= 2]
    if not usable:
        return None
    facets = grid(len(usable), 2.6, 2.0)
    for ax, study in zip(facets.axes, usable, strict=True):
        try:
            importances = optuna.importance.get_param_importances(study, normalize=True)
        except (RuntimeError, ValueError):  # e.g. every trial has the same parameters
            importances = {}
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color=MODEL_COLOR)
        ax.set_xlim(0, 1)
        ax.set_title(_short(study), fontsize=6.5)
        ax.tick_params(axis="y", labelsize=5.5)
    facets.fig.suptitle("hyperparameter importance (Optuna fANOVA, share of variance)")
    return facets.fig


def tuning(run: RunData, out_dir: Path) -> list[Path]:
    """``tuning_history.png`` and ``tuning_importance.png`` for a ``--tuned`` run."""
    studies = _studies(run)
    return (write_figure(lambda: tuning_history_figure(studies),
                         Path(out_dir) / "tuning_history.png")
            + write_figure(lambda: tuning_importance_figure(studies),
                           Path(out_dir) / "tuning_importance.png"))
