"""Reference density estimators: the rows every NLL table shows next to the flows.

These are what a user would fit instead of a flow, on the same train/val/test splits, with NLLs
in the units of the flows' and the oracle's: nats per example in the *original* data space.
Vector data get a Gaussian, a GMM and a KDE (:mod:`.vector`); discrete image data a per-pixel
histogram, a Gaussian and a GMM, scored on the same dequantised points as the flows
(:mod:`.image`); both share :mod:`.common`.

Validation selects; test is evaluated only for the selected setting. Everything runs in float64
with BLAS/OpenMP limited to one thread (``threadpoolctl``), so a given seed gives the same numbers
whatever the machine's core count, and the cost is one core's worth.
"""

from __future__ import annotations

import json
import math
import time
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from . import image, vector
from .common import FittedReference, check_kind, check_seed, nll, split_matrix
from .image import (
    HISTOGRAM_ALPHAS, IMAGE_GAUSSIAN_RIDGES, ImageSplits, dequantised_splits, image_gmm_candidates,
)
from .vector import gmm_component_grid, kde_bandwidth_grid, scott_factor

#: The reference methods for vector data (``kind="vector"``), in table order.
REFERENCE_METHODS: tuple[str, ...] = vector.METHODS
#: The reference methods for image data (``kind="image"`` with ``levels``), in table order.
IMAGE_REFERENCE_METHODS: tuple[str, ...] = image.METHODS
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

__all__ = [
    "BPD_COLUMNS", "COLUMNS", "FittedReference", "HISTOGRAM_ALPHAS", "IMAGE_COLUMNS",
    "IMAGE_GAUSSIAN_RIDGES", "IMAGE_REFERENCE_METHODS", "ImageSplits", "REFERENCE_METHODS",
    "REFERENCE_METHODS_BY_KIND", "dequantised_splits", "fit_reference", "gmm_component_grid",
    "image_gmm_candidates", "kde_bandwidth_grid", "nll", "reference_nlls", "scott_factor",
]


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


def _vector_matrix(split, label: str, name: str):
    return split_matrix(split, label, name).astype(np.float64, copy=False)


def fit_reference(dataset: Dataset, method: str, seed: int = 0) -> FittedReference:
    """Fit one reference method on ``dataset.train``, choosing its settings on ``dataset.val``.

    Returns a :class:`FittedReference` whose ``log_prob`` evaluates the chosen density in the
    original data space (float64 numpy in and out). For image data it takes flattened images
    ``(N, D)``: the integer pixel values for ``histogram``, the dequantised values of
    :func:`dequantised_splits` for ``gaussian`` and ``gmm`` (``dequantised`` says which). Runs
    with BLAS/OpenMP limited to one thread.
    """
    seed = check_seed(seed)
    kind = check_kind(dataset)
    (method,) = _check_methods([method], kind)
    from threadpoolctl import threadpool_limits

    if kind == "image":
        data = dequantised_splits(dataset)
        with threadpool_limits(limits=1):
            return image.FITTERS[method](data, seed)
    train = _vector_matrix(dataset.train, "train", dataset.name)
    val = _vector_matrix(dataset.val, "val", dataset.name)
    with threadpool_limits(limits=1):
        return vector.FITTERS[method](train, val, seed)


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
    upper-bound estimate for ``gaussian`` and ``gmm``, on the flows' dequantised points; see
    :mod:`flowbench.references.image`) and the columns are :data:`IMAGE_COLUMNS`:
    :data:`COLUMNS` plus ``train_bpd``, ``val_bpd``, ``test_bpd`` (NLL / (D ln 2), bits per
    dimension).

    Settings are chosen by validation NLL only; test is evaluated for the chosen setting alone.
    Deterministic for a given ``seed`` (it seeds the GMMs' initialisation). Raises ``ValueError``
    for other kinds, image data without ``levels`` or with non-integer pixel values, and for
    method names not valid for the kind.
    """
    seed = check_seed(seed)
    kind = check_kind(dataset)
    chosen = _check_methods(methods, kind)
    from threadpoolctl import threadpool_limits

    if kind == "image":
        data = dequantised_splits(dataset)
        dim_ln2 = data.dim * math.log(2.0)
    else:
        splits = {label: _vector_matrix(split, label, dataset.name)
                  for label, split in dataset.splits().items()}

    rows = []
    with threadpool_limits(limits=1):
        for method in chosen:
            start = time.perf_counter()
            if kind == "image":
                fitted = image.FITTERS[method](data, seed)
                splits = data.dequantised if fitted.dequantised else data.discrete
            else:
                fitted = vector.FITTERS[method](splits["train"], splits["val"], seed)
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
