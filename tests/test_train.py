"""Maximum-likelihood training: it learns, it is deterministic, it guards against NaN."""

from __future__ import annotations

import re

import pytest
import torch
from sklearn.datasets import make_moons

import flowbench
from flowbench.layers import FixedAffine
from flowbench.train import TrainConfig, evaluate_nll, fit


@pytest.fixture(scope="module")
def moons() -> tuple[torch.Tensor, torch.Tensor]:
    x, _ = make_moons(3000, noise=0.05, random_state=0)
    x = torch.as_tensor(x, dtype=torch.float32)
    return x[:2000], x[2000:]


def make(train: torch.Tensor, seed: int = 0) -> flowbench.Flow:
    torch.manual_seed(seed)
    return flowbench.build_flow("realnvp", "normal", (2,), layers=4, width=32,
                                preprocessing=FixedAffine.standardize(train))


def test_fit_learns_two_moons(moons) -> None:
    train, val = moons
    flow = make(train)
    before = evaluate_nll(flow, val)
    result = fit(flow, train, val, TrainConfig(steps=400, eval_every=50), seed=0)
    assert result.status == "ok" and result.steps_done == 400
    # the standardised-Gaussian starting point is ~1.9 nats; a trained RealNVP is far better
    assert before > 1.5 and result.best_val_nll < 1.0
    # the flow is left at its best validation checkpoint
    assert evaluate_nll(flow, val) == pytest.approx(result.best_val_nll, abs=1e-6)
    assert [row["step"] for row in result.history] == list(range(0, 401, 50))
    assert result.examples_per_second > 0


def test_fit_is_deterministic(moons) -> None:
    train, val = moons
    config = TrainConfig(steps=60, eval_every=20)
    first, second = make(train), make(train)
    fit(first, train, val, config, seed=3)
    fit(second, train, val, config, seed=3)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    third = make(train)
    fit(third, train, val, config, seed=4)
    assert not torch.equal(third.state_dict()["transform.transforms.0.conditioner.0.weight"],
                           first.state_dict()["transform.transforms.0.conditioner.0.weight"])


def test_non_finite_loss_marks_the_fit_diverged(moons) -> None:
    train, val = moons
    poisoned = train.clone()
    poisoned[::7] = float("nan")
    result = fit(make(train), poisoned, val, TrainConfig(steps=50, eval_every=10), seed=0)
    assert result.status == "diverged"
    assert "non-finite training loss at step 1" in result.message


def test_early_stopping_after_patience(moons) -> None:
    train, val = moons
    config = TrainConfig(steps=500, eval_every=5, patience=3, lr=1e-12, schedule="constant")
    result = fit(make(train), train, val, config, seed=0)
    assert result.status == "ok"
    assert result.steps_done < 500 and result.message.startswith("early stop")


@pytest.mark.parametrize("bad,message", [
    (dict(steps=0), "TrainConfig.steps must be >= 1, got 0"),
    (dict(lr=-1.0), "TrainConfig.lr must be positive, got -1.0"),
    (dict(schedule="linear"), "unknown schedule 'linear'; valid choices: cosine, constant"),
    (dict(grad_clip=0.0), "TrainConfig.grad_clip must be > 0, got 0.0"),
    (dict(weight_decay=-1e-4), "TrainConfig.weight_decay must be >= 0, got -0.0001"),
])
def test_train_config_validates(bad, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**bad)


def test_flat_parameters_train_exactly_like_separate_tensors(moons) -> None:
    """One flat tensor for Adam is a speed-up only: the same gradients, the same updates up to
    float rounding (the fused kernel's vector/scalar split falls on other elements)."""
    import copy

    from flowbench.flat import FlatParameters

    train, _ = moons
    separate = make(train)
    flat_model = copy.deepcopy(separate)
    batch = train[:256]
    before = flat_model.log_prob(batch)
    flat = FlatParameters.of(flat_model.parameters())
    assert flat is not None
    assert torch.equal(flat_model.log_prob(batch), before)  # re-homing changes nothing
    storage = flat.flat.untyped_storage().data_ptr()
    assert all(p.untyped_storage().data_ptr() == storage for p in flat_model.parameters())

    adam_separate = torch.optim.Adam(separate.parameters(), lr=1e-2, fused=True)
    adam_flat = torch.optim.Adam([flat.flat], lr=1e-2, fused=True)
    for step in range(5):
        rows = train[step * 256 : (step + 1) * 256]
        adam_separate.zero_grad(set_to_none=True)
        (-separate.log_prob(rows).mean()).backward()
        adam_separate.step()
        flat.zero_grad()
        (-flat_model.log_prob(rows).mean()).backward()
        expected = torch.cat([p.grad.reshape(-1) for p in separate.parameters()])
        if step == 0:
            assert torch.equal(flat.grad, expected)
        torch.testing.assert_close(flat.grad, expected, rtol=1e-5, atol=1e-6)
        adam_flat.step()
    for (name, a), (_, b) in zip(separate.state_dict().items(), flat_model.state_dict().items(),
                                 strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(separate.state_dict()["transform.transforms.0.conditioner.0.weight"],
                           make(train).state_dict()["transform.transforms.0.conditioner.0.weight"])


def test_flat_parameters_refuse_mixed_dtypes() -> None:
    from flowbench.flat import FlatParameters

    mixed = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).double()])
    assert FlatParameters.of(mixed.parameters()) is None
    assert FlatParameters.of(torch.nn.ReLU().parameters()) is None


def test_gradient_clipping_scales_only_large_gradients(moons) -> None:
    from flowbench.train import adam

    train, _ = moons
    flow = make(train)
    optimiser = adam(flow, lr=1e-3)
    (-flow.log_prob(train[:256]).mean() * 1e4).backward()  # a huge gradient
    before = optimiser.parameters[0].grad.clone()
    norm = optimiser.clip_gradients(1.0)
    assert float(norm) == pytest.approx(float(before.norm()), rel=1e-5) and float(norm) > 1.0
    assert float(optimiser.parameters[0].grad.norm()) == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(optimiser.parameters[0].grad, before / before.norm(), rtol=1e-4,
                               atol=1e-8)
    small = optimiser.parameters[0].grad.clone()
    optimiser.clip_gradients(10.0)  # under the limit: untouched, bit for bit
    assert torch.equal(optimiser.parameters[0].grad, small)
