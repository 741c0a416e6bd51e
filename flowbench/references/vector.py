"""Reference densities for vector data (``kind="vector"``), NLLs in nats per example in the
original data space:

* ``gaussian``: one full-covariance Gaussian, maximum likelihood on train (closed form).
* ``gmm``: scikit-learn ``GaussianMixture(covariance_type="full", random_state=seed)``, fitted by
  EM (Dempster, Laird & Rubin 1977); the number of components is chosen by validation NLL from
  :data:`GMM_COMPONENTS` (capped by the train size, see :func:`gmm_component_grid`), then the
  chosen fit is continued to a tighter EM tolerance.
* ``kde``: scikit-learn ``KernelDensity(kernel="gaussian")`` (Rosenblatt 1956; Parzen 1962) on
  the data standardised per dimension with the train mean and std (log-det added back); the
  bandwidth is chosen by validation NLL on a half-octave grid of multiples of Scott's rule (Scott
  1992; = Silverman's for 2-D data), searched coarse to fine (see :data:`KDE_COARSE_EXPONENTS`).
  Every fit and every evaluation uses all train points.

About 2-5 s per toy2d dataset at the default sizes (20000 / 5000 / 10000 points), on one core.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

from .common import GMM_POLISH_MAX_ITER, FittedReference, fit_gaussian, nll, polish_chosen

#: The reference methods for vector data, in table order.
METHODS: tuple[str, ...] = ("gaussian", "gmm", "kde")

# --- gmm settings -----------------------------------------------------------------------------
GMM_COMPONENTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
#: A candidate with k components needs at least this many train points per free parameter
#: (k * (D + D (D + 1) / 2 + 1) parameters in all); larger k are dropped from the grid.
GMM_MIN_POINTS_PER_PARAMETER = 5
GMM_SETTINGS: dict = {
    "covariance_type": "full",
    "init_params": "kmeans",
    "n_init": 1,
    "max_iter": 200,
    "tol": 1e-3,
    "reg_covar": 1e-6,
}
#: The chosen model (only) is then continued by warm-started EM to this tolerance, for at most
#: GMM_POLISH_MAX_ITER more iterations: sklearn's default tol of 1e-3 (nats per point per
#: iteration) stops the 32-64 component fits on the toy data after 6-10 iterations, and
#: continuing improves validation NLL by 0.001-0.03 nats (most on checkerboard).
GMM_POLISH_TOL = 1e-4

# --- kde settings -----------------------------------------------------------------------------
#: Bandwidths (standardised units) are Scott's factor n^(-1 / (D + 4)) times 2^(j / 2): a
#: half-octave grid. The search evaluates the octave points KDE_COARSE_EXPONENTS (1/16 ... 1 times
#: Scott's rule), extends by octaves while the best is at an end (within KDE_EXPONENT_RANGE), then
#: evaluates the two half-octave neighbours of the best; the chosen bandwidth is the val-best of
#: all evaluated, a local minimum on the half-octave grid. Wide kernels are the expensive ones with
#: tree sums, and on every toy dataset the optimum is 1/8 ... 1/4 of Scott's rule, so the grid
#: does not start above Scott's rule.
KDE_COARSE_EXPONENTS: tuple[int, ...] = (-8, -6, -4, -2, 0)
KDE_EXPONENT_RANGE: tuple[int, int] = (-16, 6)  # 1/256 ... 8 times Scott's rule
KDE_RTOL = 1e-4
KDE_LEAF_SIZE = 40
#: Up to this dimension the kernel sums go through scikit-learn's k-d tree (approximate within
#: KDE_RTOL); above it they are exact dense sums: a tree prunes nothing in 32-D (every kernel
#: matters at a fitted bandwidth), and sklearn's tree took ~120 s per bandwidth search at 20 000
#: points in 32-D where one matrix product per query chunk takes seconds.
KDE_TREE_MAX_DIM = 3
#: query rows per chunk of the dense sums (a chunk x n_train float64 matrix at a time; 64 rows
#: kept the buffer in cache: 3x faster than 256 at 20 000 train points)
KDE_DENSE_CHUNK = 64


def gmm_component_grid(n_train: int, dim: int) -> tuple[int, ...]:
    """The candidate component counts for ``n_train`` points in ``dim`` dimensions.

    :data:`GMM_COMPONENTS` up to the largest k with at least
    :data:`GMM_MIN_POINTS_PER_PARAMETER` train points per free parameter (always at least 1).
    """
    per_component = dim + dim * (dim + 1) // 2 + 1
    cap = max(1, n_train // (GMM_MIN_POINTS_PER_PARAMETER * per_component))
    return tuple(k for k in GMM_COMPONENTS if k <= cap) or (1,)


def scott_factor(n: int, dim: int) -> float:
    """Scott's rule bandwidth for standardised data, n^(-1 / (d + 4)) (Silverman's rule,
    (n (d + 2) / 4)^(-1 / (d + 4)), is the same number for d = 2)."""
    return float(n) ** (-1.0 / (dim + 4))


def _fit_gaussian(train: np.ndarray, val: np.ndarray, seed: int) -> FittedReference:
    n, dim = train.shape
    if n < dim + 1:
        raise ValueError(f"gaussian reference needs at least {dim + 1} train points, got {n}")
    fit = fit_gaussian(train, val, ridges=(0.0,))
    if fit.density is None:
        raise ValueError(
            "gaussian reference: the train covariance is singular (data on a lower-dimensional "
            "subspace), so its maximum-likelihood density does not exist"
        )
    params = {"covariance": "full", "estimator": "maximum likelihood (mean, covariance / n)",
              "logdet_covariance": fit.density.logdet_covariance}
    selection = f"none: closed-form maximum likelihood on all {n} train points"
    return FittedReference("gaussian", fit.density.log_prob, params, selection, {}, fit.val_nll)


def _fit_gmm(train: np.ndarray, val: np.ndarray, seed: int) -> FittedReference:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    n, dim = train.shape
    grid = gmm_component_grid(n, dim)
    search: dict[int, float] = {}
    best, model = None, None
    with warnings.catch_warnings():
        # Non-convergence is recorded in params ("converged"), not warned about.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in grid:
            candidate = GaussianMixture(n_components=k, random_state=seed, **GMM_SETTINGS)
            candidate.fit(train)
            search[k] = nll(candidate.score_samples(val))
            # Strictly better only: ties go to the smaller model; NaN never wins.
            if model is None or search[k] < search[best] or math.isnan(search[best]):
                best, model = k, candidate
        n_iter = polish_chosen(model, search[best], train, GMM_POLISH_TOL)
    val_nll = nll(model.score_samples(val))
    params = {"n_components": best, **GMM_SETTINGS, "random_state": seed,
              "polish_tol": GMM_POLISH_TOL, "polish_max_iter": GMM_POLISH_MAX_ITER,
              "n_iter": n_iter, "converged": bool(model.converged_)}
    capped = "" if grid == GMM_COMPONENTS else (
        f" (grid capped at {max(grid)}: >= {GMM_MIN_POINTS_PER_PARAMETER} train points per "
        "parameter)")
    tried = ", ".join(f"{k}: {v:.4f}" for k, v in search.items())
    selection = (
        f"n_components by val NLL over {grid}{capped}, each fitted (EM tol "
        f"{GMM_SETTINGS['tol']:g}) on all {n} train points; val NLL {{{tried}}}; the chosen "
        f"model then continued to EM tol {GMM_POLISH_TOL:g} (at most {GMM_POLISH_MAX_ITER} more "
        f"iterations): val NLL {val_nll:.4f}"
    )
    return FittedReference("gmm", model.score_samples, params, selection, search, val_nll)


def kde_bandwidth_grid(n: int, dim: int) -> dict[int, float]:
    """Every bandwidth the KDE search may try (standardised units), by half-octave exponent j:
    ``scott_factor(n, dim) * 2 ** (j / 2)`` for j in :data:`KDE_EXPONENT_RANGE`."""
    scott = scott_factor(n, dim)
    lo, hi = KDE_EXPONENT_RANGE
    return {j: scott * 2.0 ** (j / 2) for j in range(lo, hi + 1)}


class StandardisedKDE:
    """A Gaussian KDE fitted on per-dimension standardised train data; ``log_prob`` is the
    density in the original space: log p_x(x) = log p_z((x - mean) / std) - sum(log std)."""

    def __init__(self, train: np.ndarray):
        self.shift = train.mean(axis=0)
        self.scale = train.std(axis=0)
        if not np.all(self.scale > 0):
            raise ValueError("kde reference: a dimension of the train split is constant (std 0)")
        self.log_det = float(np.log(self.scale).sum())
        self.z_train = self.standardise(train)
        self.model = None

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.shift) / self.scale

    @property
    def dense(self) -> bool:
        """Exact dense kernel sums (above :data:`KDE_TREE_MAX_DIM`) rather than tree sums."""
        return self.z_train.shape[1] > KDE_TREE_MAX_DIM

    def set_bandwidth(self, bandwidth: float) -> "StandardisedKDE":
        if self.dense:
            self.model = DenseGaussianKDE(self.z_train, bandwidth)
            return self
        from sklearn.neighbors import KernelDensity

        self.model = KernelDensity(
            kernel="gaussian", bandwidth=bandwidth, algorithm="kd_tree", atol=0.0,
            rtol=KDE_RTOL, leaf_size=KDE_LEAF_SIZE, breadth_first=True,
        ).fit(self.z_train)
        return self

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return self.model.score_samples(self.standardise(x)) - self.log_det


class DenseGaussianKDE:
    """Exact Gaussian kernel sums in float64: log p(z) = logsumexp_i(-|z - z_i|^2 / 2h^2)
    - log n - D/2 log(2 pi h^2), the squared distances from one matrix product per chunk of
    queries (the same density as scikit-learn's ``KernelDensity(kernel="gaussian")``)."""

    def __init__(self, points: np.ndarray, bandwidth: float):
        if not bandwidth > 0:
            raise ValueError(f"kde bandwidth must be positive, got {bandwidth}")
        self.points = np.ascontiguousarray(points, dtype=np.float64)
        self.squared_norms = np.einsum("ij,ij->i", self.points, self.points)
        self.bandwidth = float(bandwidth)
        n, dim = self.points.shape
        self.log_normaliser = math.log(n) + 0.5 * dim * math.log(2 * math.pi * bandwidth ** 2)

    def score_samples(self, queries: np.ndarray) -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float64)
        out = np.empty(queries.shape[0])
        scale = -0.5 / self.bandwidth ** 2
        query_norms = np.einsum("ij,ij->i", queries, queries)
        for start in range(0, queries.shape[0], KDE_DENSE_CHUNK):
            stop = start + KDE_DENSE_CHUNK
            # in place, one chunk x n_train buffer: at these sizes the sums are memory-bound, and
            # scipy's logsumexp made 3x as many passes over a buffer 8x larger
            squared = queries[start:stop] @ self.points.T
            squared *= -2.0
            squared += self.squared_norms[None, :]
            squared += query_norms[start:stop, None]
            np.maximum(squared, 0.0, out=squared)  # rounding can make a tiny distance negative
            nearest = squared.min(axis=1, keepdims=True)  # logsumexp's shift: the largest term
            squared -= nearest
            squared *= scale
            np.exp(squared, out=squared)
            out[start:stop] = np.log(squared.sum(axis=1)) + scale * nearest[:, 0]
        return out - self.log_normaliser


def _fit_kde(train: np.ndarray, val: np.ndarray, seed: int) -> FittedReference:
    n, dim = train.shape
    kde = StandardisedKDE(train)
    grid = kde_bandwidth_grid(n, dim)
    search: dict[int, float] = {}  # exponent j -> val NLL (original space)

    def evaluate(j: int) -> None:
        if j in grid and j not in search:
            search[j] = nll(kde.set_bandwidth(grid[j]).log_prob(val))

    def best_exponent() -> int:
        finite = {j: v for j, v in search.items() if not math.isnan(v)}
        if not finite:
            raise ValueError("kde reference: every bandwidth gave a NaN validation NLL")
        return min(finite, key=lambda j: (finite[j], -j))  # ties go to the wider kernel

    for j in KDE_COARSE_EXPONENTS:
        evaluate(j)
    while True:  # extend by octaves while the best is at an end of what was tried
        best = best_exponent()
        step = -2 if best == min(search) else 2 if best == max(search) else 0
        if step == 0 or best + step not in grid:
            break
        evaluate(best + step)
    best = best_exponent()
    evaluate(best - 1)
    evaluate(best + 1)
    best = best_exponent()
    bandwidth = grid[best]
    kde.set_bandwidth(bandwidth)
    scott = scott_factor(n, dim)
    params = {
        "kernel": "gaussian", "bandwidth": bandwidth, "bandwidth_over_scott": bandwidth / scott,
        "bandwidth_per_dim": (bandwidth * kde.scale).tolist(),
        "standardise": "per dimension with the train mean and std; log-det added back",
    }
    if kde.dense:
        params["algorithm"] = "exact dense sums (float64)"
        sums = "exact dense kernel sums"
    else:
        params.update({"algorithm": "kd_tree", "rtol": KDE_RTOL, "atol": 0.0,
                       "leaf_size": KDE_LEAF_SIZE})
        sums = f"tree sums with rtol={KDE_RTOL:g} (<= {KDE_RTOL:g} nats per point)"
    tried = ", ".join(f"{grid[j] / scott:.3g}: {search[j]:.4f}" for j in sorted(search))
    selection = (
        f"bandwidth by val NLL on the half-octave grid Scott's rule ({scott:.4g}, standardised "
        f"units) x 2^(j/2): octaves 1/16..1 (extended while the best was at an end), then the "
        f"best's half-octave neighbours; kernels on all {n} train points, {sums}; val NLL by "
        f"multiple of Scott {{{tried}}}"
    )
    return FittedReference("kde", kde.log_prob, params, selection,
                           {grid[j]: v for j, v in search.items()}, search[best])


#: ``fit(train, val, seed)`` by method, train and val float64 ``(N, D)``.
FITTERS: dict[str, Callable[[np.ndarray, np.ndarray, int], FittedReference]] = {
    "gaussian": _fit_gaussian,
    "gmm": _fit_gmm,
    "kde": _fit_kde,
}
