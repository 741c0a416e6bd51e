"""Toy 2-D datasets with exact oracle densities and true differential entropies.

Each dataset is a fixed generating process whose density we can evaluate exactly (closed form,
or a 1-D quadrature / root-finding whose numerical error is far below 1e-6 nats), so a flow's
test NLL can be compared with the best achievable value, the entropy ``H = -E_p[log p]``.
The classic toys follow FFJORD (Grathwohl et al. 2019, ``lib/toy_data.py``) and scikit-learn's
``make_moons`` / ``make_circles``; :mod:`.processes` and :mod:`.pinwheel` define them, and
:data:`TOY2D` holds one :class:`Toy2D` record per dataset.

Entropies were computed once by :func:`compute_entropy` (2-D grid quadrature of -p log p, checked
against a finer grid) and are stored in the records so loading is fast.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from ..dataset import Dataset, as_float32, split_tensor
from ..quadrature import midpoint_grid_integrals
from .catalogue import FFJORD_REFERENCE, TOY2D, Toy2D

TOY2D_NAMES: tuple[str, ...] = tuple(TOY2D)

__all__ = [
    "FFJORD_REFERENCE", "TOY2D", "TOY2D_NAMES", "Toy2D", "compute_entropy", "entropy_toy2d",
    "grid_integrals", "load_toy2d", "log_prob_toy2d", "sample_toy2d",
]


def _record(name: str) -> Toy2D:
    try:
        return TOY2D[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown toy 2-D dataset {name!r}; valid choices: {', '.join(TOY2D_NAMES)}"
        ) from None


def sample_toy2d(name: str, n: int, seed: int) -> np.ndarray:
    """Draw ``n`` points (float64, shape (n, 2), in random order) from the named process.

    Fully determined by ``seed``: sklearn generators get ``random_state=seed``, the others
    ``np.random.default_rng(seed)``.
    """
    record = _record(name)
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return record.sample(int(n), int(seed))


def log_prob_toy2d(name: str, x: np.ndarray) -> np.ndarray:
    """Exact log-density (float64, shape (N,)) of the named process at points ``x`` (N, 2).

    Rows with a NaN give NaN; rows with an infinite coordinate give -inf.
    """
    record = _record(name)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"expected points of shape (N, 2), got {x.shape}")
    finite = np.isfinite(x).all(1)
    out = np.where(np.isnan(x).any(1), np.nan, -np.inf)
    xf = x[finite]
    if xf.shape[0] == 0:
        return out
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        val = record.log_prob(xf)
    # Finite input, so NaN can only come from overflow at astronomically remote points (|x| >
    # ~1e150), where the density underflows anyway.
    out[finite] = np.where(np.isnan(val), -np.inf, val)
    return out


def grid_integrals(
    name: str, step: float, extent: tuple[float, float, float, float] | None = None
) -> tuple[float, float]:
    """(sum p h^2, -sum p log p h^2) over a midpoint grid of spacing ``step`` on ``extent``
    (default: the dataset's), the normalisation check and the entropy estimate."""
    record = _record(name)
    box = record.extent if extent is None else extent
    return midpoint_grid_integrals(functools.partial(log_prob_toy2d, name), box, step)


def compute_entropy(name: str, step: float | None = None) -> float:
    """Recompute the differential entropy (nats) from scratch; takes seconds, see ``entropy``.

    Exact entropies (checkerboard: log 32) are returned as stored; the others use
    :func:`grid_integrals` with the record's ``entropy_grid_step`` unless ``step`` is given.
    """
    record = _record(name)
    if record.entropy_grid_step is None:
        return record.entropy
    _, entropy = grid_integrals(name, record.entropy_grid_step if step is None else step)
    return float(entropy)


def entropy_toy2d(name: str) -> float:
    """The stored true entropy (nats) of the named process."""
    return _record(name).entropy


def _torch_log_prob(name: str, x: Tensor) -> Tensor:
    """Oracle on tensors: any float dtype in, float64 (N,) out, on the input's device."""
    values = log_prob_toy2d(name, x.detach().to("cpu", torch.float64).numpy())
    return torch.from_numpy(values).to(x.device)


def load_toy2d(
    name: str, seed: int = 0, n_train: int = 20000, n_val: int = 5000, n_test: int = 10000
) -> Dataset:
    """Load the named toy dataset: one seeded draw of n_train + n_val + n_test points, cut in order.

    The draw is already in random order (sklearn shuffles; the others are i.i.d.), so cutting it
    gives exchangeable splits.
    """
    record = _record(name)
    for label, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(value) != value or value < 0:
            raise ValueError(f"{label} must be a non-negative integer, got {value!r}")
    total = int(n_train) + int(n_val) + int(n_test)
    data = as_float32(sample_toy2d(name, total, seed))
    train, val, test = split_tensor(data, int(n_train), int(n_val), int(n_test))
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        event_shape=(2,),
        kind="vector",
        log_prob=functools.partial(_torch_log_prob, name),
        entropy=record.entropy,
        oracle_method=record.oracle_method,
        entropy_method=record.entropy_method,
        description=record.description,
        info={
            "seed": int(seed),
            "n_total": total,
            "extent": record.extent,
            "rng": record.rng,
            "reference": record.reference,
        },
    )
