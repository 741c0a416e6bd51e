"""A test plugin: the dataset family ``gauss-<D>`` (a correlated Gaussian in D dimensions, with
its exact density as the oracle), a closed-form published row, and a quick suite over two
dimensions that the report's gap-vs-dimension figure, ranks and published rows are tested on.

The density is N(0, Σ) with Σ_ij = RHO^|i-j| (an AR(1) covariance): det Σ = (1 - RHO²)^(D-1),
so its entropy is D/2 log(2πe) + (D-1)/2 log(1 - RHO²) nats (Cover & Thomas 2006, Elements of
Information Theory, 2nd ed., Theorem 8.4.1).
"""

from __future__ import annotations

import math

import torch

from flowbench import DatasetSpec, PublishedResult, SuiteSpec, hookimpl
from flowbench.data.dataset import Dataset, as_float32, split_tensor
from flowbench.specs import DatasetFamilySpec

RHO = 0.6
SPLITS = (1200, 400, 400)
ENTROPY_SOURCE = ("Cover & Thomas 2006, Elements of Information Theory, 2nd ed., "
                  "Theorem 8.4.1 (Gaussian entropy)")


def covariance(dim: int) -> torch.Tensor:
    index = torch.arange(dim, dtype=torch.float64)
    return RHO ** (index[:, None] - index[None, :]).abs()


def entropy(dim: int) -> float:
    """The true differential entropy of ``gauss-<dim>`` in nats."""
    return dim / 2 * math.log(2 * math.pi * math.e) + (dim - 1) / 2 * math.log(1 - RHO ** 2)


def load(dim: int, seed: int) -> Dataset:
    truth = torch.distributions.MultivariateNormal(torch.zeros(dim, dtype=torch.float64),
                                                   covariance_matrix=covariance(dim))
    generator = torch.Generator().manual_seed(1000 * dim + seed)
    noise = torch.randn(sum(SPLITS), dim, generator=generator, dtype=torch.float64)
    points = noise @ torch.linalg.cholesky(covariance(dim)).T
    train, val, test = split_tensor(as_float32(points), *SPLITS)
    return Dataset(name=f"gauss-{dim}", train=train, val=val, test=test, event_shape=(dim,),
                   log_prob=lambda x: truth.log_prob(x.double()), entropy=entropy(dim),
                   oracle_method="closed form", entropy_method="closed form",
                   description=f"AR(1) Gaussian, rho={RHO}, D={dim}")


def make(dim: int) -> DatasetSpec:
    return DatasetSpec(
        name=f"gauss-{dim}", load=lambda seed: load(dim, seed), event_shape=(dim,),
        has_oracle=True, description=f"correlated Gaussian in {dim} dimensions",
        # the true density's expected NLL: a number from a book, to be shown as published,
        # never ranked (it would beat every measured row)
        published=(PublishedResult("closed-form entropy", entropy(dim), ENTROPY_SOURCE),)
        if dim == 2 else ())


@hookimpl
def flowbench_register_dataset_families():
    return [DatasetFamilySpec(name="gauss", make=make, min_dim=2, max_dim=64,
                              description="correlated Gaussian N(0, AR(1) covariance) in D dims")]


@hookimpl
def flowbench_register_suites():
    return [SuiteSpec(
        name="gauss_dims", description="two flows on gauss-2 and gauss-4, two seeds, references",
        datasets=("gauss-2", "gauss-4"), flows=("nice", "realnvp"), bases=("normal",),
        seeds=(0, 1), train={"steps": 40, "eval_every": 20, "batch_size": 128},
        flow_hparams={"nice": {"layers": 2, "width": 8}, "realnvp": {"layers": 2, "width": 8}},
        measure={"references": True, "speed": False, "logdet_dims": (), "linear_channels": ()},
    )]
