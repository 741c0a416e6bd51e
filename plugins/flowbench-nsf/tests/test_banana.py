"""The ``banana`` dataset registered by this plugin, and its exact oracle."""

from __future__ import annotations

import math
import pickle

import torch

import flowbench
from flowbench_nsf import banana


def test_registered_with_an_oracle(registry):
    spec = registry.spec("dataset", "banana")
    assert spec.has_oracle and spec.event_shape == (2,) and spec.kind == "vector"


def test_fixed_seeded_splits(registry):
    data = flowbench.load_dataset("banana", registry=registry)
    assert isinstance(data, flowbench.Dataset)
    assert [tuple(split.shape) for split in data.splits().values()] == [(20000, 2), (5000, 2),
                                                                        (10000, 2)]
    assert all(split.dtype == torch.float32 for split in data.splits().values())
    again, other = banana.load(0), banana.load(1)
    assert torch.equal(data.test, again.test) and not torch.equal(data.test, other.test)
    assert data.oracle_method == "closed form" and data.entropy_method.startswith("closed form")


def test_oracle_is_picklable_float64_and_exact():
    data = banana.load(0)
    restored = pickle.loads(pickle.dumps(data.log_prob))
    values = restored(data.test[:100].double())
    assert values.dtype == torch.float64 and values.shape == (100,)
    x = data.test[:100].double()
    expected = (torch.distributions.Normal(0.0, 1.0).log_prob(x[:, 0]).double()
                + torch.distributions.Normal(0.0, banana.NOISE)
                .log_prob(x[:, 1] - banana.CURVATURE * (x[:, 0] ** 2 - 1)).double())
    assert torch.allclose(values, expected, atol=1e-6, rtol=0)


def test_oracle_integrates_to_one():
    # x1 in [-8, 8]; x2 spans the parabola b (x1^2 - 1) in [-b, 31 b] plus noise
    x1 = torch.linspace(-8, 8, 1601, dtype=torch.float64)
    x2 = torch.linspace(-banana.CURVATURE - 8 * banana.NOISE,
                        banana.CURVATURE * 63 + 8 * banana.NOISE, 8001, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(x1, x2, indexing="ij"), dim=-1).reshape(-1, 2)
    density = banana.log_prob(grid).exp().reshape(x1.numel(), x2.numel())
    mass = torch.trapezoid(torch.trapezoid(density, x2, dim=1), x1)
    assert abs(float(mass) - 1.0) < 1e-4


def test_monte_carlo_entropy_matches_the_closed_form():
    data = banana.load(0)
    log_p = data.log_prob(torch.cat([data.train, data.val, data.test]).double())
    estimate = float(-log_p.mean())
    standard_error = float(log_p.std()) / math.sqrt(log_p.numel())
    assert abs(estimate - data.entropy) < 4 * standard_error
    assert abs(data.entropy - (math.log(2 * math.pi * math.e) + math.log(banana.NOISE))) < 1e-12
