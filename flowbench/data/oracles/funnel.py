"""Neal's funnel (Neal 2003, Slice sampling, Ann. Statist. 31(3), section 8):
v ~ N(0, 3^2) and, given v, the other D - 1 coordinates i.i.d. N(0, e^v).

The scale e^(v/2) of the other coordinates spans e^-3 to e^3 within 2 sd of v (e^-4.5 to e^4.5
within 3 sd): a narrow neck, where a model needs very fine resolution, joined to a wide mouth.
The data are left unscaled on purpose.
Entropy in closed form: H = H(v) + (D - 1) E_v[log sqrt(2 pi e e^v)] = D/2 log(2 pi e) + log 3,
since E[v] = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .family import OracleFamily

#: standard deviation of the neck coordinate v (Neal's 3)
V_SCALE = 3.0
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Funnel:
    """Neal's funnel in ``dim`` dimensions; coordinate 0 is v."""

    dim: int

    @property
    def entropy(self) -> float:
        return 0.5 * self.dim * (_LOG_2PI + 1.0) + math.log(V_SCALE)

    @property
    def entropy_method(self) -> str:
        return "closed form: D/2 log(2 pi e) + log 3 (E[v] = 0)"

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        v = V_SCALE * rng.standard_normal(n)
        x = np.exp(0.5 * v)[:, None] * rng.standard_normal((n, self.dim - 1))
        return np.concatenate([v[:, None], x], axis=1)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        v, rest = x[:, 0], x[:, 1:]
        k = self.dim - 1
        # (sum x^2) e^-v as exp(log(sum x^2) - v): 0, not 0 * inf, at x = 0 with v << 0.
        with np.errstate(divide="ignore"):
            log_sq = np.log(np.square(rest).sum(axis=1))
        log_v = -0.5 * (v / V_SCALE) ** 2 - math.log(V_SCALE) - 0.5 * _LOG_2PI
        return log_v - 0.5 * k * (_LOG_2PI + v) - 0.5 * np.exp(log_sq - v)

    def info(self) -> dict:
        return {"v_scale": V_SCALE, "neck_coordinate": 0}



def build(dim: int, rng: np.random.Generator) -> Funnel:
    """The density for ``dim``; it has no random parameters, so ``rng`` is unused."""
    return Funnel(dim)


FAMILY = OracleFamily(
    name="funnel",
    description=(
        "Neal's funnel: v ~ N(0, 3^2), the other D-1 coordinates N(0, e^v) given v; tests scale "
        "that varies by orders of magnitude across the data (narrow neck, wide mouth)"
    ),
    reference="Neal 2003, Slice sampling, Annals of Statistics 31(3):705-767, section 8",
    min_dim=2,
    oracle_method="closed form: log N(v; 0, 9) + sum_i log N(x_i; 0, e^v)",
    build=build,
)
