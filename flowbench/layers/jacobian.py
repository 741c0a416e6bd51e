"""The brute-force log-determinant every analytic one is checked against: the full autograd
Jacobian of a map, one example at a time, fed to ``slogdet``. It assumes nothing about the map's
structure (triangular Jacobians, which half a coupling keeps), so it is the ground truth of the
conformance kit (``flowbench.testing``) and of the log-det cost study (``flowbench.measure``)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def brute_force_logabsdet(function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``log|det J|`` of ``function`` at each example of ``x``, from the full autograd Jacobian.

    ``function`` maps a batch ``(N, *shape)`` to ``(N, *shape')`` with the same number of
    elements per example; the Jacobian is formed one example at a time and fed to ``slogdet``.
    """
    values = []
    for example in x:
        def single(flat: Tensor, shape=example.shape) -> Tensor:
            return function(flat.reshape(1, *shape)).reshape(-1)

        jacobian = torch.autograd.functional.jacobian(single, example.reshape(-1))
        values.append(torch.linalg.slogdet(jacobian).logabsdet)
    return torch.stack(values)
