"""Fixed permutations of dimension 1 (features or channels); volume preserving.

Used between coupling layers so every feature is eventually transformed (NICE alternates
partitions; RealNVP and Glow's "reverse" and "shuffle" baselines permute, Kingma & Dhariwal 2018).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .base import Transform


class Permutation(Transform):
    """``z[:, i] = x[:, perm[i]]``."""

    def __init__(self, permutation: Sequence[int] | Tensor):
        super().__init__()
        perm = torch.as_tensor(permutation, dtype=torch.long)
        if sorted(perm.tolist()) != list(range(len(perm))):
            raise ValueError(f"not a permutation of 0..{len(perm) - 1}: {perm.tolist()}")
        self.register_buffer("permutation", perm)
        self.register_buffer("inverse_permutation", torch.argsort(perm))

    @classmethod
    def reverse(cls, features: int) -> "Permutation":
        return cls(list(range(features - 1, -1, -1)))

    @classmethod
    def random(cls, features: int, seed: int) -> "Permutation":
        """A permutation fixed by ``seed`` (independent of the global RNG)."""
        generator = torch.Generator().manual_seed(seed)
        return cls(torch.randperm(features, generator=generator))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.permutation), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z.index_select(1, self.inverse_permutation)
