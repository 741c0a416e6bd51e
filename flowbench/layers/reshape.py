"""Volume-preserving reshapes: RealNVP's squeeze, and flattening images into vectors.

Both are permutations of the elements of each example, so their log-det is 0.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from .base import Transform, event_size


class Squeeze(Transform):
    """RealNVP's squeeze (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803, section 3.6).

    ``(N, C, H, W) -> (N, 4C, H/2, W/2)``: each 2x2 block of each channel becomes one pixel of
    four channels. Output channel ``4c + 2i + j`` holds input channel ``c`` at offset ``(i, j)``
    within the block (``z[:, 4c + 2i + j, h, w] = x[:, c, 2h + i, 2w + j]``) — the layout of the
    RealNVP and Glow reference code (``squeeze2d``). Trades spatial size for channels so that
    channel-wise couplings and 1x1 convolutions can mix neighbouring pixels.
    """

    @staticmethod
    def _check(shape: Sequence[int]) -> None:
        if len(shape) != 3:
            raise ValueError(f"Squeeze expects images (C, H, W), got event shape {tuple(shape)}")
        _, height, width = shape
        if height % 2 or width % 2:
            raise ValueError(f"Squeeze needs even height and width, got {height}x{width}")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x.shape[1:])
        n, c, h, w = x.shape
        z = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return z.reshape(n, 4 * c, h // 2, w // 2), x.new_zeros(n)

    def inverse(self, z: Tensor) -> Tensor:
        if z.dim() != 4 or z.shape[1] % 4:
            raise ValueError(f"Squeeze.inverse expects (N, 4C, H, W), got {tuple(z.shape)}")
        n, c4, h, w = z.shape
        x = z.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c4 // 4, 2 * h, 2 * w)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check(input_shape)
        c, h, w = input_shape
        return (4 * c, h // 2, w // 2)


class Flatten(Transform):
    """``(N, *event_shape) -> (N, prod(event_shape))`` and back; lets vector flows (e.g. NICE)
    run on images."""

    def __init__(self, event_shape: Sequence[int]):
        super().__init__()
        self.event_shape = tuple(int(d) for d in event_shape)
        self.size = event_size(self.event_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"Flatten expects events of shape {self.event_shape}, "
                             f"got {tuple(x.shape[1:])}")
        return x.reshape(x.shape[0], self.size), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        if tuple(z.shape[1:]) != (self.size,):
            raise ValueError(f"Flatten.inverse expects (N, {self.size}), got {tuple(z.shape)}")
        return z.reshape(z.shape[0], *self.event_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if tuple(input_shape) != self.event_shape:
            raise ValueError(f"Flatten expects events of shape {self.event_shape}, "
                             f"got {tuple(input_shape)}")
        return (self.size,)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"


__all__ = ["Flatten", "Squeeze"]
