"""The toy 2-D generating processes (all but the pinwheel, see :mod:`.pinwheel`): a sampler and an
exact log-density for each, with their constants.

The classic toys follow FFJORD (Grathwohl et al. 2019, ``lib/toy_data.py``):

* ``two_moons``: ``sklearn.datasets.make_moons(n, noise=0.05)``: two half circles of radius 1,
  ``(cos t, sin t)`` and ``(1 - cos t, 0.5 - sin t)``, t in [0, pi], plus N(0, 0.05^2 I).
  sklearn spaces t evenly (half the points per moon); the oracle is the continuous limit
  t ~ U[0, pi], moon chosen with probability 1/2, computed by Gauss-Legendre quadrature over t.
* ``circles``: ``sklearn.datasets.make_circles(n, noise=0.05, factor=0.5)``: circles of radius 1
  and 0.5 (n // 2 points on the outer one, the rest on the inner one; continuous limit: weight 1/2
  each, angle uniform) plus N(0, 0.05^2 I). Closed form with the Bessel function I0.
* ``eight_gaussians``: FFJORD's 8 Gaussians: centre 4 (cos k pi/4, sin k pi/4), std 0.5, the
  whole point divided by 1.414 (FFJORD's constant, not sqrt 2). Closed-form mixture.
* ``checkerboard``: FFJORD's checkerboard: uniform on the 8 squares of side 2 of [-4, 4]^2 whose
  integer-cell indices have an even sum. Density 1/32 on the (closed) support; entropy log 32.
* ``two_spirals``: FFJORD's two spirals, simplified so the density is clean: n = 3 pi sqrt(U),
  point = s (-n cos n, n sin n) / 3 + N(0, 0.1^2 I), s = +-1 with probability 1/2. (FFJORD also
  adds a U[0, 0.5]^2 offset before dividing by 3; dropped here.) Oracle by composite
  Gauss-Legendre quadrature over n (density 2 n / (3 pi)^2 on [0, 3 pi]).
* ``rings``: FFJORD's rings: 4 concentric circles of radius 0.75, 1.5, 2.25, 3 with N(0, 0.08^2 I)
  noise. FFJORD spaces angles evenly with n // 4 points per ring; we draw the ring uniformly and
  the angle ~ U[0, 2 pi) i.i.d., which is exactly the continuous limit. Closed form with I0.

Samplers take ``(n, seed)`` (validated by the caller) and return float64 ``(n, 2)`` in random
order; oracles take finite float64 points ``(N, 2)`` (the caller handles NaN and infinities).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import i0e

from ..quadrature import composite_gauss_legendre, graded

MOONS_NOISE = 0.05
CIRCLES_NOISE = 0.05
CIRCLES_FACTOR = 0.5
EIGHT_RADIUS = 4.0
EIGHT_STD = 0.5
EIGHT_DIVISOR = 1.414
CHECKER_SCALE = 2.0
SPIRAL_MAX_ANGLE = 3.0 * math.pi  # FFJORD's 540 degrees
SPIRAL_DIVISOR = 3.0
SPIRAL_NOISE = 0.1
RINGS_RADII = (0.75, 1.5, 2.25, 3.0)
RINGS_NOISE = 0.08

# --- quadrature settings of the curve oracles ------------------------------------------------
MOONS_PANELS = 64  # composite Gauss-Legendre over t in [0, pi], per moon (panel ~ sigma long)
MOONS_PANEL_NODES = 8
GRADED_LEVELS = 12  # extra geometric panels at each end of a curve (boundary layers)
SPIRAL_PANEL_ARC = 0.2  # arc length of one composite Gauss-Legendre panel (2 sigma)
SPIRAL_PANEL_NODES = 12


# --- samplers ---------------------------------------------------------------------------------


def sample_two_moons(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_moons

    x = make_moons(n, noise=MOONS_NOISE, shuffle=True, random_state=seed)[0]
    return x.astype(np.float64)


def sample_circles(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_circles

    return make_circles(
        n, noise=CIRCLES_NOISE, factor=CIRCLES_FACTOR, shuffle=True, random_state=seed
    )[0].astype(np.float64)


def eight_centers() -> np.ndarray:
    """The 8 mixture centres before FFJORD's division by 1.414."""
    angles = np.arange(8) * (np.pi / 4)
    return EIGHT_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_eight_gaussians(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(8, size=n)
    return (eight_centers()[idx] + EIGHT_STD * rng.standard_normal((n, 2))) / EIGHT_DIVISOR


def sample_checkerboard(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, size=n) * 2 + np.floor(x1) % 2
    return CHECKER_SCALE * np.stack([x1, x2], axis=1)


def sample_two_spirals(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.random(n)) * SPIRAL_MAX_ANGLE
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    curve = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) / SPIRAL_DIVISOR
    return sign[:, None] * curve + SPIRAL_NOISE * rng.standard_normal((n, 2))


def sample_rings(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ring = np.asarray(RINGS_RADII)[rng.integers(len(RINGS_RADII), size=n)]
    angle = rng.random(n) * (2 * np.pi)
    points = ring[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + RINGS_NOISE * rng.standard_normal((n, 2))


# --- oracle building blocks -------------------------------------------------------------------


def log_gauss_mixture(
    x: np.ndarray, centers: np.ndarray, log_weights: np.ndarray, sigma: float
) -> np.ndarray:
    """log sum_j w_j N(x; c_j, sigma^2 I) for x (N, 2), chunked so memory stays ~16 MB."""
    out = np.empty(x.shape[0])
    inv = 0.5 / sigma**2
    c2 = (centers**2).sum(1)
    chunk = max(1, (1 << 21) // max(1, centers.shape[0]))
    for start in range(0, x.shape[0], chunk):
        xs = x[start : start + chunk]
        # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c; the cancellation error is ~1e-16 |x|^2, negligible.
        a = xs @ centers.T
        a *= 2.0
        a -= c2
        a -= (xs**2).sum(1)[:, None]
        a *= inv
        a += log_weights
        m = a.max(1)
        a -= m[:, None]
        np.exp(a, out=a)
        out[start : start + chunk] = m + np.log(a.sum(1))
    return out - math.log(2 * math.pi * sigma**2)


def log_ring_mixture(x: np.ndarray, radii, weights, sigma: float) -> np.ndarray:
    """log-density of rings of the given radii with angle uniform plus N(0, sigma^2 I).

    One ring: exp(-(r^2 + R^2) / (2 s^2)) I0(r R / s^2) / (2 pi s^2); with i0e(a) = e^-a I0(a)
    the exponent becomes -(r - R)^2 / (2 s^2), which never overflows.
    """
    r = np.hypot(x[:, 0], x[:, 1])
    terms = []
    for radius, weight in zip(radii, weights, strict=True):
        a = r * radius / sigma**2
        terms.append(math.log(weight) - (r - radius) ** 2 / (2 * sigma**2) + np.log(i0e(a)))
    return np.logaddexp.reduce(np.stack(terms), axis=0) - math.log(2 * math.pi * sigma**2)


@functools.lru_cache(maxsize=None)
def moons_nodes(
    panels: int = MOONS_PANELS, per_panel: int = MOONS_PANEL_NODES, levels: int = GRADED_LEVELS
) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes on both moons and their log-weights (the two_moons oracle's mixture)."""
    edges = graded(np.linspace(0.0, np.pi, panels + 1), levels)
    t, w = composite_gauss_legendre(edges, per_panel)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    # t ~ U[0, pi] (density 1/pi), moon chosen with probability 1/2.
    log_w = np.log(w / np.pi * 0.5)
    return np.concatenate([upper, lower]), np.concatenate([log_w, log_w])


def spiral_arc_length(t: np.ndarray) -> np.ndarray:
    """Arc length of (-t cos t, t sin t) / 3 from 0 to t (speed sqrt(1 + t^2) / 3)."""
    return (t * np.sqrt(1 + t**2) + np.arcsinh(t)) / (2 * SPIRAL_DIVISOR)


@functools.lru_cache(maxsize=None)
def spiral_nodes(
    panel_arc: float = SPIRAL_PANEL_ARC,
    panel_nodes: int = SPIRAL_PANEL_NODES,
    levels: int = GRADED_LEVELS,
) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes on both spirals and their log-weights (the two_spirals oracle's
    mixture)."""
    # Panels of equal arc length keep the node spacing along the curve (~0.02) far below sigma.
    fine = np.linspace(0.0, SPIRAL_MAX_ANGLE, 200001)
    arc = spiral_arc_length(fine)
    n_panels = int(math.ceil(arc[-1] / panel_arc))
    edges = np.interp(np.linspace(0.0, arc[-1], n_panels + 1), arc, fine)
    edges[0], edges[-1] = 0.0, SPIRAL_MAX_ANGLE
    t, w = composite_gauss_legendre(graded(edges, levels), panel_nodes)
    curve = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) / SPIRAL_DIVISOR
    # n = c sqrt(U) has density 2 n / c^2 on [0, c]; each spiral has probability 1/2.
    log_w = np.log(w * 2 * t / SPIRAL_MAX_ANGLE**2 * 0.5)
    return np.concatenate([curve, -curve]), np.concatenate([log_w, log_w])


# --- oracles ----------------------------------------------------------------------------------


def log_prob_two_moons(x: np.ndarray) -> np.ndarray:
    return log_gauss_mixture(x, *moons_nodes(), MOONS_NOISE)


def log_prob_circles(x: np.ndarray) -> np.ndarray:
    return log_ring_mixture(x, (1.0, CIRCLES_FACTOR), (0.5, 0.5), CIRCLES_NOISE)


def log_prob_eight_gaussians(x: np.ndarray) -> np.ndarray:
    centers = eight_centers() / EIGHT_DIVISOR
    return log_gauss_mixture(x, centers, np.full(8, -math.log(8)), EIGHT_STD / EIGHT_DIVISOR)


def log_prob_checkerboard(x: np.ndarray) -> np.ndarray:
    """log(1/32) on the closed support, -inf elsewhere.

    The support is closed so that a point rounded onto a square's edge (e.g. by float32) keeps a
    finite log-density; edges have measure zero, so this is the same density.
    """
    z = x / CHECKER_SCALE
    lo = np.ceil(z) - 1  # the cells whose closure contains z: one, or two on an integer
    hi = np.floor(z)
    inside = np.zeros(x.shape[0], dtype=bool)
    for i in (lo[:, 0], hi[:, 0]):
        for j in (lo[:, 1], hi[:, 1]):
            ok = (i >= -2) & (i <= 1) & (j >= -2) & (j <= 1) & ((i + j) % 2 == 0)
            inside |= ok
    return np.where(inside, -math.log(32.0), -np.inf)


def log_prob_two_spirals(x: np.ndarray) -> np.ndarray:
    return log_gauss_mixture(x, *spiral_nodes(), SPIRAL_NOISE)


def log_prob_rings(x: np.ndarray) -> np.ndarray:
    k = len(RINGS_RADII)
    return log_ring_mixture(x, RINGS_RADII, (1.0 / k,) * k, RINGS_NOISE)
