"""Masked autoregressive layers: MADE conditioners and the MAF affine layer.

- ``MADE`` — Germain, Gregor, Murray & Larochelle 2015, "MADE: Masked Autoencoder for
  Distribution Estimation", arXiv:1502.03509: an MLP whose weights are masked so that the
  outputs for dimension ``i`` depend only on the dimensions before ``i`` in a chosen ordering.
  Degrees follow the paper (inputs 1..D along the ordering, hidden units in [1, D-1]); the
  deterministic ("sequential") and seeded random hidden degrees follow Papamakarios's MAF code.
- ``MaskedAutoregressiveAffine`` — one layer of MAF, Papamakarios, Pavlakou & Murray 2017,
  "Masked Autoregressive Flow for Density Estimation", arXiv:1705.07057: an affine
  autoregressive map whose density direction (flowbench's ``forward``, data -> latent) is one
  MADE pass, and whose inverse (sampling) needs D sequential passes.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import Transform
from .conditioners import make_activation
from .coupling import soft_clamp
from .precision import conditioned


def _as_order(order: Sequence[int] | Tensor, features: int) -> Tensor:
    # a copy: a tensor shared by several layers' buffers would be overwritten by a state-dict load
    order = torch.as_tensor(order, dtype=torch.long).flatten().clone()
    if sorted(order.tolist()) != list(range(features)):
        raise ValueError(f"order must be a permutation of 0..{features - 1}, "
                         f"got {order.tolist()}")
    return order


def input_degrees(order: Tensor) -> Tensor:
    """MADE degrees of the inputs: the dimension ``order[k]`` gets degree ``k + 1``."""
    degrees = torch.empty_like(order)
    degrees[order] = torch.arange(1, len(order) + 1)
    return degrees


def hidden_degrees(features: int, width: int, previous: Tensor,
                   generator: torch.Generator | None = None) -> Tensor:
    """Degrees of one hidden layer of ``width`` units, in ``[1, D-1]`` (all 0 when D = 1).

    Without a generator they cycle through 1..D-1 (every degree used when ``width >= D - 1``);
    with one they are drawn uniformly from ``[min(previous), D-1]`` as in the MADE paper, so
    no unit ends up disconnected from the layer below."""
    low, high = min(1, features - 1), max(1, features - 1)
    if generator is None:
        return torch.arange(width) % high + low
    low = min(int(previous.min()), features - 1)
    return torch.randint(low, features, (width,), generator=generator)


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` (a persistent buffer of
    the weight's shape ``(out_features, in_features)``)."""

    def __init__(self, mask: Tensor, bias: bool = True):
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """An autoregressive MLP ``(N, D) -> (N, multiplier * D)``: output ``j * D + i`` (the j-th
    parameter of dimension ``i``) depends only on the inputs that precede ``i`` in ``order``.

    ``depth`` hidden layers of ``width`` units with the activation of the coupling conditioners
    (``flowbench.layers.conditioners``). Hidden degrees cycle deterministically, or come from
    ``torch.Generator().manual_seed(degree_seed)`` when ``degree_seed`` is given — never from the
    global RNG. The output layer starts at zero (every output 0), like the conditioners of the
    coupling layers. ``order`` and the masks are buffers, so a state dict carries them.
    """

    def __init__(
        self, features: int, order: Sequence[int] | Tensor | None = None, width: int = 64,
        depth: int = 2, activation: str = "relu", multiplier: int = 2,
        degree_seed: int | None = None,
    ):
        super().__init__()
        if features < 1 or width < 1 or depth < 0 or multiplier < 1:
            raise ValueError(f"MADE needs features, width, multiplier >= 1 and depth >= 0, got "
                             f"{features=} {width=} {depth=} {multiplier=}")
        if depth > 0 and width < features - 1:
            raise ValueError(f"MADE with {features} inputs needs width >= {features - 1} so "
                             f"that every degree 1..{features - 1} has a hidden unit; got {width}")
        order = _as_order(range(features) if order is None else order, features)
        self.features, self.multiplier = int(features), int(multiplier)
        self.register_buffer("order", order)
        generator = None if degree_seed is None else torch.Generator().manual_seed(degree_seed)

        degrees = input_degrees(order)
        first = degrees
        layers: list[nn.Module] = []
        for _ in range(depth):
            hidden = hidden_degrees(features, width, degrees, generator)
            # a hidden unit of degree m sees the inputs of degree <= m
            layers += [MaskedLinear((hidden[:, None] >= degrees[None, :]).float()),
                       make_activation(activation)]
            degrees = hidden
        # the output for an input of degree d sees the units of degree < d: strictly earlier
        out_mask = (first[:, None] > degrees[None, :]).float().repeat(multiplier, 1)
        last = MaskedLinear(out_mask)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def extra_repr(self) -> str:
        return f"features={self.features}, multiplier={self.multiplier}"


class MaskedAutoregressiveAffine(Transform):
    """One MAF layer: ``z_i = x_i * exp(s_i(x_<i)) + t_i(x_<i)``, ``<`` along ``order``.

    The convention of ``AffineCoupling``: ``(raw s, t)`` come from a ``MADE``, and the log-scale
    ``s`` is soft-clamped to ``(-scale_bound, scale_bound)`` by the same ``soft_clamp``. In the
    paper's notation (``x_i = u_i exp(alpha_i) + mu_i``) this is ``alpha = -s`` and
    ``mu = -t exp(-s)``.

    - ``forward`` (data -> latent, the density direction): one MADE pass, log-det ``sum_i s_i``.
    - ``inverse`` (latent -> data, sampling): D MADE passes. After pass k the first k dimensions
      along the order are exact, since their parameters depend only on earlier ones.

    The MADE's output layer starts at zero, so the layer starts as the identity.
    """

    def __init__(
        self, features: int, order: Sequence[int] | Tensor | None = None, width: int = 64,
        depth: int = 2, activation: str = "relu", scale_bound: float = 3.0,
        degree_seed: int | None = None,
    ):
        super().__init__()
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound}")
        self.features, self.scale_bound = int(features), float(scale_bound)
        self.made = MADE(features, order, width, depth, activation, multiplier=2,
                         degree_seed=degree_seed)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"MaskedAutoregressiveAffine({self.features}) expects "
                             f"(N, {self.features}), got {tuple(x.shape)}")

    def _scale_shift(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raw_scale, shift = conditioned(self.made, x).chunk(2, dim=1)
        return soft_clamp(raw_scale, self.scale_bound), shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x)
        log_scale, shift = self._scale_shift(x)
        return x * torch.exp(log_scale) + shift, log_scale.sum(dim=1)

    def inverse(self, z: Tensor) -> Tensor:
        self._check(z)
        x = torch.zeros_like(z)
        for _ in range(self.features):
            log_scale, shift = self._scale_shift(x)
            x = (z - shift) * torch.exp(-log_scale)
        return x

    def extra_repr(self) -> str:
        order = self.made.order.tolist()
        shown = ", ".join(map(str, order[:8])) + (", ..." if len(order) > 8 else "")
        return f"{self.features}, order=[{shown}], scale_bound={self.scale_bound}"


__all__ = ["MADE", "MaskedAutoregressiveAffine", "MaskedLinear", "hidden_degrees",
           "input_degrees"]
