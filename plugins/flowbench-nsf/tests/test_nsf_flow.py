"""The coupling layer and the registered ``nsf`` flow."""

from __future__ import annotations

import pytest
import torch

import flowbench
from flowbench.layers import IndexPartition, MaskPartition, mlp_factory
from flowbench.specs import defaults_of
from flowbench.testing import check_flow
from flowbench_nsf import RationalQuadraticCoupling
from flowbench_nsf.plugin import DEFAULTS, search_space


def test_registered_through_the_entry_point(registry):
    entry = registry.get("flow", "nsf")
    assert "flowbench-nsf" in entry.source and "flowbench_nsf.plugin" in entry.source
    assert dict(entry.spec.defaults) == DEFAULTS == defaults_of(entry.spec.build)
    assert entry.spec.defaults["layers"] == 4 and entry.spec.defaults["bins"] == 8
    assert "1906.04068" in entry.spec.reference
    assert registry.get("dataset", "banana").source == entry.source


def test_search_space(registry):
    optuna = pytest.importorskip("optuna")
    assert registry.spec("flow", "nsf").search_space is search_space
    trial = optuna.trial.FixedTrial({"layers": 2, "bins": 5, "bound": 3.0, "width": 32,
                                     "depth": 1, "activation": "tanh"})
    hparams = search_space(trial)
    assert set(hparams) <= set(DEFAULTS)
    flow = flowbench.build_flow("nsf", "normal", (3,), registry=registry, **hparams)
    assert len(flow.transform) == 2


@pytest.mark.parametrize("partition", [IndexPartition.halves(5), IndexPartition([0, 3], [1, 2, 4]),
                                       MaskPartition.alternating(5)])
def test_identity_at_initialisation(partition):
    torch.manual_seed(0)
    layer = RationalQuadraticCoupling(partition, mlp_factory(16), bins=7, bound=3.0)
    x = 2.5 * torch.randn(300, 5)
    with torch.no_grad():
        z, logabsdet = layer(x)
        x_back = layer.inverse(x)
    assert torch.allclose(z, x, atol=1e-6, rtol=0)
    assert float(logabsdet.abs().max()) < 1e-5
    assert torch.allclose(x_back, x, atol=1e-6, rtol=0)


def test_whole_flow_is_identity_at_initialisation(registry):
    torch.manual_seed(0)
    flow = flowbench.build_flow("nsf", "normal", (4,), registry=registry)
    x = 2 * torch.randn(256, 4, dtype=torch.float64)
    with torch.no_grad():
        z, logabsdet = flow.double()(x)
    assert torch.allclose(z, x, atol=1e-12, rtol=0) and float(logabsdet.abs().max()) < 1e-12


def test_check_flow_passes_with_every_registered_base(registry):
    assert registry.names("base"), "no bases registered"
    for base in registry.names("base"):
        torch.manual_seed(0)
        flow = flowbench.build_flow("nsf", base, (2,), registry=registry)
        report = check_flow(flow)
        assert report.passed, f"base {base!r}:\n" + "\n".join(map(str, report.failures))


def test_check_flow_mask_partition_higher_dimension(registry):
    torch.manual_seed(1)
    flow = flowbench.build_flow("nsf", "normal", (5,), registry=registry, partition="mask",
                                layers=3, bins=5, width=16)
    report = check_flow(flow)
    assert report.passed, "\n".join(map(str, report.failures))


def test_build_rejects_images_and_bad_settings(registry):
    with pytest.raises(ValueError, match=r"nsf models vectors; got event shape \(1, 4, 4\)"):
        flowbench.build_flow("nsf", "normal", (1, 4, 4), registry=registry)
    with pytest.raises(ValueError, match="bins must be a positive integer, got 0"):
        RationalQuadraticCoupling(IndexPartition.halves(2), mlp_factory(8), bins=0)
    with pytest.raises(flowbench.HyperparameterError):
        flowbench.build_flow("nsf", "normal", (2,), registry=registry, scale_bound=2.0)


def test_short_training_beats_a_gaussian_on_two_moons(registry):
    from flowbench.layers import FixedAffine
    from flowbench.train import TrainConfig, evaluate_nll, fit

    data = flowbench.load_dataset("two_moons", registry=registry)
    train = data.train.double()
    gaussian = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    gaussian_nll = float(-gaussian.log_prob(data.test.double()).mean())  # best Gaussian fit

    torch.manual_seed(0)
    flow = flowbench.build_flow("nsf", "normal", data.event_shape, registry=registry,
                                preprocessing=FixedAffine.standardize(data.train))
    result = fit(flow, data.train, data.val,
                 TrainConfig(steps=300, batch_size=256, lr=2e-3, eval_every=100), seed=0)
    assert result.status == "ok"
    nll = evaluate_nll(flow, data.test)
    assert nll < gaussian_nll - 1.0, (nll, gaussian_nll)
    assert nll < data.entropy + 0.3, (nll, data.entropy)


