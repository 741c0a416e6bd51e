"""Every registered flow x base passes the conformance kit; a broken flow is caught by it."""

from __future__ import annotations

import itertools

import pytest
import torch

import flowbench
from flowbench.layers import AffineCoupling, Compose, IndexPartition, mlp_factory
from flowbench.testing import CheckReport, check_flow

REGISTRY = flowbench.load_registry(strict=True)
PAIRS = list(itertools.product(REGISTRY.names("flow"), REGISTRY.names("base")))


def _moons(n: int = 2048) -> torch.Tensor:
    from sklearn.datasets import make_moons

    x, _ = make_moons(n, noise=0.05, random_state=0)
    return torch.as_tensor(x)


def assert_passes(report: CheckReport) -> None:
    assert report.passed, "\n" + "\n".join(str(f) for f in report.failures)


def test_every_builtin_flow_and_base_is_registered() -> None:
    assert {"nice", "realnvp", "glow", "maf"} <= set(REGISTRY.names("flow"))
    assert {"normal", "diag", "bimodal", "gmm"} <= set(REGISTRY.names("base"))


@pytest.mark.parametrize("flow,base", PAIRS)
def test_flow_and_base_conform_in_2d(flow: str, base: str) -> None:
    """Invertibility and exact log-det (whole flow and each layer) at init, after training and
    after a random perturbation; density integrates to 1; samples follow the density."""
    model = flowbench.build_flow(flow, base, (2,), registry=REGISTRY, width=16)
    report = check_flow(model, _moons())
    assert_passes(report)
    stages = {r.stage for r in report.results}
    names = {r.name for r in report.results}
    assert stages == {"init", "trained", "perturbed"}
    assert {"invertibility", "logdet", "normalisation", "sampling", "mean_log_density",
            "sample_consistency"} <= names


@pytest.mark.parametrize("flow,base", PAIRS)
def test_state_dict_reload_into_a_differently_seeded_build(flow: str, base: str) -> None:
    """A trained flow saved and loaded into a fresh build (other random init) is the same
    density: nothing that matters may live outside the state dict. (5-D, so that random
    permutations and rotations of two builds differ.)"""
    raw = torch.randn(2000, 5, generator=torch.Generator().manual_seed(0))
    data = raw + 0.5 * raw.roll(1, dims=1) ** 2
    torch.manual_seed(0)
    trained = flowbench.build_flow(flow, base, (5,), registry=REGISTRY, width=16)
    flowbench.fit(trained, data[:1500], data[1500:], flowbench.TrainConfig(steps=30, eval_every=10))
    torch.manual_seed(123)
    reloaded = flowbench.build_flow(flow, base, (5,), registry=REGISTRY, width=16)
    reloaded.load_state_dict(trained.state_dict())
    reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded.log_prob(data), trained.log_prob(data), rtol=0,
                                   atol=1e-6)
        generator = lambda: torch.Generator().manual_seed(5)  # noqa: E731
        torch.testing.assert_close(reloaded.sample(64, generator()),
                                   trained.sample(64, generator()))


@pytest.mark.parametrize("flow", REGISTRY.names("flow"))
def test_flow_conforms_in_odd_dimension_with_preprocessing(flow: str) -> None:
    data = torch.randn(1024, 5, dtype=torch.float64) * torch.arange(1, 6) + 3
    model = flowbench.build_flow(flow, "gmm", (5,), registry=REGISTRY, width=16,
                                 preprocessing=flowbench.layers.FixedAffine.standardize(data))
    assert_passes(check_flow(model, data))


@pytest.mark.parametrize("flow", ["nice", "realnvp"])
def test_mask_partitions_conform(flow: str) -> None:
    model = flowbench.build_flow(flow, "normal", (2,), registry=REGISTRY, partition="mask",
                                 width=16)
    assert_passes(check_flow(model, _moons(), per_layer=False))


def test_glow_with_plain_linear_conforms() -> None:
    model = flowbench.build_flow("glow", "normal", (3,), registry=REGISTRY, lu=False, width=16)
    assert_passes(check_flow(model))


class WrongSignCoupling(AffineCoupling):
    """A plausible bug: the log-det sign flipped."""

    def forward(self, x):
        z, logabsdet = super().forward(x)
        return z, -logabsdet


class WrongInverseCoupling(AffineCoupling):
    """A plausible bug: the inverse forgets the scale."""

    def inverse(self, z):
        log_scale, shift = self._scale_shift(z)
        return self.partition.merge(z, self.partition.transformed(z) - shift)


@pytest.mark.parametrize("layer_type,failing", [(WrongSignCoupling, "logdet"),
                                                (WrongInverseCoupling, "invertibility")])
def test_the_kit_catches_broken_layers(layer_type, failing: str) -> None:
    transform = Compose([layer_type(IndexPartition.halves(2, flip=k % 2 == 1), mlp_factory(16, 1))
                         for k in range(2)])
    base = flowbench.distributions.StandardNormal((2,))
    report = check_flow(flowbench.Flow(transform, base), _moons())
    assert not report.passed
    failed = {(r.name, r.stage) for r in report.failures}
    # at init the coupling is the identity, so these bugs only show once it has been trained
    assert (failing, "trained") in failed and (failing, "init") not in failed
    assert any(str(r).startswith("FAIL") for r in report.failures)


def test_the_kit_catches_an_unnormalised_base() -> None:
    class Unnormalised(flowbench.distributions.StandardNormal):
        def log_prob(self, z):
            return super().log_prob(z) + 0.1

    model = flowbench.build_flow("realnvp", "normal", (2,), registry=REGISTRY, width=16)
    model.base = Unnormalised((2,))
    report = check_flow(model, _moons(), per_layer=False)
    assert {r.name for r in report.failures} == {"normalisation", "mean_log_density"}


def test_the_kit_catches_a_sampler_that_disagrees_with_the_density() -> None:
    class WideSampler(flowbench.distributions.StandardNormal):
        def sample(self, n, generator=None):
            return 1.3 * super().sample(n, generator)

    model = flowbench.build_flow("realnvp", "normal", (2,), registry=REGISTRY, width=16)
    model.base = WideSampler((2,))
    report = check_flow(model, _moons(), per_layer=False)
    assert {"sampling", "mean_log_density"} <= {r.name for r in report.failures}
    assert "normalisation" not in {r.name for r in report.failures}
