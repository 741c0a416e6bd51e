"""Conditioner networks for coupling layers.

The last layer starts at zero so every coupling is the identity at initialisation (the
"zero-init last layer" trick of Glow, Kingma & Dhariwal 2018, used for couplings in general).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": partial(nn.LeakyReLU, 0.01),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; valid choices: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


class MLP(nn.Sequential):
    """``depth`` hidden layers of ``width`` units; the output layer is zero-initialised."""

    def __init__(
        self, in_features: int, out_features: int, width: int = 64, depth: int = 2,
        activation_name: str = "relu",
    ):
        if width < 1 or depth < 0:
            raise ValueError(f"MLP needs width >= 1 and depth >= 0, got {width=} {depth=}")
        layers: list[nn.Module] = []
        features = in_features
        for _ in range(depth):
            layers += [nn.Linear(features, width), make_activation(activation_name)]
            features = width
        last = nn.Linear(features, out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(*layers, last)


def mlp_factory(
    width: int = 64, depth: int = 2, activation: str = "relu"
) -> Callable[[int, int], MLP]:
    """A conditioner factory for coupling layers: ``(in_features, out_features) -> MLP``."""
    make_activation(activation)  # validate the name now, before any layer is built
    return lambda n_in, n_out: MLP(n_in, n_out, width, depth, activation)
