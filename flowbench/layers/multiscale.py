"""The multiscale architecture of RealNVP and Glow: factor out half of the channels per level.

RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803, section 3.6) and Glow (Kingma &
Dhariwal 2018, arXiv:1807.03039, section 3 and figure 2) run a stack of levels; after each level
but the last, half of the channels are "factored out": they become final latent variables and
later (more expensive, lower-resolution) levels only transform the other half. This spends
computation where it matters and lets latents capture structure at several scales.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .base import Transform, event_size, flatten_layers


class Multiscale(Transform):
    """Levels of transforms with half of the channels factored out after each splitting level.

    ``Multiscale(event_shape, levels, split)``: ``levels[k]`` is any ``Transform`` (typically a
    ``Compose`` that may squeeze inside, e.g. ``Compose([couplings, Squeeze(), couplings])``);
    ``split[k]`` says whether half of its output is factored out. ``split`` defaults to every
    level but the last; the last level cannot split (nothing would be left to continue with).

    Forward, from ``x`` of shape ``(N, *event_shape)``: ``h = x``; for each level,
    ``h, ld = levels[k](h)``; if it splits, dimension 1 of ``h`` is cut in two equal halves — the
    second half is factored out as final latents (never seen by later levels), the first half
    continues (as Glow's ``split2d``). The output ``z`` is ``(N, D)``, ``D = prod(event_shape)``:
    the factored-out parts in order, then the last level's output, each flattened and
    concatenated along dimension 1. The log-det is the sum of the levels' log-dets.

    Every level's shapes are computed at construction from ``event_shape`` and the levels'
    ``output_shape`` (``level_shapes``), so ``inverse`` can cut ``z`` back into its parts, and
    bad configurations (an odd channel count at a split, a squeeze of odd size) fail early.
    """

    def __init__(
        self, event_shape: Sequence[int], levels: Sequence[Transform],
        split: Sequence[bool] | None = None,
    ):
        super().__init__()
        levels = list(levels)
        if not levels:
            raise ValueError("Multiscale needs at least one level")
        split = [True] * (len(levels) - 1) + [False] if split is None else [bool(s) for s in split]
        if len(split) != len(levels):
            raise ValueError(f"got {len(levels)} levels but {len(split)} split flags")
        if split[-1]:
            raise ValueError("the last level cannot split: nothing would be left after it")
        self.event_shape = tuple(int(d) for d in event_shape)
        self.levels = nn.ModuleList(levels)
        self.split = tuple(split)
        #: per level: (input shape, output shape, factored-out shape or None)
        self.level_shapes: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...] | None]]
        self.level_shapes = []
        shape = self.event_shape
        for index, (level, splits) in enumerate(zip(levels, split, strict=True)):
            out = tuple(level.output_shape(shape))
            if event_size(out) != event_size(shape):
                raise ValueError(f"level {index} maps {shape} to {out}: not the same size")
            factored = None
            if splits:
                if len(out) < 1 or out[0] < 2 or out[0] % 2:
                    raise ValueError(
                        f"level {index} splits its output {out} along dimension 1, which needs "
                        "an even size (squeeze inside the level first)")
                factored = (out[0] // 2, *out[1:])
            self.level_shapes.append((shape, out, factored))
            shape = factored if factored is not None else out
        self.final_shape = shape
        #: flattened sizes of the parts of z, in order
        self.part_sizes = [event_size(f) for _, _, f in self.level_shapes if f is not None]
        self.part_sizes.append(event_size(self.final_shape))
        self.size = event_size(self.event_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"Multiscale expects events of shape {self.event_shape}, "
                             f"got {tuple(x.shape[1:])}")
        n = x.shape[0]
        logabsdet = x.new_zeros(n)
        parts = []
        h = x
        for level, (_, _, factored) in zip(self.levels, self.level_shapes, strict=True):
            h, ld = level(h)
            logabsdet = logabsdet + ld
            if factored is not None:
                h, out = h.chunk(2, dim=1)
                parts.append(out.reshape(n, -1))
        parts.append(h.reshape(n, -1))
        return torch.cat(parts, dim=1), logabsdet

    def inverse(self, z: Tensor) -> Tensor:
        if tuple(z.shape[1:]) != (self.size,):
            raise ValueError(f"Multiscale.inverse expects (N, {self.size}), got {tuple(z.shape)}")
        n = z.shape[0]
        parts = list(z.split(self.part_sizes, dim=1))
        h = parts.pop().reshape(n, *self.final_shape)
        for level, (_, _, factored) in zip(reversed(self.levels), reversed(self.level_shapes),
                                           strict=True):
            if factored is not None:
                h = torch.cat([h, parts.pop().reshape(n, *factored)], dim=1)
            h = level.inverse(h)
        return h

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if tuple(input_shape) != self.event_shape:
            raise ValueError(f"this Multiscale was built for events of shape {self.event_shape}, "
                             f"got {tuple(input_shape)}")
        return (self.size,)

    def leaves(self) -> list[Transform]:
        """Every leaf layer of every level, in forward order (for reports and parameter counts).

        Not a sequential chain: between levels the factored-out half is removed, so feeding one
        leaf's output to the next fails at the split. Use ``level_shapes`` to know where.
        """
        layers: list[Transform] = []
        for level in self.levels:
            layers.extend(flatten_layers(level))
        return layers

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, split={list(self.split)}"


__all__ = ["Multiscale"]
