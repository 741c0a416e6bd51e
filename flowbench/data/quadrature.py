"""Numerical tools behind the exact oracles: composite Gauss-Legendre rules (with panels graded
towards the ends), vectorised bisection, and midpoint-grid integrals of a 2-D density.

They are kept apart from the datasets so each oracle reads as its formula, and so the numerical
settings that bound an oracle's error are in one place.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: halvings of the bracket in :func:`bisect`: 60 take a bracket of width 2 pi to ~5e-18
BISECTION_STEPS = 60
#: grid points per block in :func:`midpoint_grid_integrals` (bounds the memory, ~10 MB)
GRID_BLOCK_POINTS = 200_000


def composite_gauss_legendre(edges: np.ndarray, per_panel: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of a Gauss-Legendre rule with ``per_panel`` nodes on each panel."""
    g, gw = np.polynomial.legendre.leggauss(per_panel)
    lo, hi = edges[:-1, None], edges[1:, None]
    return (lo + (g + 1) * (hi - lo) / 2).ravel(), (gw * (hi - lo) / 2).ravel()


def graded(edges: np.ndarray, levels: int) -> np.ndarray:
    """Split the first and last panel geometrically (halving ``levels`` times) towards the ends.

    Far from a curve the integrand can peak at an end of the parameter range and decay like
    exp(-lambda t) with lambda ~ distance / sigma^2; the graded panels resolve that boundary layer.
    """
    if levels <= 0:
        return edges
    frac = 0.5 ** np.arange(levels, 0, -1)  # 2^-levels ... 1/2
    a, b = edges[0], edges[-1]
    head = a + (edges[1] - a) * frac
    tail = b - (b - edges[-2]) * frac[::-1]
    return np.concatenate([[a], head, edges[1:-1], tail, [b]])


def bisect(func: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Vectorised bisection for an increasing ``func`` with func(lo) <= 0 <= func(hi)."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = func(mid) < 0
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def midpoint_grid_integrals(
    log_prob: Callable[[np.ndarray], np.ndarray],
    extent: tuple[float, float, float, float],
    step: float,
) -> tuple[float, float]:
    """(sum p h^2, -sum p log p h^2) over a midpoint grid of spacing ~``step`` on ``extent``
    (xmin, xmax, ymin, ymax), for ``log_prob`` taking points (N, 2).

    The first is the normalisation check, the second the entropy estimate. For integrands that
    are smooth and negligible at the box edges the midpoint rule converges very fast in ``step``.
    """
    x0, x1, y0, y1 = extent
    nx = int(round((x1 - x0) / step))
    ny = int(round((y1 - y0) / step))
    hx, hy = (x1 - x0) / nx, (y1 - y0) / ny
    xs = x0 + hx * (np.arange(nx) + 0.5)
    ys = y0 + hy * (np.arange(ny) + 0.5)
    mass = 0.0
    neg_plogp = 0.0
    rows = max(1, GRID_BLOCK_POINTS // nx)
    for start in range(0, ny, rows):
        gx, gy = np.meshgrid(xs, ys[start : start + rows])
        logp = log_prob(np.stack([gx.ravel(), gy.ravel()], axis=1))
        p = np.exp(logp)
        mass += p.sum()
        neg_plogp -= (p * np.where(p > 0, logp, 0.0)).sum()  # 0 log 0 = 0
    return mass * hx * hy, neg_plogp * hx * hy
