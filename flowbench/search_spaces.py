"""Pieces of Optuna search spaces that several flow recipes share (so they tune alike).

Each takes an Optuna trial (or flowbench's prefixing view of one) and returns hyperparameters.
"""

from __future__ import annotations

from typing import Any, Sequence


def mlp_conditioner(trial: Any, widths: Sequence[int] = (32, 64, 128)) -> dict[str, Any]:
    """Width (one of ``widths``), depth and activation of MLP conditioners
    (``flowbench.layers.mlp_factory``)."""
    return {
        "width": trial.suggest_categorical("width", list(widths)),
        "depth": trial.suggest_int("depth", 1, 3),
        "activation": trial.suggest_categorical("activation", ["relu", "elu", "tanh"]),
    }


def resnet_conditioner(trial: Any, max_blocks: int = 4) -> dict[str, Any]:
    """Channels and residual blocks of convolutional conditioners (``resnet_factory``)."""
    return {
        "hidden": trial.suggest_categorical("hidden", [16, 32, 64]),
        "blocks": trial.suggest_int("blocks", 1, max_blocks),
    }


def scale_bound(trial: Any) -> dict[str, Any]:
    """The soft clamp of affine couplings' log-scales."""
    return {"scale_bound": trial.suggest_float("scale_bound", 1.0, 5.0)}


def halvings(sizes: Any) -> int:
    """How many times every one of ``sizes`` (e.g. an image's H and W) halves exactly: the most
    squeezes a multiscale architecture can apply."""
    count = 0
    while all(int(size) % 2 ** (count + 1) == 0 for size in sizes):
        count += 1
    return count
