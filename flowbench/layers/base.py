"""The invertible-transform interface shared by every layer, and sequential composition.

Direction follows NICE/RealNVP: ``forward`` maps data to latent and returns the log-absolute
Jacobian determinant of that map; ``inverse`` maps latent back to data (used for sampling).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from torch import Tensor, nn


class Transform(nn.Module):
    """An invertible map ``x -> z`` with a tractable ``log|det dz/dx|``.

    Subclasses implement ``forward(x) -> (z, logabsdet)`` with logabsdet of shape ``(N,)`` and
    ``inverse(z) -> x``. Both act on batches ``(N, *event_shape)``.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def inverse(self, z: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Event shape of ``forward``'s output for inputs of ``input_shape`` (same by default;
        reshaping layers such as squeeze or a multiscale factor-out override this)."""
        return tuple(input_shape)


class Compose(Transform):
    """Apply transforms in order (data -> latent); the log-dets add up."""

    def __init__(self, transforms: Iterable[Transform]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self):
        return iter(self.transforms)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logabsdet: Tensor | None = None  # not zeros + ...: one operation fewer per step
        for transform in self.transforms:
            x, ld = transform(x)
            logabsdet = ld if logabsdet is None else logabsdet + ld
        return x, (x.new_zeros(x.shape[0]) if logabsdet is None else logabsdet)

    def inverse(self, z: Tensor) -> Tensor:
        for transform in reversed(self.transforms):
            z = transform.inverse(z)
        return z

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        for transform in self.transforms:
            shape = transform.output_shape(shape)
        return shape

    def forward_steps(self, x: Tensor) -> list[tuple[str, Tensor, Tensor]]:
        """``[(layer name, output, that layer's logabsdet), ...]`` in forward order."""
        steps = []
        for index, transform in enumerate(self.transforms):
            x, ld = transform(x)
            steps.append((f"{index}:{type(transform).__name__}", x, ld))
        return steps


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum over every dimension but the first: per-example totals of element-wise terms."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def per_pixel(logabsdet: Tensor, x: Tensor) -> Tensor:
    """A per-feature log-det term counted once per element of a feature (``h*w`` times for
    images); vectors skip the multiplication by 1, which would cost an operation per step."""
    size = spatial_size(x)
    return logabsdet if size == 1 else logabsdet * size


def spatial_size(x: Tensor) -> int:
    """Elements per feature of one example: 1 for vectors, ``h*w`` for images ``(N, C, H, W)``."""
    return x[0, 0].numel() if x.dim() > 2 else 1


def flatten_layers(transform: Transform) -> list[Transform]:
    """The leaf layers of a (possibly nested) ``Compose``, in forward order."""
    if isinstance(transform, Compose):
        layers: list[Transform] = []
        for inner in transform.transforms:
            layers.extend(flatten_layers(inner))
        return layers
    return [transform]


def event_size(event_shape: Sequence[int]) -> int:
    size = 1
    for dim in event_shape:
        size *= int(dim)
    return size


__all__ = [
    "Transform", "Compose", "sum_except_batch", "spatial_size", "per_pixel", "flatten_layers",
    "event_size",
]
