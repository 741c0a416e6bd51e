"""Micro-benchmarks of every vector layer: forward with log-det, and inverse (pytest-benchmark).

Not part of the test run (the project's pytest options disable benchmarks). Run with::

    pytest benchmarks/bench_layers.py --benchmark-enable --benchmark-columns=median,iqr,ops \\
        --benchmark-group-by=param:dim,param:batch --benchmark-max-time=0.2

Each layer is built at ``dim`` features (conditioners: 2 hidden layers of 64 ReLU units, the
built-in defaults), given random non-trivial parameters so no path is the identity, and timed on
a batch of ``batch`` examples with one torch thread, without gradients (the cost of density
evaluation and sampling) and with a backward pass (the cost inside a training step).
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from flowbench.layers import (
    ActNorm, AdditiveCoupling, AffineCoupling, DiagonalScaling, InvertibleLinear,
    LUInvertibleLinear, Permutation, alternating_partition, mlp_factory,
)
from flowbench.layers.normalization import BatchNormFlow
from flowbench.testing import perturb

LAYERS: dict[str, Callable[[int], torch.nn.Module]] = {
    "additive_coupling": lambda d: AdditiveCoupling(alternating_partition(d, False),
                                                    mlp_factory()),
    "affine_coupling_split": lambda d: AffineCoupling(alternating_partition(d, False),
                                                      mlp_factory()),
    "affine_coupling_mask": lambda d: AffineCoupling(alternating_partition(d, False, "mask"),
                                                     mlp_factory()),
    "diagonal_scaling": lambda d: DiagonalScaling((d,)),
    "actnorm": ActNorm,
    "batchnorm": BatchNormFlow,
    "permutation": lambda d: Permutation.random(d, seed=0),
    "linear_plain": InvertibleLinear,
    "linear_lu": LUInvertibleLinear,
}
DIMS = (2, 8, 64)
BATCHES = (256, 4096)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _layer(name: str, dim: int, batch: int) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    layer = LAYERS[name](dim)
    x = torch.randn(batch, dim)
    layer(x)  # data-dependent initialisation (actnorm) before timing
    perturb(layer, generator=torch.Generator().manual_seed(1))
    layer.eval()
    return layer, x


def every_layer(group: str):
    """Benchmark ``group`` over every layer × dimension × batch size."""
    def mark(test):
        for decorator in (pytest.mark.parametrize("batch", BATCHES),
                          pytest.mark.parametrize("dim", DIMS),
                          pytest.mark.parametrize("name", LAYERS),
                          pytest.mark.benchmark(group=group)):
            test = decorator(test)
        return test
    return mark


@every_layer("forward")
def test_forward(benchmark, name: str, dim: int, batch: int) -> None:
    layer, x = _layer(name, dim, batch)
    with torch.no_grad():
        benchmark(layer, x)


@every_layer("inverse")
def test_inverse(benchmark, name: str, dim: int, batch: int) -> None:
    layer, x = _layer(name, dim, batch)
    with torch.no_grad():
        z, _ = layer(x)
        benchmark(layer.inverse, z)


@every_layer("forward+backward")
def test_forward_backward(benchmark, name: str, dim: int, batch: int) -> None:
    layer, x = _layer(name, dim, batch)
    layer.train()
    if not any(p.requires_grad for p in layer.parameters()):
        x = x.requires_grad_()  # parameter-free layers: the gradient with respect to the input

    def step() -> None:
        z, logabsdet = layer(x)
        (z.square().sum() - logabsdet.sum()).backward()

    benchmark(step)
