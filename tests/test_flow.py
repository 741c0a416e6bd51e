"""Flow: change of variables, sampling, and the layer-by-layer views used by reports."""

from __future__ import annotations

import torch

import flowbench
from flowbench.layers import FixedAffine


def make(seed: int = 0) -> flowbench.Flow:
    torch.manual_seed(seed)
    data = torch.randn(500, 2) * 3 + 1
    flow = flowbench.build_flow("glow", "gmm", (2,), steps=2, width=8,
                                preprocessing=FixedAffine.standardize(data))
    flow(data)  # data-dependent init
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow.eval()


def test_log_prob_is_base_plus_logdet_in_data_space() -> None:
    flow = make()
    x = torch.randn(7, 2)
    z, logabsdet = flow(x)
    torch.testing.assert_close(flow.log_prob(x), flow.base.log_prob(z) + logabsdet)
    # the preprocessing's log-det is part of it: NLL stays in the original data space
    _, pre = flow.preprocessing(x)
    z_inner, inner = flow.transform(flow.preprocessing(x)[0])
    torch.testing.assert_close(logabsdet, pre + inner)


def test_forward_steps_end_at_the_latent() -> None:
    flow = make()
    x = torch.randn(5, 2)
    steps = flow.forward_steps(x)
    assert steps[0][0] == "data" and len(steps) == len(flow.layers()) + 1
    assert steps[1][0] == "0:FixedAffine"
    torch.testing.assert_close(steps[-1][1], flow(x)[0])


def test_sample_steps_push_base_samples_to_data_space() -> None:
    flow = make()
    steps = flow.sample_steps(9, torch.Generator().manual_seed(4))
    assert steps[0][0] == "base" and len(steps) == len(flow.layers()) + 1
    torch.testing.assert_close(steps[0][1], flow.base.sample(9, torch.Generator().manual_seed(4)))
    torch.testing.assert_close(steps[-1][1], flow.sample(9, torch.Generator().manual_seed(4)))


def test_building_is_seeded() -> None:
    a, b, c = make(1), make(1), make(2)
    for (name, pa), (_, pb), (_, _pc) in zip(a.state_dict().items(), b.state_dict().items(),
                                              c.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(),
                                                          c.state_dict().values(), strict=True))
