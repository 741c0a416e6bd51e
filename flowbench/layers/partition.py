"""How a coupling layer splits its input into a kept part and a transformed part.

Two forms (Dinh et al. 2015, "NICE"; Dinh et al. 2017, "Density estimation using Real NVP"):

- ``IndexPartition``: explicit feature indices along dimension 1. The conditioner sees only the
  kept features and predicts parameters only for the transformed ones — the fast path for vectors
  (and for channel splits of images).
- ``MaskPartition``: a binary mask ``b`` of the event shape. The conditioner sees ``b * x`` and
  predicts parameters for every element; those of kept elements are zeroed by ``1 - b``. This is
  the form of the RealNVP equation ``z = b*x + (1-b)*(x*exp(s(b*x)) + t(b*x))`` and of
  checkerboard masks.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class Partition(nn.Module):
    """Common interface: ``conditioner_input``, ``params_shape`` handling, ``merge``."""

    #: number of input features (dim 1) the conditioner receives
    in_features: int
    #: number of features (dim 1) per parameter the conditioner must output
    out_features: int

    def kept(self, x: Tensor) -> Tensor:
        """What the conditioner sees."""
        raise NotImplementedError

    def transformed(self, x: Tensor) -> Tensor:
        """The part of ``x`` that the coupling transforms (same layout as the parameters)."""
        raise NotImplementedError

    def merge(self, x: Tensor, transformed: Tensor) -> Tensor:
        """Reassemble the full tensor from the original ``x`` (kept part) and the new part."""
        raise NotImplementedError

    def active(self, params: Tensor) -> Tensor:
        """Zero parameters that belong to kept elements (masks only; index splits have none)."""
        return params


class IndexPartition(Partition):
    """Keep ``keep`` features of dimension 1, transform ``change`` features.

    Contiguous halves use slicing and concatenation (no gather); any other split uses index
    selection and an inverse permutation.
    """

    def __init__(self, keep: Sequence[int], change: Sequence[int]):
        super().__init__()
        keep, change = [int(i) for i in keep], [int(i) for i in change]
        total = len(keep) + len(change)
        if sorted(keep + change) != list(range(total)):
            raise ValueError(
                f"keep {keep} and change {change} must partition 0..{total - 1} exactly"
            )
        if not keep or not change:
            raise ValueError("both parts of a partition must be non-empty")
        self.in_features, self.out_features, self.total = len(keep), len(change), total
        self.keep_first = keep == list(range(len(keep)))
        self.change_first = change == list(range(len(change)))
        self.contiguous = self.keep_first or self.change_first
        self.register_buffer("keep_index", torch.tensor(keep), persistent=False)
        self.register_buffer("change_index", torch.tensor(change), persistent=False)
        order = torch.tensor(keep + change)
        self.register_buffer("unsort", torch.argsort(order), persistent=False)

    @classmethod
    def halves(cls, features: int, flip: bool = False) -> "IndexPartition":
        """First ``ceil(features/2)`` kept, the rest changed; ``flip`` swaps the roles."""
        if features < 2:
            raise ValueError(f"a coupling needs at least 2 features, got {features}")
        first = list(range((features + 1) // 2))
        second = list(range(len(first), features))
        return cls(second, first) if flip else cls(first, second)

    def kept(self, x: Tensor) -> Tensor:
        if self.keep_first:
            return x[:, : self.in_features]
        if self.change_first:
            return x[:, self.out_features :]
        return x.index_select(1, self.keep_index)

    def transformed(self, x: Tensor) -> Tensor:
        if self.keep_first:
            return x[:, self.in_features :]
        if self.change_first:
            return x[:, : self.out_features]
        return x.index_select(1, self.change_index)

    def merge(self, x: Tensor, transformed: Tensor) -> Tensor:
        if self.keep_first:
            return torch.cat([x[:, : self.in_features], transformed], dim=1)
        if self.change_first:
            return torch.cat([transformed, x[:, self.out_features :]], dim=1)
        return torch.cat([self.kept(x), transformed], dim=1).index_select(1, self.unsort)

    def extra_repr(self) -> str:
        return f"keep={self.keep_index.tolist()}, change={self.change_index.tolist()}"


class MaskPartition(Partition):
    """Keep the elements where ``mask == 1``; the conditioner sees ``mask * x``."""

    def __init__(self, mask: Tensor):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.get_default_dtype())
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("a mask must contain only 0 and 1")
        if mask.all() or not mask.any():
            raise ValueError("a mask must keep some elements and transform others")
        self.register_buffer("mask", mask)
        self.in_features = self.out_features = int(mask.shape[0])

    @classmethod
    def alternating(cls, features: int, flip: bool = False) -> "MaskPartition":
        """Vector mask 1,0,1,0,... (or 0,1,0,1,... with ``flip``)."""
        if features < 2:
            raise ValueError(f"a coupling needs at least 2 features, got {features}")
        mask = (torch.arange(features) % 2 == (1 if flip else 0)).to(torch.get_default_dtype())
        return cls(mask)

    def kept(self, x: Tensor) -> Tensor:
        return x * self.mask

    def transformed(self, x: Tensor) -> Tensor:
        return x

    def merge(self, x: Tensor, transformed: Tensor) -> Tensor:
        return self.mask * x + (1 - self.mask) * transformed

    def active(self, params: Tensor) -> Tensor:
        return params * (1 - self.mask)

    def extra_repr(self) -> str:
        return f"mask_shape={tuple(self.mask.shape)}, kept={int(self.mask.sum())}"


PARTITION_KINDS = ("split", "mask")


def alternating_partition(features: int, flip: bool, kind: str = "split") -> Partition:
    """The partition of the ``k``-th coupling in an alternating stack (``flip = k % 2 == 1``).

    ``"split"``: first/second half by index (fast path); ``"mask"``: even/odd features by a binary
    mask. Either way consecutive layers swap roles so every feature gets transformed.
    """
    if kind == "split":
        return IndexPartition.halves(features, flip)
    if kind == "mask":
        return MaskPartition.alternating(features, flip)
    raise ValueError(f"unknown partition {kind!r}; valid choices: {', '.join(PARTITION_KINDS)}")
