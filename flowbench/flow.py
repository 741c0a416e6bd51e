"""``Flow``: an invertible transform paired with a base distribution.

By the change of variables, ``log p(x) = log p_Z(f(x)) + log|det df/dx|`` with ``f`` the forward
(data -> latent) map; sampling draws ``z ~ p_Z`` and returns ``f^{-1}(z)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .distributions import Distribution
from .layers.base import Compose, Transform, flatten_layers


class Flow(nn.Module):
    """A normalizing flow ``x -> z`` with density ``log_prob(x)`` and sampler ``sample(n)``.

    ``preprocessing`` (e.g. a fixed standardisation fitted on the training data) runs before the
    learned ``transform``; its log-det counts, so ``log_prob`` is always in the original data space.
    """

    def __init__(
        self, transform: Transform, base: Distribution, preprocessing: Transform | None = None,
        event_shape: tuple[int, ...] | None = None,
    ):
        super().__init__()
        self.transform = transform
        self.base = base
        self.preprocessing = preprocessing
        #: the data's event shape; the latent's is ``base.event_shape`` (they differ when the
        #: transform reshapes, e.g. a multiscale architecture that flattens its latents)
        self.event_shape = tuple(event_shape) if event_shape is not None else base.event_shape

    def layers(self) -> list[Transform]:
        """Every leaf layer, preprocessing first, in forward (data -> latent) order."""
        pre = flatten_layers(self.preprocessing) if self.preprocessing is not None else []
        return pre + flatten_layers(self.transform)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent, with the log-absolute-determinant of the whole map."""
        if self.preprocessing is None:
            return self.transform(x)
        x, logabsdet = self.preprocessing(x)
        z, ld = self.transform(x)
        return z, logabsdet + ld

    def inverse(self, z: Tensor) -> Tensor:
        """Latent -> data."""
        x = self.transform.inverse(z)
        return self.preprocessing.inverse(x) if self.preprocessing is not None else x

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` in nats, shape ``(N,)``."""
        z, logabsdet = self(x)
        return self.base.log_prob(z) + logabsdet

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        """``n`` draws from the model; pass a seeded ``generator`` for reproducible samples.
        ``temperature`` < 1 samples the base with reduced noise (as in Glow's figures)."""
        if temperature == 1.0:  # bases from plugins need not know about temperatures
            return self.inverse(self.base.sample(n, generator))
        return self.inverse(self.base.sample(n, generator, temperature))

    def forward_steps(self, x: Tensor) -> list[tuple[str, Tensor]]:
        """``[("data", x), (layer, output), ...]``: data pushed towards the latent, layer by
        layer."""
        steps = [("data", x)]
        for index, layer in enumerate(self.layers()):
            x, _ = layer(x)
            steps.append((f"{index}:{type(layer).__name__}", x))
        return steps

    def sample_steps(
        self, n: int, generator: torch.Generator | None = None
    ) -> list[tuple[str, Tensor]]:
        """Base samples pushed through the flow towards data space: ``[("base", z), ...]``.

        The k-th entry is the picture "after k steps of flow"; the last one is ``sample(n)``.
        """
        z = self.base.sample(n, generator)
        steps = [("base", z)]
        layers = self.layers()
        for index in reversed(range(len(layers))):
            z = layers[index].inverse(z)
            steps.append((f"{index}:{type(layers[index]).__name__}", z))
        return steps


__all__ = ["Flow", "Compose"]
