"""The fixed layers in front of every flow, log-dets included, so every NLL stays in the units of
the original data: continuous data are standardised with the training split's statistics; discrete
data (``Dataset.levels``) are rescaled from [0, levels) to [0, 1) and, by default, passed through
RealNVP's logit transform (Dinh, Sohl-Dickstein & Bengio 2017, section 4.1)."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..layers.base import Compose, Transform
from ..layers.elementwise import FixedAffine, Logit
from ..specs import PREPROCESSING_DEFAULTS, SpecError
from .dataset import Dataset


def preprocessing_for(dataset: Dataset, options: Mapping[str, Any] | None = None) -> Transform:
    """The preprocessing transform of ``dataset`` (``options`` override
    :data:`flowbench.specs.PREPROCESSING_DEFAULTS` for discrete data)."""
    options = {**PREPROCESSING_DEFAULTS, **(options or {})}
    unknown = sorted(set(options) - set(PREPROCESSING_DEFAULTS))
    if unknown:
        raise SpecError(f"unknown preprocessing options {unknown}; valid: "
                        f"{sorted(PREPROCESSING_DEFAULTS)}")
    if dataset.levels is None:
        return FixedAffine.standardize(dataset.train)
    shape = dataset.event_shape
    rescale = FixedAffine(torch.zeros(shape), torch.full(shape, float(dataset.levels)))
    return Compose([rescale, Logit(options["alpha"])]) if options["logit"] else rescale
