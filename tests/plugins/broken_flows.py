"""Flows with the bugs `flowbench check` exists to catch (used by the tests).

- ``wrong_sign``: the affine couplings' log-det has the wrong sign;
- ``missing_term``: the log-det forgets the scaling layer's contribution;
- ``wrong_inverse``: the inverse forgets to undo the scale;
- ``forgets_state``: a fixed random permutation kept outside the state dict;
- ``unseeded``: initialisation drawn from a clock-seeded generator, not torch's seeded RNG.
"""

from __future__ import annotations

import time

import torch

from flowbench import FlowSpec, hookimpl
from flowbench.layers import (
    AffineCoupling, Compose, DiagonalScaling, IndexPartition, Transform, mlp_factory,
)


def _couplings(coupling_type, features: int, layers: int = 2):
    return [coupling_type(IndexPartition.halves(features, flip=k % 2 == 1), mlp_factory(16, 1))
            for k in range(layers)]


class WrongSign(AffineCoupling):
    def forward(self, x):
        z, logabsdet = super().forward(x)
        return z, -logabsdet


class ScalingWithoutLogdet(DiagonalScaling):
    def forward(self, x):
        z, _ = super().forward(x)
        return z, x.new_zeros(x.shape[0])


class WrongInverse(AffineCoupling):
    def inverse(self, z):
        _, shift = self._scale_shift(z)
        return self.partition.merge(z, self.partition.transformed(z) - shift)


class HiddenPermutation(Transform):
    """Correct maths, but the permutation is a plain attribute: lost on reload."""

    def __init__(self, features: int):
        super().__init__()
        self.order = torch.randperm(features)

    def forward(self, x):
        return x[:, self.order], x.new_zeros(x.shape[0])

    def inverse(self, z):
        return z[:, torch.argsort(self.order)]


class ClockSeededScaling(DiagonalScaling):
    def __init__(self, shape):
        super().__init__(shape)
        generator = torch.Generator().manual_seed(time.perf_counter_ns())
        with torch.no_grad():
            self.log_scale.copy_(0.1 * torch.randn(shape, generator=generator))


def _spec(name, build, description):
    return FlowSpec(name=name, build=build, description=description)


@hookimpl
def flowbench_register_flows():
    return [
        _spec("wrong_sign", lambda s: Compose(_couplings(WrongSign, s[0])), "log-det sign flipped"),
        _spec("missing_term",
              lambda s: Compose([*_couplings(AffineCoupling, s[0]), ScalingWithoutLogdet(s)]),
              "scaling layer without its log-det"),
        _spec("wrong_inverse", lambda s: Compose(_couplings(WrongInverse, s[0])),
              "inverse forgets the scale"),
        _spec("forgets_state",
              lambda s: Compose([HiddenPermutation(s[0]), *_couplings(AffineCoupling, s[0])]),
              "permutation outside the state dict"),
        _spec("unseeded", lambda s: Compose([ClockSeededScaling(s),
                                             *_couplings(AffineCoupling, s[0])]),
              "initialised from the clock"),
    ]
