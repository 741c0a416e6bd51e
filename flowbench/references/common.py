"""What the vector and image references share: the fitted-model record, the NLL, the seed and
data-kind checks, turning a split into a matrix, the maximum-likelihood Gaussian, and the GMM
polish step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

#: The chosen mixture (only) is continued by warm-started EM for at most this many more
#: iterations (see :func:`polish_chosen`).
GMM_POLISH_MAX_ITER = 50


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
    #: ``dequantised_splits``), False if it takes the integer pixel values (``histogram``).
    dequantised: bool = False


def nll(log_prob: np.ndarray) -> float:
    """Mean negative log-likelihood in nats. Nothing is dropped: a point of zero density
    (log p = -inf) makes it +inf, a NaN makes it NaN."""
    log_prob = np.asarray(log_prob, dtype=np.float64)
    if log_prob.size == 0:
        return float("nan")
    return float(-np.mean(log_prob))


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or int(seed) != seed or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def check_kind(dataset) -> str:
    """The dataset's kind if references can be fitted to it: "vector", or "image" with
    ``levels`` (the number of discrete values per pixel); otherwise ``ValueError``."""
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


def split_matrix(
    split, label: str, name: str, event_shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """A split as a numpy matrix ``(N, D)``, one row per example, dtype kept.

    Vector data (``event_shape`` None) must already be ``(N, D)``; image data must be
    ``(N, *event_shape)`` and are flattened. An empty split or a wrong shape raises
    ``ValueError`` naming the dataset and the split.
    """
    if hasattr(split, "detach"):
        split = split.detach().to("cpu").numpy()
    array = np.asarray(split)
    if event_shape is None and array.ndim != 2:
        raise ValueError(
            f"dataset {name!r}: the {label} split must be (N, D) vectors, got shape "
            f"{tuple(array.shape)}"
        )
    if event_shape is not None and tuple(array.shape[1:]) != tuple(event_shape):
        raise ValueError(
            f"dataset {name!r}: the {label} split must be (N, *event_shape) = "
            f"(N, {', '.join(map(str, event_shape))}) images, got shape {tuple(array.shape)}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"dataset {name!r}: the {label} split is empty")
    return array.reshape(array.shape[0], -1)


# --- the Gaussian -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Gaussian:
    """N(mean, L L^T) from the Cholesky factor L of its covariance."""

    mean: np.ndarray
    chol: np.ndarray

    @classmethod
    def from_moments(cls, mean: np.ndarray, cov: np.ndarray) -> "Gaussian":
        """Raises ``np.linalg.LinAlgError`` if ``cov`` is not positive definite."""
        return cls(mean, np.linalg.cholesky(cov))

    @property
    def logdet_covariance(self) -> float:
        return 2 * float(np.log(np.diag(self.chol)).sum())

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        half_logdet = float(np.log(np.diag(self.chol)).sum())
        const = -0.5 * self.mean.size * math.log(2 * math.pi) - half_logdet
        # Solve L z = (x - mean)^T; the Mahalanobis term is |z|^2. np.linalg.solve rather than a
        # triangular solver: it is what the vector references always used, so their numbers
        # stay the same bit for bit.
        z = np.linalg.solve(self.chol, (np.asarray(x, dtype=np.float64) - self.mean).T)
        return const - 0.5 * np.einsum("ij,ij->j", z, z)


@dataclass(frozen=True)
class GaussianFit:
    """The maximum-likelihood Gaussian plus the val-best ridge, and the val NLL of each ridge
    tried (NaN: singular covariance)."""

    ridge: float | None
    density: Gaussian | None
    search: dict[float, float]

    @property
    def val_nll(self) -> float:
        return self.search[self.ridge]


def fit_gaussian(train: np.ndarray, val: np.ndarray, ridges: Sequence[float]) -> GaussianFit:
    """Maximum likelihood on ``train`` (mean, covariance / n) plus ``ridge * I``, the ridge chosen
    by validation NLL; ties go to the earlier ridge and a NaN never wins. ``ridge`` and
    ``density`` are None when every ridge gave a singular covariance or a NaN validation NLL."""
    n, dim = train.shape
    mean = train.mean(axis=0)
    centred = train - mean
    cov = centred.T @ centred / n
    del centred
    search: dict[float, float] = {}
    best, density = None, None
    for ridge in ridges:
        try:
            ridged = cov + ridge * np.eye(dim) if ridge else cov  # no ridge: cov as it is
            candidate = Gaussian.from_moments(mean, ridged)
        except np.linalg.LinAlgError:
            search[ridge] = math.nan  # singular (e.g. N_train <= D and no ridge)
            continue
        search[ridge] = nll(candidate.log_prob(val))
        if not math.isnan(search[ridge]) and (best is None or search[ridge] < search[best]):
            best, density = ridge, candidate
    return GaussianFit(best, density, search)


# --- Gaussian mixtures ------------------------------------------------------------------------


def polish_chosen(model, chosen_val_nll: float, train: np.ndarray, tol: float) -> int:
    """Continue EM of the chosen mixture only, from where it stopped, with the tighter ``tol``
    (at most GMM_POLISH_MAX_ITER more iterations); the EM iterations of both fits together."""
    if math.isnan(chosen_val_nll):
        raise ValueError("gmm reference: every candidate gave a NaN validation NLL")
    first_iters = int(model.n_iter_)
    model.set_params(warm_start=True, tol=tol, max_iter=GMM_POLISH_MAX_ITER)
    model.fit(train)
    return first_iters + int(model.n_iter_)
