"""High-dimensional datasets with exact oracle densities and true entropies, in any D.

Five families, each a density whose log-density is exact and whose entropy is known in closed
form or to a stated accuracy, so a flow's test NLL in D dimensions can be compared with the
best achievable:

* ``funnel`` -- Neal's funnel: scale varying by orders of magnitude;
* ``banana`` -- a chain of twisted-Gaussian bananas: curved dependence;
* ``heavy_tails`` -- rotated i.i.d. Student-t (nu = 3): polynomial tails;
* ``mixture`` -- a random full-covariance Gaussian mixture: the control that ``ref:gmm`` can fit;
* ``shells`` -- nested thin hyperspherical shells: a hole and curved support.

A density's fixed parameters (rotations, mixture parameters) are drawn from a generator seeded
by the family and D only; a dataset's ``seed`` changes its samples, never its density. The
dataset ``<family>-<D>`` (:func:`oracle_name`) is :func:`load_oracle`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from ..dataset import Dataset, as_float32, split_tensor
from . import banana, funnel, heavy_tails, mixture, shells
from .family import OracleDensity, OracleFamily, parameter_seed

#: every family by name
FAMILIES: dict[str, OracleFamily] = {
    family.name: family
    for family in (funnel.FAMILY, banana.FAMILY, heavy_tails.FAMILY, mixture.FAMILY,
                   shells.FAMILY)
}
#: the dimensions registered as named datasets ``<family>-<D>``
REGISTERED_DIMS: tuple[int, ...] = (4, 8, 16, 32, 64)
#: default split sizes, as for the toy 2-D datasets
SPLITS: tuple[int, int, int] = (20000, 5000, 10000)

__all__ = [
    "FAMILIES", "REGISTERED_DIMS", "SPLITS", "OracleDensity", "OracleFamily", "family",
    "load_oracle", "oracle_name", "parse_oracle_name", "sample_oracle",
]


def family(name: str) -> OracleFamily:
    """The named family, or ValueError naming it and the valid choices."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown oracle family {name!r}; valid choices: {', '.join(FAMILIES)}"
        ) from None


def oracle_name(family_name: str, dim: int) -> str:
    """The dataset name of a family in ``dim`` dimensions, e.g. ``funnel-16``."""
    return f"{family_name}-{dim}"


def parse_oracle_name(name: str) -> tuple[str, int] | None:
    """(family, D) when ``name`` is ``<family>-<D>`` with a known family and D written in
    decimal without leading zeros; None otherwise. D is not checked against the family's
    ``min_dim`` here: :func:`load_oracle` rejects it with the valid range."""
    if not isinstance(name, str):
        return None
    prefix, _, digits = name.rpartition("-")
    if prefix not in FAMILIES or not digits.isdecimal() or digits != str(int(digits)):
        return None
    return prefix, int(digits)


def _torch_log_prob(family_name: str, dim: int, x: Tensor) -> Tensor:
    """Oracle on tensors: any float dtype in, float64 (N,) out, on the input's device."""
    values = FAMILIES[family_name].log_prob(dim, x.detach().to("cpu", torch.float64).numpy())
    return torch.from_numpy(values).to(x.device)


def load_oracle(
    family_name: str, dim: int, seed: int = 0, n_train: int = SPLITS[0], n_val: int = SPLITS[1],
    n_test: int = SPLITS[2],
) -> Dataset:
    """The dataset ``<family>-<dim>``: one seeded i.i.d. draw of n_train + n_val + n_test points
    (float32), cut in order, with the exact oracle and entropy."""
    record = family(family_name)
    dim = record.check_dim(dim)
    for label, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{label} must be a non-negative integer, got {value!r}")
    total = int(n_train) + int(n_val) + int(n_test)
    data = as_float32(record.sample(dim, total, seed))
    train, val, test = split_tensor(data, int(n_train), int(n_val), int(n_test))
    density = record.density(dim)
    return Dataset(
        name=oracle_name(record.name, dim),
        train=train,
        val=val,
        test=test,
        event_shape=(dim,),
        kind="vector",
        log_prob=functools.partial(_torch_log_prob, record.name, dim),
        entropy=float(density.entropy),
        oracle_method=record.oracle_method,
        entropy_method=density.entropy_method,
        description=record.description,
        info={
            "family": record.name,
            "dim": dim,
            "seed": int(seed),
            "n_total": total,
            "rng": "numpy default_rng(SeedSequence([stream, crc32(family), D, seed]))",
            "parameter_seed": parameter_seed(record.name, dim),
            "reference": record.reference,
            **density.info(),
        },
    )


def sample_oracle(family_name: str, dim: int, n: int, seed: int) -> np.ndarray:
    """``n`` float64 points of ``<family>-<dim>`` (the draw :func:`load_oracle` cuts)."""
    return family(family_name).sample(dim, n, seed)
