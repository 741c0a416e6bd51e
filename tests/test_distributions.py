"""Base distributions: exact log-densities (against torch.distributions), sampling, learnability."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from flowbench.distributions import (
    DiagonalNormal, GaussianMixture, StandardLogistic, StandardNormal, bimodal,
    learnable_mixture,
)


def test_standard_normal_matches_torch() -> None:
    z = torch.randn(20, 3)
    reference = D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1).log_prob(z)
    torch.testing.assert_close(StandardNormal((3,)).log_prob(z), reference)


def test_diagonal_normal_matches_torch() -> None:
    base = DiagonalNormal((3,))
    with torch.no_grad():
        base.loc.copy_(torch.tensor([1.0, -2.0, 0.5]))
        base.log_scale.copy_(torch.tensor([0.3, -0.2, 1.0]))
    z = torch.randn(20, 3)
    reference = D.Independent(D.Normal(base.loc, base.log_scale.exp()), 1).log_prob(z)
    torch.testing.assert_close(base.log_prob(z), reference)
    samples = base.sample(200000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(0), base.loc.detach(), atol=0.02, rtol=0)


def test_mixture_matches_torch_and_samples_its_weights() -> None:
    means = torch.tensor([[-3.0, 0.0], [3.0, 1.0], [0.0, 4.0]])
    log_scales = torch.log(torch.tensor([[0.5, 0.5], [1.0, 0.3], [0.7, 0.7]]))
    logits = torch.tensor([0.0, 1.0, -1.0])
    mixture = GaussianMixture((2,), means, log_scales, logits)
    reference = D.MixtureSameFamily(
        D.Categorical(logits=logits),
        D.Independent(D.Normal(means, log_scales.exp()), 1),
    )
    z = torch.randn(50, 2) * 3
    torch.testing.assert_close(mixture.log_prob(z), reference.log_prob(z))
    samples = mixture.sample(100000, torch.Generator().manual_seed(1))
    nearest = torch.cdist(samples, means).argmin(1)
    frequencies = torch.bincount(nearest, minlength=3).double() / len(samples)
    torch.testing.assert_close(frequencies, torch.softmax(logits.double(), 0), atol=0.01, rtol=0)


def test_bimodal_is_fixed_and_well_separated() -> None:
    base = bimodal((2,))
    assert not list(base.parameters())
    assert base.components == 2
    gap = float((base.means[1] - base.means[0]).norm())
    assert gap / float(base.log_scales.exp().max()) >= 6  # modes >= 6 standard deviations apart
    samples = base.sample(10000, torch.Generator().manual_seed(0))
    assert 0.45 < float((samples[:, 0] > 0).double().mean()) < 0.55


def test_learnable_mixture_has_parameters_and_validates() -> None:
    mixture = learnable_mixture((4,), components=5)
    assert sum(p.numel() for p in mixture.parameters()) == 5 * 4 * 2 + 5
    with pytest.raises(ValueError, match="components must be >= 1"):
        learnable_mixture((2,), components=0)


@pytest.mark.parametrize("make", [lambda: StandardNormal((2,)), lambda: bimodal((2,)),
                                  lambda: learnable_mixture((2,), 3)])
def test_base_density_integrates_to_one(make) -> None:
    base = make().double()
    axis = torch.linspace(-8, 8, 801, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        mass = float(base.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2)
    assert math.isclose(mass, 1.0, abs_tol=1e-3)


def test_samples_follow_dtype_and_generator() -> None:
    base = StandardNormal((3,)).double()
    a = base.sample(5, torch.Generator().manual_seed(7))
    b = base.sample(5, torch.Generator().manual_seed(7))
    assert a.dtype == torch.float64 and torch.equal(a, b)


def test_logistic_density_integrates_to_one() -> None:
    base = StandardLogistic((2,)).double()  # heavier tails than a Gaussian: a wider grid
    axis = torch.linspace(-25, 25, 1001, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    mass = float(base.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2)
    assert math.isclose(mass, 1.0, abs_tol=1e-3)


def test_logistic_matches_the_formula_and_torch() -> None:
    z = torch.randn(50, 1, 2, 3, dtype=torch.float64) * 4
    # brute force: the logistic density e^-z / (1 + e^-z)^2, one element at a time
    brute = torch.tensor([sum(float(-v - 2 * math.log1p(math.exp(-v))) for v in row.flatten())
                          for row in z], dtype=torch.float64)
    logistic = StandardLogistic((1, 2, 3)).double()
    torch.testing.assert_close(logistic.log_prob(z), brute)
    reference = D.TransformedDistribution(
        D.Uniform(torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)),
        [D.SigmoidTransform().inv])
    torch.testing.assert_close(logistic.log_prob(z), reference.log_prob(z.reshape(50, 6)).sum(1))
    # far tails stay finite (no exp overflow)
    far = torch.full((1, 1, 2, 3), 1e4, dtype=torch.float64)
    assert torch.isfinite(logistic.log_prob(far)).all()


def test_logistic_sampling_moments_and_generator() -> None:
    logistic = StandardLogistic((4,)).double()
    draws = logistic.sample(200_000, torch.Generator().manual_seed(0))
    assert draws.shape == (200_000, 4) and draws.dtype == torch.float64
    assert torch.isfinite(draws).all()
    # mean 0, variance pi^2 / 3, CDF at 1 is sigmoid(1)
    assert abs(float(draws.mean())) < 0.02
    assert float(draws.var()) == pytest.approx(math.pi**2 / 3, rel=0.02)
    assert float((draws < 1).double().mean()) == pytest.approx(1 / (1 + math.exp(-1)), abs=0.005)
    again = logistic.sample(200_000, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    assert float(logistic.sample(1000, torch.Generator().manual_seed(1), temperature=0.5)
                 .abs().max()) < float(draws.abs().max())


def test_logistic_is_registered_and_builds_a_flow() -> None:
    import flowbench

    flow = flowbench.build_flow("nice", "logistic", (1, 4, 4), layers=2, width=8)
    x = torch.rand(3, 1, 4, 4)
    assert flow.log_prob(x).shape == (3,)
    assert flow.sample(2, torch.Generator().manual_seed(0)).shape == (2, 1, 4, 4)
