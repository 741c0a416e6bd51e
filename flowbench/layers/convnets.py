"""Convolutional conditioners for coupling layers on images.

``ResNet`` is a small residual network in the spirit of the conditioners of RealNVP (Dinh,
Sohl-Dickstein & Bengio 2017, arXiv:1605.08803, section 4.1) and Glow (Kingma & Dhariwal 2018,
arXiv:1807.03039, section 3.3, whose last convolution is zero-initialised so that every coupling
starts as the identity).

Normalisation. RealNVP's conditioner uses batch normalisation; here it is deliberately left out,
because batch statistics make each example's output depend on the rest of the batch (in training
mode), so a coupling's per-example Jacobian — and the exactness checks against brute-force
autograd Jacobians — would no longer be the map actually applied. The network is therefore
either normalisation-free (``norm="none"``, the default: pre-activation residual blocks with the
default initialisation are stable at the depths used here) or uses ``GroupNorm``
(``norm="group"``), which normalises each example over groups of its own channels and pixels:
the same computation in training and evaluation mode, never mixing examples, and well defined
even on 1x1 feature maps (unlike instance normalisation).
"""

from __future__ import annotations

import math
from typing import Callable

from torch import Tensor, nn

from .conditioners import make_activation

NORMS = ("none", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "group":
        # up to 8 groups; the number must divide the channel count
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    raise ValueError(f"unknown norm {kind!r}; valid choices: {', '.join(NORMS)}")


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    # odd kernel with padding k // 2 (zero padding) keeps height and width
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class ResidualBlock(nn.Module):
    """Pre-activation residual block ``h + conv(act(norm(conv(act(norm(h))))))``.

    (He et al. 2016, "Identity mappings in deep residual networks", arXiv:1603.05027.)
    """

    def __init__(self, channels: int, kernel_size: int = 3, activation: str = "relu",
                 norm: str = "none"):
        super().__init__()
        self.branch = nn.Sequential(
            _norm(norm, channels), make_activation(activation),
            _conv(channels, channels, kernel_size),
            _norm(norm, channels), make_activation(activation),
            _conv(channels, channels, kernel_size),
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.branch(h)


class ResNet(nn.Module):
    """``conv -> blocks x ResidualBlock -> norm, act -> conv`` on ``(N, C, H, W)``, keeping H and W.

    The output convolution starts with zero weight and bias, so the network outputs zeros and the
    coupling it conditions is exactly the identity at initialisation.
    """

    def __init__(
        self, in_channels: int, out_channels: int, hidden: int = 32, blocks: int = 2,
        kernel_size: int = 3, activation: str = "relu", norm: str = "none",
    ):
        super().__init__()
        _check(hidden, blocks, kernel_size, activation, norm)
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"ResNet needs positive channel counts, got {in_channels=} "
                             f"{out_channels=}")
        self.conv_in = _conv(in_channels, hidden, kernel_size)
        self.blocks = nn.Sequential(
            *(ResidualBlock(hidden, kernel_size, activation, norm) for _ in range(blocks))
        )
        self.head = nn.Sequential(_norm(norm, hidden), make_activation(activation))
        self.conv_out = _conv(hidden, out_channels, kernel_size)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"ResNet expects images (N, C, H, W), got shape {tuple(x.shape)}")
        return self.conv_out(self.head(self.blocks(self.conv_in(x))))


def _check(hidden: int, blocks: int, kernel_size: int, activation: str, norm: str) -> None:
    if hidden < 1 or blocks < 0:
        raise ValueError(f"ResNet needs hidden >= 1 and blocks >= 0, got {hidden=} {blocks=}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (so padding keeps H and W), got {kernel_size}")
    make_activation(activation)
    _norm(norm, hidden)


def resnet_factory(
    hidden: int = 32, blocks: int = 2, kernel_size: int = 3, activation: str = "relu",
    norm: str = "none",
) -> Callable[[int, int], ResNet]:
    """A conditioner factory for couplings on images: ``(in_channels, out_channels) -> ResNet``.

    The counterpart of ``mlp_factory``; settings are validated now, before any layer is built.
    """
    _check(hidden, blocks, kernel_size, activation, norm)
    return lambda n_in, n_out: ResNet(n_in, n_out, hidden, blocks, kernel_size, activation, norm)


__all__ = ["NORMS", "ResNet", "ResidualBlock", "resnet_factory"]
