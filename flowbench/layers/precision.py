"""Reduced-precision conditioner networks (``--precision bf16``), and only those.

Autocasting a whole flow would also run its 1x1 convolutions, log-det sums and base densities in
bfloat16 (8 mantissa bits): log-likelihoods would lose about two decimal digits. So training sets
the precision for a region (:func:`conditioner_precision`) and each layer calls its network
through :func:`conditioned`, which autocasts the network alone and hands float32 back to the
invertible arithmetic. A plugin's layer opts in by calling its networks the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

import torch
from torch import Tensor

_AUTOCAST: contextvars.ContextVar[torch.dtype | None] = contextvars.ContextVar(
    "flowbench_conditioner_dtype", default=None)


@contextlib.contextmanager
def conditioner_precision(dtype: torch.dtype | None) -> Iterator[None]:
    """Within this region :func:`conditioned` networks autocast to ``dtype`` (``None``: as
    written)."""
    token = _AUTOCAST.set(dtype)
    try:
        yield
    finally:
        _AUTOCAST.reset(token)


def conditioned(network: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``network(x)``, autocast in the active conditioner precision, returned in ``x``'s dtype."""
    dtype = _AUTOCAST.get()
    if dtype is None or x.device.type == "meta":
        return network(x)
    with torch.autocast(x.device.type, dtype=dtype):
        out = network(x)
    return out.to(x.dtype)


__all__ = ["conditioned", "conditioner_precision"]
