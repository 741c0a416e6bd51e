"""Uniform dequantisation of integer-valued data, shared by flows and reference estimators.

A density on ``x + u`` with ``u ~ U[0, 1)`` bounds the discrete likelihood of ``x`` (Theis, van den
Oord & Bethge 2016, arXiv:1511.01844). Validation and test splits use one fixed noise draw per split
(:data:`DEQUANTISE_SEEDS`) so that every model — flow or reference — is scored on the same points.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: noise seeds of the fixed dequantisation of each split
DEQUANTISE_SEEDS = {"train": 1000, "val": 1001, "test": 1002}


def dequantised(data: Tensor, seed: int) -> Tensor:
    """``data + u`` with ``u ~ U[0, 1)`` fixed by ``seed``: integer-valued data made continuous.
    The noise is drawn on ``data``'s device by a generator there (on a GPU the draw differs
    from the CPU's: a GPU run is a separate run)."""
    if data.device.type == "meta":
        return data + torch.rand(data.shape, dtype=data.dtype, device=data.device)
    generator = torch.Generator(device=data.device).manual_seed(seed)
    return data + torch.rand(data.shape, generator=generator, dtype=data.dtype,
                             device=data.device)
