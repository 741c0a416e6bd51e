"""The pruners ``flowbench tune`` offers: which trials Optuna stops early on their validation NLL.

Light to import (Optuna is imported when a pruner is made), so the command line can list them.
"""

from __future__ import annotations

from typing import Any

#: name -> what it does
PRUNERS = {
    "median": "stop a trial whose validation NLL is worse than the median of earlier trials at "
              "the same step (after 4 trials)",
    "hyperband": "Optuna's Hyperband (successive halving over several brackets)",
    "none": "never stop a trial early",
}


def make_pruner(name: str) -> Any:
    """The Optuna pruner called ``name`` (see :data:`PRUNERS`)."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; valid choices: {', '.join(PRUNERS)}")
