"""Image partitions for coupling layers: RealNVP's checkerboard and channel-wise masks.

RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803, section 3.4) alternates two kinds
of binary mask on images: a spatial checkerboard (``b`` is 1 where ``h + w`` is even, or odd) and a
channel-wise mask (half of the channels kept). The checkerboard is used through
``MaskPartition`` (the conditioner sees ``b * x`` and predicts parameters for every element); the
channel-wise mask is implemented as the equivalent, cheaper ``IndexPartition`` of dimension 1, so
the conditioner sees only the kept channels and predicts only for the others.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .partition import IndexPartition


def checkerboard_mask(channels: int, height: int, width: int, parity: int = 0) -> Tensor:
    """A ``(channels, height, width)`` mask, 1 where ``(h + w) % 2 == parity``, else 0.

    The same pattern in every channel (RealNVP's spatial checkerboard). Pass it to
    ``MaskPartition``; alternate ``parity`` 0 and 1 in consecutive couplings so every pixel gets
    transformed. The mask has the default dtype.
    """
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    if channels < 1 or height < 1 or width < 1:
        raise ValueError(f"a mask needs positive sizes, got {(channels, height, width)}")
    rows = torch.arange(height).view(-1, 1)
    cols = torch.arange(width).view(1, -1)
    plane = ((rows + cols) % 2 == parity).to(torch.get_default_dtype())
    return plane.expand(channels, height, width).clone()


def channel_partition(channels: int, flip: bool = False) -> IndexPartition:
    """RealNVP's channel-wise mask as an index split of dimension 1.

    The first ``ceil(channels / 2)`` channels are kept (condition the coupling) and the rest are
    transformed; ``flip`` swaps the roles. Works on ``(N, C, H, W)`` as is, and needs at least two
    channels (squeeze a one-channel image first).
    """
    if channels < 2:
        raise ValueError(
            f"a channel-wise partition needs at least 2 channels, got {channels} "
            "(apply Squeeze first, or use a checkerboard mask)"
        )
    return IndexPartition.halves(channels, flip)


__all__ = ["checkerboard_mask", "channel_partition"]
