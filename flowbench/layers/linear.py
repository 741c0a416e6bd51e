"""Invertible linear maps over dimension 1: Glow's invertible 1x1 convolution and its vector form.

Glow (Kingma & Dhariwal 2018, arXiv:1807.03039, section 3.2) mixes channels with a learned
``c x c`` matrix ``W`` applied at every pixel; the log-det is ``h * w * log|det W|``.

- ``InvertibleLinear`` computes ``log|det W|`` with ``slogdet`` — O(c^3) per evaluation.
- ``LUInvertibleLinear`` parameterises ``W = P L (U + diag(s))`` with a fixed permutation ``P``,
  unit lower-triangular ``L`` and strictly upper-triangular ``U``; ``log|det W| = sum log|s|``
  costs O(c). The signs of ``s`` are fixed at initialisation and ``log|s|`` is learned.

Both start from a random rotation (a seeded orthogonal matrix), as in Glow, and act on vectors
``(N, c)`` or images ``(N, c, h, w)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform, per_pixel


def random_rotation(features: int, generator: torch.Generator | None = None) -> Tensor:
    """A random orthogonal matrix (QR of a Gaussian matrix, signs fixed for uniformity)."""
    q, r = torch.linalg.qr(torch.randn(features, features, generator=generator))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


def _apply(weight: Tensor, x: Tensor) -> Tensor:
    if x.dim() == 2:
        return x @ weight.T
    return torch.einsum("ij,nj...->ni...", weight, x)


class InvertibleLinear(Transform):
    """``z = W x`` with a dense ``W``; log-det by ``slogdet`` (the plain Glow 1x1 conv)."""

    def __init__(self, features: int, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = nn.Parameter(random_rotation(features, generator))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logabsdet = per_pixel(torch.linalg.slogdet(self.weight).logabsdet, x)
        return _apply(self.weight, x), logabsdet.expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return _apply(torch.linalg.inv(self.weight), z)


class LUInvertibleLinear(Transform):
    """``z = W x`` with ``W = P L (U + diag(s))`` (Glow's LU-decomposed 1x1 convolution)."""

    def __init__(self, features: int, generator: torch.Generator | None = None):
        super().__init__()
        p, lower, upper = torch.linalg.lu(random_rotation(features, generator))
        s = torch.diagonal(upper)
        # P stored as row indices: P @ M is M's rows reordered, a gather instead of a matmul
        self.register_buffer("permutation_rows", p.argmax(dim=1))
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(features, features), -1))
        self.register_buffer("eye", torch.eye(features))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))

    @property
    def permutation(self) -> Tensor:
        """The permutation matrix ``P``."""
        return self.eye.index_select(0, self.permutation_rows)

    def _factors(self) -> tuple[Tensor, Tensor]:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def weight(self) -> Tensor:
        lower, upper = self._factors()
        return (lower @ upper).index_select(0, self.permutation_rows)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logabsdet = per_pixel(self.log_s.sum(), x)
        return _apply(self.weight(), x), logabsdet.expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        lower, upper = self._factors()
        # W^-1 = U'^-1 L^-1 P^T, by two triangular solves instead of a general inverse
        p_t = self.permutation.T
        l_inv_pt = torch.linalg.solve_triangular(lower, p_t, upper=False, unitriangular=True)
        w_inv = torch.linalg.solve_triangular(upper, l_inv_pt, upper=True)
        return _apply(w_inv, z)
