"""``banana``: a sheared Gaussian with an exact density and entropy.

Generating process::

    x1 ~ N(0, 1)
    x2 = CURVATURE * (x1^2 - 1) + N(0, NOISE^2)

The map ``(u1, u2) -> (u1, CURVATURE (u1^2 - 1) + u2)`` is a shear with unit Jacobian, so the exact
density is ``log p(x) = log N(x1; 0, 1) + log N(x2 - CURVATURE (x1^2 - 1); 0, NOISE^2)`` and the
differential entropy is that of the two independent Gaussians,
``H = 0.5 log(2 pi e) + 0.5 log(2 pi e NOISE^2)`` nats.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from flowbench import Dataset
from flowbench.data.dataset import as_float32, split_tensor
from torch import Tensor

NAME = "banana"
CURVATURE = 0.5
NOISE = 0.25
SPLITS = (20000, 5000, 10000)
DESCRIPTION = (f"banana: x1 ~ N(0,1), x2 = {CURVATURE} (x1^2 - 1) + N(0, {NOISE}^2); "
               "exact density (unit-Jacobian shear of a Gaussian)")
ENTROPY = 0.5 * math.log(2 * math.pi * math.e) + 0.5 * math.log(2 * math.pi * math.e * NOISE**2)
ENTROPY_METHOD = ("closed form: 0.5 log(2 pi e) + 0.5 log(2 pi e s^2), the shear "
                  "x2 = b (x1^2 - 1) + e has unit Jacobian")
_LOG_2PI = math.log(2 * math.pi)


def sample(n: int, seed: int = 0) -> np.ndarray:
    """``n`` draws (float64 ``(n, 2)``) from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(n)
    x2 = CURVATURE * (x1**2 - 1.0) + NOISE * rng.standard_normal(n)
    return np.stack([x1, x2], axis=1)


def log_prob(x: Tensor) -> Tensor:
    """Exact ``log p(x)`` (float64 ``(N,)``) of points ``(N, 2)``; module-level, so picklable."""
    x = torch.as_tensor(x).to(torch.float64)
    x1, x2 = x[:, 0], x[:, 1]
    residual = (x2 - CURVATURE * (x1**2 - 1.0)) / NOISE
    return -0.5 * (x1**2 + residual**2) - _LOG_2PI - math.log(NOISE)


def load(seed: int = 0) -> Dataset:
    """Fixed splits (20000/5000/10000, float32) of one seeded draw, with the exact oracle."""
    n_train, n_val, n_test = SPLITS
    total = n_train + n_val + n_test
    train, val, test = split_tensor(as_float32(sample(total, seed)), n_train, n_val, n_test)
    return Dataset(
        name=NAME, train=train, val=val, test=test, event_shape=(2,), kind="vector",
        log_prob=log_prob, entropy=ENTROPY, oracle_method="closed form",
        entropy_method=ENTROPY_METHOD, description=DESCRIPTION,
        info={"seed": int(seed), "n_total": total, "curvature": CURVATURE, "noise": NOISE,
              "rng": "numpy default_rng(seed)"},
    )
