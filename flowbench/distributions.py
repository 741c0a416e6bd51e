"""Base distributions: the density of the latent ``z`` that a flow maps data onto.

Any flow pairs with any base. Swapping the standard normal for a bimodal base is the classic
two-moons exercise: a base whose modes match the data's makes the flow's job easier. Learnable
mixtures (e.g. Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling and
Inference", section 2.3.3 on base distributions) move that choice into training.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers.base import event_size

LOG_2PI = math.log(2 * math.pi)


class Distribution(nn.Module):
    """A density over events of ``event_shape``: ``log_prob(z) -> (N,)`` and ``sample(n)``."""

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__()
        self.event_shape = tuple(int(d) for d in event_shape)
        self.dim = event_size(self.event_shape)
        # follows .to()/.double(), so samples get the module's device and dtype
        self.register_buffer("_like", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        """``n`` draws; ``temperature`` scales the Gaussian noise (Glow's "temperature": below 1
        it trades diversity for typical samples)."""
        raise NotImplementedError  # pragma: no cover - interface

    def _randn(self, n: int, generator: torch.Generator | None) -> Tensor:
        # drawn on the CPU with a CPU generator, then moved: the same numbers on every device
        eps = torch.randn((n, *self.event_shape), generator=generator, dtype=self._like.dtype)
        return eps.to(self._like.device)


def _flat(z: Tensor) -> Tensor:
    return z.reshape(z.shape[0], -1)


class StandardNormal(Distribution):
    """``N(0, I)``."""

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__(event_shape)

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (_flat(z) ** 2).sum(dim=1) - 0.5 * self.dim * LOG_2PI

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        return temperature * self._randn(n, generator)


class StandardLogistic(Distribution):
    """Independent standard logistic densities, ``log p(z) = -sum(softplus(z) + softplus(-z))``.

    NICE's prior for MNIST, SVHN and CIFAR-10 (Dinh, Krueger & Bengio 2015, arXiv:1410.8516,
    section 5.1 and Table 1): its heavier tails give smoother gradients than the Gaussian's.
    Sampling inverts the CDF, ``z = log u - log(1 - u)`` for uniform ``u`` drawn with the
    caller's generator on that generator's device (the CPU without one), then moved to the
    module's device; ``temperature`` scales ``z``.
    """

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__(event_shape)

    def log_prob(self, z: Tensor) -> Tensor:
        flat = _flat(z)
        return -(nn.functional.softplus(flat) + nn.functional.softplus(-flat)).sum(dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand((n, *self.event_shape), generator=generator, dtype=self._like.dtype,
                       device=device)
        tiny = torch.finfo(u.dtype).tiny  # u == 0 would give -inf
        u = u.clamp_min(tiny)
        z = torch.log(u) - torch.log1p(-u)
        return (temperature * z).to(self._like.device)


class DiagonalNormal(Distribution):
    """``N(loc, diag(exp(log_scale))^2)`` with learnable ``loc`` and ``log_scale``."""

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__(event_shape)
        self.loc = nn.Parameter(torch.zeros(self.event_shape))
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    def log_prob(self, z: Tensor) -> Tensor:
        u = _flat((z - self.loc) * torch.exp(-self.log_scale))
        return -0.5 * (u**2).sum(dim=1) - self.log_scale.sum() - 0.5 * self.dim * LOG_2PI

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        return self.loc + temperature * torch.exp(self.log_scale) * self._randn(n, generator)


class GaussianMixture(Distribution):
    """Mixture of ``K`` diagonal Gaussians; learnable (weights, means, scales) unless ``fixed``."""

    def __init__(
        self, event_shape: tuple[int, ...], means: Tensor, log_scales: Tensor,
        logits: Tensor | None = None, learnable: bool = True,
    ):
        super().__init__(event_shape)
        means = torch.as_tensor(means, dtype=torch.get_default_dtype()).reshape(-1, self.dim)
        log_scales = torch.as_tensor(log_scales, dtype=torch.get_default_dtype())
        log_scales = log_scales.expand(means.shape).clone()
        k = means.shape[0]
        logits = torch.zeros(k) if logits is None else torch.as_tensor(logits).reshape(k)
        store = (lambda name, value: self.register_parameter(name, nn.Parameter(value))) \
            if learnable else (lambda name, value: self.register_buffer(name, value))
        store("means", means)
        store("log_scales", log_scales)
        store("logits", logits.to(means.dtype))
        self.learnable = learnable

    @property
    def components(self) -> int:
        return self.means.shape[0]

    def component_log_prob(self, z: Tensor) -> Tensor:
        """``(N, K)``: log-density of each example under each component."""
        u = (_flat(z).unsqueeze(1) - self.means) * torch.exp(-self.log_scales)
        return -0.5 * (u**2).sum(-1) - self.log_scales.sum(-1) - 0.5 * self.dim * LOG_2PI

    def log_prob(self, z: Tensor) -> Tensor:
        log_weights = torch.log_softmax(self.logits, dim=0)
        return torch.logsumexp(self.component_log_prob(z) + log_weights, dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        # the component by inverse CDF of uniforms drawn like the noise (on the CPU, then
        # moved): no copy of the weights to the host, the same draws on every device
        uniform = torch.rand(n, generator=generator, dtype=self._like.dtype)
        cumulative = torch.cumsum(torch.softmax(self.logits.detach(), dim=0), dim=0)
        index = torch.searchsorted(cumulative, uniform.to(cumulative))
        index = index.clamp_(max=self.components - 1)
        eps = _flat(self._randn(n, generator))
        flat = self.means[index] + temperature * torch.exp(self.log_scales[index]) * eps
        return flat.reshape(n, *self.event_shape)


def bimodal(
    event_shape: tuple[int, ...], separation: float = 4.0, scale: float = 0.5
) -> GaussianMixture:
    """Two fixed, equally weighted Gaussians at ``±separation/2`` along the first axis.

    With the defaults the modes are 8 standard deviations apart: a base with the two clusters of
    the two-moons data built in (the classic "swap the base" exercise).
    """
    dim = event_size(event_shape)
    means = torch.zeros(2, dim)
    means[0, 0], means[1, 0] = -separation / 2, separation / 2
    log_scales = torch.full((2, dim), math.log(scale))
    return GaussianMixture(event_shape, means, log_scales, learnable=False)


def learnable_mixture(
    event_shape: tuple[int, ...], components: int = 8, init_spread: float = 1.0
) -> GaussianMixture:
    """A learnable ``components``-Gaussian mixture, means drawn from ``N(0, init_spread^2)``."""
    if components < 1:
        raise ValueError(f"components must be >= 1, got {components}")
    dim = event_size(event_shape)
    means = init_spread * torch.randn(components, dim)
    return GaussianMixture(event_shape, means, torch.zeros(components, dim), learnable=True)
