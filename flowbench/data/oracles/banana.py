"""A chain of bananas: Haario et al.'s twisted Gaussian (1999) linked through all D coordinates.

Even coordinates (0, 2, 4, ...) are independent N(0, 1) anchors; each odd coordinate i bends
around its two neighbouring anchors:

    y_i = SIGMA z_i + BEND * sum_{j in {i-1, i+1 mod D}} (y_j^2 - 1),    z_i ~ N(0, 1),

so every adjacent pair of coordinates is a banana, and the links form a chain (a ring when D is
even; D = 2 is one banana). This is a shear of N(0, diag(1, SIGMA^2, 1, SIGMA^2, ...)) with unit
Jacobian (triangular, ones on the diagonal), so the entropy is that Gaussian's exactly:
H = D/2 log(2 pi e) + floor(D/2) log SIGMA.

Why not the recursion y_i = z_i + b (y_{i-1}^2 - c) along the whole chain (the Rosenbrock
function's chain)? Iterated squaring: y_D grows like z_1^(2^(D-1)), and once one coordinate
exceeds ~1/b the rest run away, so at D = 64 samples overflow for any bend strong enough to see
(a saturating bend avoids that, but then the chain's scale drifts along the coordinates).
Anchoring every link on a Gaussian keeps every coordinate at unit scale in any D.

With SIGMA = 0.5 and BEND = 0.45 a bent coordinate has variance 0.25 + 4 * 0.45^2 = 1.06 and is
uncorrelated with the anchors; the best Gaussian fit loses about 0.62 nats per bent coordinate
(0.31 per dimension; 0.48 for the single banana of D = 2): clearly non-Gaussian, yet one
coupling layer whose mask conditions the odd coordinates on the even ones can represent it
exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .family import OracleFamily

#: noise scale of a bent coordinate around its banana
SIGMA = 0.5
#: bend strength b: the banana's ridge is y_i = b (y_j^2 - 1) per neighbouring anchor j
BEND = 0.45
_LOG_2PI = math.log(2 * math.pi)


def neighbours(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bent coordinates, left anchor of each, right anchor of each or -1 when it has one only)."""
    bent = np.arange(1, dim, 2)
    left = bent - 1
    right = (bent + 1) % dim
    right = np.where(right == left, -1, right)  # D = 2: the ring closes on the same anchor
    return bent, left, right


@dataclass(frozen=True)
class BananaChain:
    """The banana chain in ``dim`` dimensions."""

    dim: int

    @property
    def entropy(self) -> float:
        return 0.5 * self.dim * (_LOG_2PI + 1.0) + (self.dim // 2) * math.log(SIGMA)

    @property
    def entropy_method(self) -> str:
        return ("closed form: unit-Jacobian shear of N(0, diag(1, s^2, 1, s^2, ...)), "
                "H = D/2 log(2 pi e) + floor(D/2) log s")

    def _ridge(self, anchors_sq: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """BEND * sum over each bent coordinate's anchors of (y_j^2 - 1); anchors_sq is y^2."""
        ridge = anchors_sq[:, left] - 1.0
        two = right >= 0
        ridge[:, two] += anchors_sq[:, right[two]] - 1.0
        return BEND * ridge

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        y = rng.standard_normal((n, self.dim))
        bent, left, right = neighbours(self.dim)
        y[:, bent] = SIGMA * y[:, bent] + self._ridge(np.square(y), left, right)
        return y

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        bent, left, right = neighbours(self.dim)
        z = x.copy()
        z[:, bent] = (x[:, bent] - self._ridge(np.square(x), left, right)) / SIGMA
        return (-0.5 * np.square(z).sum(axis=1) - 0.5 * self.dim * _LOG_2PI
                - bent.size * math.log(SIGMA))

    def info(self) -> dict:
        return {"sigma": SIGMA, "bend": BEND, "anchors": "even coordinates",
                "ring": self.dim % 2 == 0 and self.dim > 2}



def build(dim: int, rng: np.random.Generator) -> BananaChain:
    """The density for ``dim``; it has no random parameters, so ``rng`` is unused."""
    return BananaChain(dim)


FAMILY = OracleFamily(
    name="banana",
    description=(
        "banana chain: N(0, 1) anchors at even coordinates, each odd one bent around its two "
        "neighbours (Haario's twisted Gaussian per link); tests curved dependence between "
        "neighbouring coordinates"
    ),
    reference=(
        "Haario, Saksman & Tamminen 1999, Adaptive proposal distribution for random walk "
        "Metropolis algorithm, Computational Statistics 14:375-395 (twisted Gaussian); Pagani, "
        "Wiegand & Nadarajah 2022, An n-dimensional Rosenbrock distribution for MCMC testing, "
        "Scandinavian Journal of Statistics"
    ),
    min_dim=2,
    oracle_method="closed form: change of variables through the unit-Jacobian shear",
    build=build,
)
