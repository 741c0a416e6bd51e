"""Learning-rate warm-up and horizontal-flip augmentation in ``fit`` (TrainConfig.warmup_steps,
TrainConfig.augment): the values, the random stream, and that the defaults change nothing."""

from __future__ import annotations

import pytest
import torch

import flowbench
from flowbench.layers import FixedAffine
from flowbench.train import TrainConfig, _schedule, augment_batch, fit, warmup_factor


def _lrs(config: TrainConfig, n: int) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=config.lr)
    scheduler = _schedule(optimizer, config)
    lrs = []
    for _ in range(n):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_warmup_is_linear_then_the_schedule() -> None:
    assert [warmup_factor(k, 4) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    lrs = _lrs(TrainConfig(lr=1.0, steps=100, schedule="constant", warmup_steps=4), 6)
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    # multiplies the cosine schedule
    cosine = _lrs(TrainConfig(lr=1.0, steps=10), 10)
    warmed = _lrs(TrainConfig(lr=1.0, steps=10, warmup_steps=5), 10)
    assert warmed == pytest.approx([c * min(1.0, (k + 1) / 5) for k, c in enumerate(cosine)])


def test_no_warmup_leaves_the_schedule_unchanged() -> None:
    cosine = _lrs(TrainConfig(lr=1.0, steps=10), 10)
    assert cosine[0] == 1.0 and cosine == pytest.approx(
        [0.5 * (1 + torch.cos(torch.tensor(torch.pi * k / 10)).item()) for k in range(10)])


def test_hflip_flips_about_half_deterministically() -> None:
    batch = torch.arange(4000 * 2 * 3, dtype=torch.float32).reshape(4000, 1, 2, 3)
    flipped = augment_batch(batch, "hflip", torch.Generator().manual_seed(0))
    again = augment_batch(batch, "hflip", torch.Generator().manual_seed(0))
    assert torch.equal(flipped, again)
    same = (flipped == batch).flatten(1).all(1)
    mirrored = (flipped == batch.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())  # each image is either untouched or mirrored
    assert 0.45 < mirrored.float().mean().item() < 0.55
    other = augment_batch(batch, "hflip", torch.Generator().manual_seed(1))
    assert not torch.equal(flipped, other)


def test_no_augmentation_draws_nothing() -> None:
    batch = torch.randn(8, 1, 2, 2)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert augment_batch(batch, "none", generator) is batch
    assert torch.equal(generator.get_state(), state)


def test_hflip_on_vector_data_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="image"):
        augment_batch(torch.zeros(4, 2), "hflip", torch.Generator())
    flow = flowbench.build_flow("nice", "normal", (2,), layers=2, width=8)
    with pytest.raises(ValueError, match="needs image data.*data kind 'image'"):
        fit(flow, torch.randn(64, 2), torch.randn(16, 2),
            TrainConfig(steps=2, batch_size=8, augment="hflip"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def _image_fit(config: TrainConfig) -> dict[str, torch.Tensor]:
    data = torch.randint(0, 4, (96, 1, 4, 4), generator=torch.Generator().manual_seed(5)).float()
    torch.manual_seed(0)
    flow = flowbench.build_flow("nice", "normal", (1, 4, 4), layers=2, width=8,
                                preprocessing=FixedAffine.standardize(data))
    fit(flow, data[:64], data[64:], config, seed=0, dequantise=True)
    return flow.state_dict()


def test_fit_with_hflip_and_warmup_is_deterministic_and_different() -> None:
    base = TrainConfig(steps=6, batch_size=16, eval_every=3)
    plain = _image_fit(base)
    assert _same(plain, _image_fit(base))
    for changed in (TrainConfig(steps=6, batch_size=16, eval_every=3, augment="hflip"),
                    TrainConfig(steps=6, batch_size=16, eval_every=3, warmup_steps=3)):
        first, second = _image_fit(changed), _image_fit(changed)
        assert _same(first, second)
        assert not _same(first, plain)
