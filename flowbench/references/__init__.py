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

Image data (``kind="image"`` with ``levels`` L; splits ``(N, C, H, W)`` holding the integer pixel
values ``0 .. L-1``) gets its own methods, :data:`IMAGE_REFERENCE_METHODS`, each on the images
flattened to D = C * H * W values, with NLLs in nats per image **of the original discrete data**
(so NLL / (D ln 2) is bits per dimension; the table adds ``train_bpd``, ``val_bpd``, ``test_bpd``):

* ``histogram``: independent per-pixel categorical over the L levels, counts from train with
  add-alpha smoothing, alpha chosen by validation NLL from :data:`HISTOGRAM_ALPHAS`. An exact
  discrete log-likelihood.
* ``gaussian``: a full-covariance Gaussian fitted (maximum likelihood) on uniformly dequantised
  train images ``x + u``, ``u ~ U[0, 1)^D``, plus ``ridge * I`` with the ridge chosen by validation
  NLL from :data:`IMAGE_GAUSSIAN_RIDGES`.
* ``gmm``: scikit-learn ``GaussianMixture`` on the dequantised images; covariance type,
  ``reg_covar`` and the number of components are chosen by validation NLL (see
  :func:`image_gmm_candidates`).

The continuous methods are scored on dequantised val/test images (one fixed, seeded noise draw
per split, shared by every method: :func:`dequantised_splits`). By Jensen's inequality
``-log P(x) <= E_u[-log p(x + u)]`` where ``P(x)`` is the mass p puts on x's unit bin, so their NLL
is a (one-draw Monte Carlo estimate of an) **upper bound** on the discrete NLL of the model P: in
the same units as the histogram's exact one and a flow's dequantised NLL. KDE is not offered for
images: one bandwidth in D >= 64 dimensions makes a poor density, and it costs N_train kernel
evaluations per image. All three take about 1 s on digits (1197 / 300 / 300 images of 8x8).
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

from ..data.dataset import Dataset

#: The reference methods for vector data (``kind="vector"``), in table order.
REFERENCE_METHODS: tuple[str, ...] = ("gaussian", "gmm", "kde")
#: The reference methods for image data (``kind="image"`` with ``levels``), in table order.
IMAGE_REFERENCE_METHODS: tuple[str, ...] = ("histogram", "gaussian", "gmm")
#: Methods by ``Dataset.kind``; :func:`reference_nlls` runs all of them by default.
REFERENCE_METHODS_BY_KIND: dict[str, tuple[str, ...]] = {
    "vector": REFERENCE_METHODS,
    "image": IMAGE_REFERENCE_METHODS,
}
#: Why a method is not offered for a kind (shown in the error).
_UNSUPPORTED: dict[tuple[str, str], str] = {
    ("image", "kde"): "a kernel density estimate is not a reference for image data (one bandwidth "
                      "in D >= 64 dimensions makes a poor density, and it costs a kernel per "
                      "train image per evaluation)",
    ("vector", "histogram"): "the per-pixel histogram needs discrete image data (kind 'image' "
                             "with levels)",
}

#: Columns of :func:`reference_nlls`, in order.
COLUMNS: tuple[str, ...] = (
    "dataset", "method", "params", "selection", "train_nll", "val_nll", "test_nll", "fit_seconds",
)
#: Extra columns for image data: the NLLs in bits per dimension, NLL / (D ln 2).
BPD_COLUMNS: tuple[str, ...] = ("train_bpd", "val_bpd", "test_bpd")
#: Columns of :func:`reference_nlls` for image data.
IMAGE_COLUMNS: tuple[str, ...] = COLUMNS + BPD_COLUMNS

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

# --- image settings ---------------------------------------------------------------------------
#: Add-alpha smoothing of the per-pixel histogram: p(v) = (count(v) + alpha) / (N + L alpha).
HISTOGRAM_ALPHAS: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: Ridges added to the dequantised covariance, in squared pixel levels (the dequantisation noise
#: alone has variance 1/12 per dimension, so 0 is always positive definite when N_train > D).
IMAGE_GAUSSIAN_RIDGES: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
IMAGE_GMM_COVARIANCE_TYPES: tuple[str, ...] = ("full", "diag")
#: reg_covar candidates (added to every component's variances), in squared pixel levels: the
#: scale of one quantisation bin, whose uniform noise alone has variance 1/12.
IMAGE_GMM_REG_COVAR: tuple[float, ...] = (0.01, 0.1, 1.0)
IMAGE_GMM_COMPONENTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
#: A candidate needs at least this many train images per component.
IMAGE_GMM_MIN_POINTS_PER_COMPONENT = 10
#: Candidates whose EM iteration costs more than this many multiply-adds (N k D^2 for "full",
#: N k D for "diag") are not tried: this keeps "full" to small images such as digits (D = 64)
#: and leaves MNIST / CIFAR-10 to "diag" mixtures.
IMAGE_GMM_MAX_WORK = 1e9
IMAGE_GMM_SETTINGS: dict = {"init_params": "kmeans", "n_init": 1, "max_iter": 200}
#: EM tolerances (change of the mean log-likelihood per image) scale with D: these are nats per
#: dimension, so the stopping rule means the same in bits/dim for digits, MNIST and CIFAR-10.
IMAGE_GMM_TOL_PER_DIM = 1e-4
IMAGE_GMM_POLISH_TOL_PER_DIM = 1e-5
#: Key of the dequantisation noise streams: split i (train 0, val 1, test 2) of seed s gets
#: ``np.random.default_rng([DEQUANTISE_KEY, s, i])``.
DEQUANTISE_KEY = 0x0DE9
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


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
    float64 ``(N,)`` out; image data flattened to D = C * H * W), the chosen settings, a one-line
    account of the search, and the validation NLL of every candidate tried (setting -> nats)."""

    method: str
    log_prob: Callable[[np.ndarray], np.ndarray]
    params: dict
    selection: str
    search: dict = field(default_factory=dict)
    val_nll: float | None = None
    #: Image data only: True if ``log_prob`` takes dequantised images (flattened ``x + u``, see
    #: :func:`dequantised_splits`), False if it takes the integer pixel values (``histogram``).
    dequantised: bool = False


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


def _polish_chosen(model, chosen_val_nll: float, train: np.ndarray, tol: float) -> int:
    """Continue EM of the chosen mixture only, from where it stopped, with the tighter ``tol``
    (at most GMM_POLISH_MAX_ITER more iterations); the EM iterations of both fits together."""
    if math.isnan(chosen_val_nll):
        raise ValueError("gmm reference: every candidate gave a NaN validation NLL")
    first_iters = int(model.n_iter_)
    model.set_params(warm_start=True, tol=tol, max_iter=GMM_POLISH_MAX_ITER)
    model.fit(train)
    return first_iters + int(model.n_iter_)


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
        n_iter = _polish_chosen(model, search[best], train, GMM_POLISH_TOL)
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


# --- image data -------------------------------------------------------------------------------


@dataclass
class ImageSplits:
    """The splits of an image dataset, flattened to ``(N, D)``: ``discrete`` holds the integer
    pixel values (uint8 when levels <= 256, else int64), ``dequantised`` the float64 ``x + u`` of
    :func:`dequantised_splits`."""

    levels: int
    event_shape: tuple[int, ...]
    discrete: dict[str, np.ndarray]
    dequantised: dict[str, np.ndarray]

    @property
    def dim(self) -> int:
        return int(math.prod(self.event_shape))


def _image_matrix(split, label: str, dataset: Dataset) -> np.ndarray:
    if hasattr(split, "detach"):
        split = split.detach().to("cpu").numpy()
    array = np.asarray(split)
    if not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float64, copy=False)
    shape = tuple(dataset.event_shape)
    if array.ndim != 1 + len(shape) or tuple(array.shape[1:]) != shape:
        raise ValueError(
            f"dataset {dataset.name!r}: the {label} split must be (N, *event_shape) = "
            f"(N, {', '.join(map(str, shape))}) images, got shape {tuple(array.shape)}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"dataset {dataset.name!r}: the {label} split is empty")
    flat = array.reshape(array.shape[0], -1)
    levels = int(dataset.levels)
    integral = np.issubdtype(flat.dtype, np.integer) or bool((flat == np.floor(flat)).all())
    if not (integral and flat.min() >= 0 and flat.max() <= levels - 1):  # NaN fails ==
        raise ValueError(
            f"dataset {dataset.name!r}: the {label} split must hold the integer pixel values "
            f"0..{levels - 1} (levels={levels}); dequantisation and scaling belong to the model"
        )
    return flat.astype(np.uint8 if levels <= 256 else np.int64)


def _check_kind(dataset: Dataset) -> str:
    kind = dataset.kind
    if kind == "vector":
        return kind
    if kind == "image":
        levels = dataset.levels
        if isinstance(levels, (int, np.integer)) and not isinstance(levels, bool) and levels >= 2:
            return kind
        raise ValueError(
            f"reference densities need vector data, or image data with levels (the number of "
            f"discrete values per pixel); dataset {dataset.name!r} has kind 'image' and "
            f"levels={levels!r}"
        )
    raise ValueError(
        f"reference densities need vector data or image data; dataset {dataset.name!r} has kind "
        f"{kind!r}"
    )


def dequantised_splits(dataset: Dataset, seed: int = 0) -> ImageSplits:
    """Flatten an image dataset's splits and dequantise them: ``x + u``, ``u ~ U[0, 1)^D`` from
    ``np.random.default_rng([DEQUANTISE_KEY, seed, i])`` for split i (train 0, val 1, test 2).

    The noise depends on the seed and the split only, so every continuous reference is scored on
    the same points (paired comparisons). The images must hold the integer values 0..levels-1.
    """
    seed = _check_seed(seed)
    if _check_kind(dataset) != "image":
        raise ValueError(f"dataset {dataset.name!r} is not image data (kind {dataset.kind!r})")
    discrete = {label: _image_matrix(split, label, dataset)
                for label, split in dataset.splits().items()}
    dequantised = {}
    for label, x in discrete.items():
        rng = np.random.default_rng([DEQUANTISE_KEY, seed, _SPLIT_INDEX[label]])
        dequantised[label] = rng.random(x.shape)
        dequantised[label] += x
    return ImageSplits(int(dataset.levels), tuple(int(d) for d in dataset.event_shape),
                       discrete, dequantised)


_UPPER_BOUND = (
    "; NLL of the dequantised images x + u (one fixed seeded draw u ~ U[0,1)^D per split), an "
    "estimate of an upper bound on the discrete NLL"
)


def _fit_histogram(data: ImageSplits, seed: int) -> FittedReference:
    train, val = data.discrete["train"], data.discrete["val"]
    n, dim = train.shape
    levels = data.levels
    pixel = np.arange(dim)
    flat_index = (pixel * levels + train.astype(np.int64)).ravel()
    counts = np.bincount(flat_index, minlength=dim * levels).reshape(dim, levels).astype(float)

    def make(alpha: float) -> Callable[[np.ndarray], np.ndarray]:
        table = np.log(counts + alpha) - math.log(n + levels * alpha)  # (D, L)

        def log_prob(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x)
            return table[pixel, x.astype(np.int64)].sum(axis=1)

        return log_prob

    search: dict[float, float] = {}
    best = None
    for alpha in HISTOGRAM_ALPHAS:
        search[alpha] = nll(make(alpha)(val))
        if best is None or search[alpha] < search[best]:  # ties go to the smaller alpha
            best = alpha
    params = {"alpha": best, "levels": levels, "dim": dim,
              "model": "independent categorical per pixel, add-alpha smoothed counts"}
    tried = ", ".join(f"{a:g}: {v:.4f}" for a, v in search.items())
    selection = (
        f"alpha by val NLL over {HISTOGRAM_ALPHAS} (p = (count + alpha) / (N + {levels} alpha), "
        f"counts from all {n} train images); exact discrete NLL; val NLL {{{tried}}}"
    )
    return FittedReference("histogram", make(best), params, selection, search, search[best],
                           dequantised=False)


def _gaussian_from_moments(mean: np.ndarray, cov: np.ndarray):
    """(log_prob, log det cov) of N(mean, cov); raises LinAlgError if cov is not positive
    definite."""
    chol = np.linalg.cholesky(cov)
    half_logdet = float(np.log(np.diag(chol)).sum())
    const = -0.5 * mean.size * math.log(2 * math.pi) - half_logdet

    def log_prob(x: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular

        z = solve_triangular(chol, (np.asarray(x, dtype=np.float64) - mean).T, lower=True)
        return const - 0.5 * np.einsum("ij,ij->j", z, z)

    return log_prob, 2 * half_logdet


def _fit_image_gaussian(data: ImageSplits, seed: int) -> FittedReference:
    train, val = data.dequantised["train"], data.dequantised["val"]
    n, dim = train.shape
    mean = train.mean(axis=0)
    centred = train - mean
    cov = centred.T @ centred / n
    del centred
    search: dict[float, float] = {}
    best, best_fit = None, None
    for ridge in IMAGE_GAUSSIAN_RIDGES:
        try:
            log_prob, logdet = _gaussian_from_moments(mean, cov + ridge * np.eye(dim))
        except np.linalg.LinAlgError:
            search[ridge] = math.nan  # singular (N_train <= D and no ridge)
            continue
        search[ridge] = nll(log_prob(val))
        if best is None or search[ridge] < search[best]:  # ties go to the smaller ridge
            best, best_fit = ridge, (log_prob, logdet)
    if best is None or math.isnan(search[best]):
        raise ValueError("gaussian reference: every ridge gave a singular covariance or NaN")
    params = {"covariance": "full", "ridge": best, "logdet_covariance": best_fit[1],
              "estimator": "maximum likelihood (mean, covariance / n) on dequantised train, "
                           "plus ridge * I",
              "dequantisation": "x + u, u ~ U[0,1)^D"}
    tried = ", ".join(f"{r:g}: " + ("singular" if math.isnan(v) else f"{v:.4f}")
                      for r, v in search.items())
    selection = (
        f"ridge (squared pixel levels) by val NLL over {IMAGE_GAUSSIAN_RIDGES}, fitted on all "
        f"{n} dequantised train images{_UPPER_BOUND}; val NLL {{{tried}}}"
    )
    return FittedReference("gaussian", best_fit[0], params, selection, search, search[best],
                           dequantised=True)


def image_gmm_candidates(n_train: int, dim: int) -> dict[tuple[str, float], tuple[int, ...]]:
    """The GMM candidates for ``n_train`` images of ``dim`` values: for each (covariance type,
    reg_covar) of :data:`IMAGE_GMM_COVARIANCE_TYPES` x :data:`IMAGE_GMM_REG_COVAR`, the component
    counts of :data:`IMAGE_GMM_COMPONENTS` with at least
    :data:`IMAGE_GMM_MIN_POINTS_PER_COMPONENT` train images per component and an EM iteration of
    at most :data:`IMAGE_GMM_MAX_WORK` multiply-adds. Lines with no count are left out; if every
    line is, a 1-component diagonal model remains."""
    out: dict[tuple[str, float], tuple[int, ...]] = {}
    for cov_type in IMAGE_GMM_COVARIANCE_TYPES:
        per_point = dim * dim if cov_type == "full" else dim
        ks = tuple(k for k in IMAGE_GMM_COMPONENTS
                   if k * IMAGE_GMM_MIN_POINTS_PER_COMPONENT <= n_train
                   and n_train * k * per_point <= IMAGE_GMM_MAX_WORK)
        if ks:
            for reg in IMAGE_GMM_REG_COVAR:
                out[(cov_type, reg)] = ks
    if not out:
        out[("diag", IMAGE_GMM_REG_COVAR[-1])] = (1,)
    return out


def _fit_image_gmm(data: ImageSplits, seed: int) -> FittedReference:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    train, val = data.dequantised["train"], data.dequantised["val"]
    n, dim = train.shape
    candidates = image_gmm_candidates(n, dim)
    tol, polish_tol = IMAGE_GMM_TOL_PER_DIM * dim, IMAGE_GMM_POLISH_TOL_PER_DIM * dim
    search: dict[tuple[str, float, int], float] = {}
    best, model = None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for (cov_type, reg), ks in candidates.items():
            line_best = math.inf
            for k in ks:
                candidate = GaussianMixture(
                    n_components=k, covariance_type=cov_type, reg_covar=reg, random_state=seed,
                    tol=tol, **IMAGE_GMM_SETTINGS)
                candidate.fit(train)
                key = (cov_type, reg, k)
                search[key] = nll(candidate.score_samples(val))
                if model is None or search[key] < search[best] or math.isnan(search[best]):
                    best, model = key, candidate
                if not search[key] < line_best:
                    break  # more components stopped helping on this line
                line_best = search[key]
        n_iter = _polish_chosen(model, search[best], train, polish_tol)
    val_nll = nll(model.score_samples(val))
    cov_type, reg, k = best
    params = {"n_components": k, "covariance_type": cov_type, "reg_covar": reg,
              **IMAGE_GMM_SETTINGS, "tol": tol, "random_state": seed, "polish_tol": polish_tol,
              "polish_max_iter": GMM_POLISH_MAX_ITER,
              "n_iter": n_iter, "converged": bool(model.converged_),
              "dequantisation": "x + u, u ~ U[0,1)^D"}
    grid = "; ".join(f"{c} reg {r:g}: k in {ks}" for (c, r), ks in candidates.items())
    tried = ", ".join(f"{c}/{r:g}/{kk}: {v:.4f}" for (c, r, kk), v in search.items())
    selection = (
        f"covariance type, reg_covar and n_components by val NLL ({grid}; along each line k "
        f"grows until val NLL stops improving), each fitted (EM tol {tol:g} nats per image) "
        f"on all {n} dequantised train images; the chosen model then continued to EM tol "
        f"{polish_tol:g} (at most {GMM_POLISH_MAX_ITER} more iterations): val NLL "
        f"{val_nll:.4f}{_UPPER_BOUND}; val NLL by type/reg/k {{{tried}}}"
    )
    return FittedReference("gmm", model.score_samples, params, selection, search, val_nll,
                           dequantised=True)


_IMAGE_FITTERS: dict[str, Callable[[ImageSplits, int], FittedReference]] = {
    "histogram": _fit_histogram,
    "gaussian": _fit_image_gaussian,
    "gmm": _fit_image_gmm,
}


# --- public entry point -----------------------------------------------------------------------


def _check_methods(methods: Sequence[str] | None, kind: str = "vector") -> list[str]:
    valid = REFERENCE_METHODS_BY_KIND[kind]
    if methods is None:
        methods = valid
    elif isinstance(methods, str):
        methods = [methods]
    chosen: list[str] = []
    for method in methods:
        if method not in valid:
            reason = _UNSUPPORTED.get((kind, method))
            what = (f"reference method {method!r} is not available for {kind} data: {reason}"
                    if reason else f"unknown reference method {method!r}")
            raise ValueError(f"{what}; valid choices for {kind} data: {', '.join(valid)}")
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
    original data space (float64 numpy in and out). For image data it takes flattened images
    ``(N, D)``: the integer pixel values for ``histogram``, the dequantised values of
    :func:`dequantised_splits` (same ``seed``) for ``gaussian`` and ``gmm`` (``dequantised`` says
    which). Runs with BLAS/OpenMP limited to one thread.
    """
    seed = _check_seed(seed)
    kind = _check_kind(dataset)
    (method,) = _check_methods([method], kind)
    from threadpoolctl import threadpool_limits

    if kind == "image":
        data = dequantised_splits(dataset, seed)
        with threadpool_limits(limits=1):
            return _IMAGE_FITTERS[method](data, seed)
    train = _as_matrix(dataset.train, "train", dataset.name)
    val = _as_matrix(dataset.val, "val", dataset.name)
    with threadpool_limits(limits=1):
        return _FITTERS[method](train, val, seed)


def reference_nlls(
    dataset: Dataset, seed: int = 0, methods: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per method: the reference densities a flow should beat, on ``dataset``'s splits.

    Columns (:data:`COLUMNS`): ``dataset``, ``method``, ``params`` (JSON text of the chosen
    settings), ``selection`` (one line: what was searched, on what, and the validation NLL of
    each candidate), ``train_nll``, ``val_nll``, ``test_nll`` (nats per example in the original
    data space; +inf if some point has zero density, never dropped) and ``fit_seconds`` (wall
    time of the whole method: fitting every candidate, the validation search, and evaluating
    the chosen model on the three splits). ``train_nll`` is the chosen model on its own
    training points (for the KDE that includes each point's own kernel, so it is optimistic).

    ``methods`` defaults to every method for the dataset's kind
    (:data:`REFERENCE_METHODS_BY_KIND`: vector data :data:`REFERENCE_METHODS`, image data
    :data:`IMAGE_REFERENCE_METHODS`). For image data (kind ``"image"`` with ``levels``) the NLLs
    are nats per image of the original discrete data (exact for ``histogram``, a dequantised
    upper-bound estimate for ``gaussian`` and ``gmm``; see the module docstring) and the columns
    are :data:`IMAGE_COLUMNS`: :data:`COLUMNS` plus ``train_bpd``, ``val_bpd``, ``test_bpd``
    (NLL / (D ln 2), bits per dimension).

    Settings are chosen by validation NLL only; test is evaluated for the chosen setting alone.
    Deterministic for a given ``seed``. Raises ``ValueError`` for other kinds, image data without
    ``levels`` or with non-integer pixel values, and for method names not valid for the kind.
    """
    seed = _check_seed(seed)
    kind = _check_kind(dataset)
    chosen = _check_methods(methods, kind)
    from threadpoolctl import threadpool_limits

    if kind == "image":
        data = dequantised_splits(dataset, seed)
        dim_ln2 = data.dim * math.log(2.0)
    else:
        splits = {label: _as_matrix(split, label, dataset.name)
                  for label, split in dataset.splits().items()}

    rows = []
    with threadpool_limits(limits=1):
        for method in chosen:
            start = time.perf_counter()
            if kind == "image":
                fitted = _IMAGE_FITTERS[method](data, seed)
                splits = data.dequantised if fitted.dequantised else data.discrete
            else:
                fitted = _FITTERS[method](splits["train"], splits["val"], seed)
            train_nll = nll(fitted.log_prob(splits["train"]))
            test_nll = nll(fitted.log_prob(splits["test"]))
            seconds = time.perf_counter() - start
            row = {
                "dataset": dataset.name,
                "method": method,
                "params": json.dumps(fitted.params, sort_keys=True),
                "selection": fitted.selection,
                "train_nll": train_nll,
                "val_nll": fitted.val_nll,
                "test_nll": test_nll,
                "fit_seconds": seconds,
            }
            if kind == "image":
                row.update({f"{split}_bpd": row[f"{split}_nll"] / dim_ln2
                            for split in ("train", "val", "test")})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(IMAGE_COLUMNS if kind == "image" else COLUMNS))
