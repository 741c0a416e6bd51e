"""Reference density estimators: the rows every NLL table shows next to the flows.

These are what a user would fit instead of a flow, on the same train/val/test splits, with NLLs
in nats per example in the *original* data space (the KDE standardises internally and adds the
log-determinant back, so every number is comparable with the flows' and the oracle's):

* ``gaussian``: one full-covariance Gaussian, maximum likelihood on train (closed form).
* ``gmm``: scikit-learn ``GaussianMixture(covariance_type="full", random_state=seed)``; the number
  of components is chosen by validation NLL from :data:`GMM_COMPONENTS` (capped by the train size,
  see :func:`gmm_component_grid`), then the chosen fit is continued to a tighter EM tolerance.
* ``kde``: scikit-learn ``KernelDensity(kernel="gaussian")`` on the data standardised per
  dimension with the train mean and std (log-det added back); the bandwidth is chosen by
  validation NLL on a half-octave grid of multiples of Scott's rule (= Silverman's for 2-D data),
  searched coarse to fine (see :data:`KDE_COARSE_EXPONENTS`). Every fit and every evaluation
  uses all train points.

Validation selects; test is evaluated only for the selected setting. Everything runs in float64
with BLAS/OpenMP limited to one thread (``threadpoolctl``), so a given seed gives the same numbers
whatever the machine's core count, and the cost is one core's worth: about 2-5 s per toy2d dataset
at the default sizes (20000 / 5000 / 10000 points).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .data.dataset import Dataset

REFERENCE_METHODS: tuple[str, ...] = ("gaussian", "gmm", "kde")

#: Columns of :func:`reference_nlls`, in order.
COLUMNS: tuple[str, ...] = (
    "dataset", "method", "params", "selection", "train_nll", "val_nll", "test_nll", "fit_seconds",
)

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
GMM_POLISH_MAX_ITER = 50

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


@dataclass
class FittedReference:
    """One fitted reference: its log-density in the original data space (float64 ``(N, D)`` in,
    float64 ``(N,)`` out), the chosen settings, a one-line account of the search, and the
    validation NLL of every candidate tried (setting -> nats)."""

    method: str
    log_prob: Callable[[np.ndarray], np.ndarray]
    params: dict
    selection: str
    search: dict = field(default_factory=dict)
    val_nll: float | None = None


def nll(log_prob: np.ndarray) -> float:
    """Mean negative log-likelihood in nats. Nothing is dropped: a point of zero density
    (log p = -inf) makes it +inf, a NaN makes it NaN."""
    log_prob = np.asarray(log_prob, dtype=np.float64)
    if log_prob.size == 0:
        return float("nan")
    return float(-np.mean(log_prob))


# --- the three methods ------------------------------------------------------------------------


def _fit_gaussian(train: np.ndarray, val: np.ndarray, seed: int) -> FittedReference:
    n, dim = train.shape
    if n < dim + 1:
        raise ValueError(f"gaussian reference needs at least {dim + 1} train points, got {n}")
    mean = train.mean(axis=0)
    centred = train - mean
    cov = centred.T @ centred / n  # maximum likelihood (divides by n)
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError(
            "gaussian reference: the train covariance is singular (data on a lower-dimensional "
            "subspace), so its maximum-likelihood density does not exist"
        ) from None
    half_logdet = float(np.log(np.diag(chol)).sum())
    const = -0.5 * dim * math.log(2 * math.pi) - half_logdet

    def log_prob(x: np.ndarray) -> np.ndarray:
        # solve L z = (x - mean)^T; the Mahalanobis term is |z|^2.
        z = np.linalg.solve(chol, (x - mean).T)
        return const - 0.5 * np.einsum("ij,ij->j", z, z)

    params = {"covariance": "full", "estimator": "maximum likelihood (mean, covariance / n)",
              "logdet_covariance": 2 * half_logdet}
    selection = f"none: closed-form maximum likelihood on all {n} train points"
    return FittedReference("gaussian", log_prob, params, selection, {}, nll(log_prob(val)))


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
        if math.isnan(search[best]):
            raise ValueError("gmm reference: every candidate gave a NaN validation NLL")
        first_iters = int(model.n_iter_)
        # Polish the chosen model only: continue EM from where it stopped with a tighter tol.
        model.set_params(warm_start=True, tol=GMM_POLISH_TOL, max_iter=GMM_POLISH_MAX_ITER)
        model.fit(train)
    val_nll = nll(model.score_samples(val))
    params = {"n_components": best, **GMM_SETTINGS, "random_state": seed,
              "polish_tol": GMM_POLISH_TOL, "polish_max_iter": GMM_POLISH_MAX_ITER,
              "n_iter": first_iters + int(model.n_iter_), "converged": bool(model.converged_)}
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


class _StandardisedKDE:
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

    def set_bandwidth(self, bandwidth: float) -> "_StandardisedKDE":
        from sklearn.neighbors import KernelDensity

        self.model = KernelDensity(
            kernel="gaussian", bandwidth=bandwidth, algorithm="kd_tree", atol=0.0,
            rtol=KDE_RTOL, leaf_size=KDE_LEAF_SIZE, breadth_first=True,
        ).fit(self.z_train)
        return self

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return self.model.score_samples(self.standardise(x)) - self.log_det


def _fit_kde(train: np.ndarray, val: np.ndarray, seed: int) -> FittedReference:
    n, dim = train.shape
    kde = _StandardisedKDE(train)
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
        "algorithm": "kd_tree", "rtol": KDE_RTOL, "atol": 0.0, "leaf_size": KDE_LEAF_SIZE,
    }
    tried = ", ".join(f"{grid[j] / scott:.3g}: {search[j]:.4f}" for j in sorted(search))
    selection = (
        f"bandwidth by val NLL on the half-octave grid Scott's rule ({scott:.4g}, standardised "
        f"units) x 2^(j/2): octaves 1/16..1 (extended while the best was at an end), then the "
        f"best's half-octave neighbours; kernels on all {n} train points, tree sums with "
        f"rtol={KDE_RTOL:g} (<= {KDE_RTOL:g} nats per point); val NLL by multiple of Scott "
        f"{{{tried}}}"
    )
    return FittedReference("kde", kde.log_prob, params, selection,
                           {grid[j]: v for j, v in search.items()}, search[best])


_FITTERS: dict[str, Callable[[np.ndarray, np.ndarray, int], FittedReference]] = {
    "gaussian": _fit_gaussian,
    "gmm": _fit_gmm,
    "kde": _fit_kde,
}


# --- public entry point -----------------------------------------------------------------------


def _check_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    chosen: list[str] = []
    for method in methods:
        if method not in _FITTERS:
            raise ValueError(
                f"unknown reference method {method!r}; valid choices: "
                f"{', '.join(REFERENCE_METHODS)}"
            )
        if method not in chosen:
            chosen.append(method)
    return chosen


def _as_matrix(split, label: str, name: str) -> np.ndarray:
    if hasattr(split, "detach"):
        split = split.detach().to("cpu").numpy()
    array = np.asarray(split, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"dataset {name!r}: the {label} split must be (N, D) vectors, got shape "
            f"{tuple(array.shape)}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"dataset {name!r}: the {label} split is empty")
    return array


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or int(seed) != seed or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def fit_reference(dataset: Dataset, method: str, seed: int = 0) -> FittedReference:
    """Fit one reference method on ``dataset.train``, choosing its settings on ``dataset.val``.

    Returns a :class:`FittedReference` whose ``log_prob`` evaluates the chosen density in the
    original data space (float64 numpy in and out). Runs with BLAS/OpenMP limited to one thread.
    """
    (method,) = _check_methods([method])
    seed = _check_seed(seed)
    if dataset.kind != "vector":
        raise ValueError(
            f"reference densities need vector data; dataset {dataset.name!r} has kind "
            f"{dataset.kind!r}"
        )
    train = _as_matrix(dataset.train, "train", dataset.name)
    val = _as_matrix(dataset.val, "val", dataset.name)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _FITTERS[method](train, val, seed)


def reference_nlls(
    dataset: Dataset, seed: int = 0, methods: Sequence[str] = REFERENCE_METHODS
) -> pd.DataFrame:
    """One row per method: the reference densities a flow should beat, on ``dataset``'s splits.

    Columns (:data:`COLUMNS`): ``dataset``, ``method``, ``params`` (JSON text of the chosen
    settings), ``selection`` (one line: what was searched, on what, and the validation NLL of
    each candidate), ``train_nll``, ``val_nll``, ``test_nll`` (nats per example in the original
    data space; +inf if some point has zero density, never dropped) and ``fit_seconds`` (wall
    time of the whole method: fitting every candidate, the validation search, and evaluating
    the chosen model on the three splits). ``train_nll`` is the chosen model on its own
    training points (for the KDE that includes each point's own kernel, so it is optimistic).

    Settings are chosen by validation NLL only; test is evaluated for the chosen setting alone.
    Deterministic for a given ``seed``. Vector data only: raises ``ValueError`` for any other
    ``dataset.kind``, and for unknown method names.
    """
    chosen = _check_methods(methods)
    seed = _check_seed(seed)
    if dataset.kind != "vector":
        raise ValueError(
            f"reference densities need vector data; dataset {dataset.name!r} has kind "
            f"{dataset.kind!r}"
        )
    splits = {label: _as_matrix(split, label, dataset.name)
              for label, split in dataset.splits().items()}
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(limits=1):
        for method in chosen:
            start = time.perf_counter()
            fitted = _FITTERS[method](splits["train"], splits["val"], seed)
            train_nll = nll(fitted.log_prob(splits["train"]))
            test_nll = nll(fitted.log_prob(splits["test"]))
            seconds = time.perf_counter() - start
            rows.append({
                "dataset": dataset.name,
                "method": method,
                "params": json.dumps(fitted.params, sort_keys=True),
                "selection": fitted.selection,
                "train_nll": train_nll,
                "val_nll": fitted.val_nll,
                "test_nll": test_nll,
                "fit_seconds": seconds,
            })
    return pd.DataFrame(rows, columns=list(COLUMNS))
