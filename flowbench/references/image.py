"""Reference densities for image data (``kind="image"`` with ``levels`` L; splits
``(N, C, H, W)`` holding the integer pixel values ``0 .. L-1``), each on the images flattened to
D = C * H * W values, with NLLs in nats per image **of the original discrete data** (so
NLL / (D ln 2) is bits per dimension):

* ``histogram``: independent per-pixel categorical over the L levels, counts from train with
  add-alpha (Lidstone) smoothing, alpha chosen by validation NLL from :data:`HISTOGRAM_ALPHAS`.
  An exact discrete log-likelihood.
* ``gaussian``: a full-covariance Gaussian fitted (maximum likelihood) on the dequantised train
  images plus ``ridge * I``, the ridge chosen by validation NLL from
  :data:`IMAGE_GAUSSIAN_RIDGES`.
* ``gmm``: scikit-learn ``GaussianMixture`` (EM, Dempster, Laird & Rubin 1977) on the dequantised
  images; covariance type, ``reg_covar`` and the number of components are chosen by validation
  NLL (see :func:`image_gmm_candidates`).

The continuous methods see exactly the points the flows see (:func:`dequantised_splits`):
``x + u`` with the fixed noise draw ``flowbench.data.dequantise.dequantised(split,
DEQUANTISE_SEEDS[split])`` for every split, train included (seed 1000; val 1001, test 1002), so a
flow and a reference are compared on the same noise. By Jensen's inequality
``-log P(x) <= E_u[-log p(x + u)]`` where ``P(x)`` is the mass p puts on x's unit bin (Theis, van
den Oord & Bethge 2016), so their NLL is a (one-draw Monte Carlo estimate of an) **upper bound**
on the discrete NLL of the model P: in the same units as the histogram's exact one and a flow's
dequantised NLL. KDE is not offered for images: one bandwidth in D >= 64 dimensions makes a poor
density, and it costs N_train kernel evaluations per image. All three take about 1 s on digits
(1197 / 300 / 300 images of 8x8).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data.dataset import Dataset
from ..data.dequantise import DEQUANTISE_SEEDS, dequantised
from .common import (
    GMM_POLISH_MAX_ITER, FittedReference, check_kind, fit_gaussian, nll, polish_chosen,
    split_matrix,
)

#: The reference methods for image data, in table order.
METHODS: tuple[str, ...] = ("histogram", "gaussian", "gmm")

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

#: How the continuous methods' inputs were made (recorded in their params).
DEQUANTISATION = (
    "x + u, u ~ U[0,1)^D: the flows' fixed draws, flowbench.data.dequantise.dequantised(split, "
    "DEQUANTISE_SEEDS[split]), seeds " + ", ".join(f"{k} {v}" for k, v in DEQUANTISE_SEEDS.items())
)
_UPPER_BOUND = (
    "; NLL of the dequantised images x + u (the fixed draw u ~ U[0,1)^D per split that the flows "
    "are scored on), an estimate of an upper bound on the discrete NLL"
)


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


def _discrete_matrix(split, label: str, dataset: Dataset) -> np.ndarray:
    flat = split_matrix(split, label, dataset.name, tuple(dataset.event_shape))
    if not np.issubdtype(flat.dtype, np.integer):
        flat = flat.astype(np.float64, copy=False)
    levels = int(dataset.levels)
    integral = np.issubdtype(flat.dtype, np.integer) or bool((flat == np.floor(flat)).all())
    if not (integral and flat.min() >= 0 and flat.max() <= levels - 1):  # NaN fails ==
        raise ValueError(
            f"dataset {dataset.name!r}: the {label} split must hold the integer pixel values "
            f"0..{levels - 1} (levels={levels}); dequantisation and scaling belong to the model"
        )
    return flat.astype(np.uint8 if levels <= 256 else np.int64)


def _dequantised_matrix(split, label: str, dataset: Dataset) -> np.ndarray:
    tensor = torch.as_tensor(split)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)  # the dtype every image loader gives the flows
    noisy = dequantised(tensor, DEQUANTISE_SEEDS[label])
    return split_matrix(noisy, label, dataset.name, tuple(dataset.event_shape)).astype(np.float64)


def dequantised_splits(dataset: Dataset) -> ImageSplits:
    """Flatten an image dataset's splits, and dequantise them exactly as the flows' train / val /
    test NLLs are measured: ``flowbench.data.dequantise.dequantised(split,
    DEQUANTISE_SEEDS[split])`` (``x + u`` in the split's dtype, float32 from every image loader),
    then float64.

    The noise depends on the split only, so every continuous reference and every flow is scored
    on the same points (paired comparisons). The images must hold the integer values
    0..levels-1.
    """
    if check_kind(dataset) != "image":
        raise ValueError(f"dataset {dataset.name!r} is not image data (kind {dataset.kind!r})")
    splits = dataset.splits()
    discrete = {label: _discrete_matrix(split, label, dataset) for label, split in splits.items()}
    noisy = {label: _dequantised_matrix(split, label, dataset) for label, split in splits.items()}
    return ImageSplits(int(dataset.levels), tuple(int(d) for d in dataset.event_shape),
                       discrete, noisy)


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


def _fit_gaussian(data: ImageSplits, seed: int) -> FittedReference:
    train, val = data.dequantised["train"], data.dequantised["val"]
    n = train.shape[0]
    fit = fit_gaussian(train, val, IMAGE_GAUSSIAN_RIDGES)
    if fit.density is None:
        raise ValueError("gaussian reference: every ridge gave a singular covariance or NaN")
    params = {"covariance": "full", "ridge": fit.ridge,
              "logdet_covariance": fit.density.logdet_covariance,
              "estimator": "maximum likelihood (mean, covariance / n) on dequantised train, "
                           "plus ridge * I",
              "dequantisation": DEQUANTISATION}
    tried = ", ".join(f"{r:g}: " + ("singular" if math.isnan(v) else f"{v:.4f}")
                      for r, v in fit.search.items())
    selection = (
        f"ridge (squared pixel levels) by val NLL over {IMAGE_GAUSSIAN_RIDGES}, fitted on all "
        f"{n} dequantised train images{_UPPER_BOUND}; val NLL {{{tried}}}"
    )
    return FittedReference("gaussian", fit.density.log_prob, params, selection, fit.search,
                           fit.val_nll, dequantised=True)


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


def _fit_gmm(data: ImageSplits, seed: int) -> FittedReference:
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
        n_iter = polish_chosen(model, search[best], train, polish_tol)
    val_nll = nll(model.score_samples(val))
    cov_type, reg, k = best
    params = {"n_components": k, "covariance_type": cov_type, "reg_covar": reg,
              **IMAGE_GMM_SETTINGS, "tol": tol, "random_state": seed, "polish_tol": polish_tol,
              "polish_max_iter": GMM_POLISH_MAX_ITER,
              "n_iter": n_iter, "converged": bool(model.converged_),
              "dequantisation": DEQUANTISATION}
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


#: ``fit(splits, seed)`` by method.
FITTERS: dict[str, Callable[[ImageSplits, int], FittedReference]] = {
    "histogram": _fit_histogram,
    "gaussian": _fit_gaussian,
    "gmm": _fit_gmm,
}
