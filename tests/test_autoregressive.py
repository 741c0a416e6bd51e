"""MADE and the MAF layer and flow: the autoregressive property, exact log-dets and inverses
(float64, away from the identity), D-pass sampling, persistent orderings, seeded construction."""

from __future__ import annotations

import itertools

import optuna
import pytest
import torch

import flowbench
import flowbench_maf
from flowbench.layers import MADE, BatchNormFlow, MaskedAutoregressiveAffine, MaskedLinear
from flowbench.testing import check_registered, perturb

pytestmark = pytest.mark.usefixtures("float64")

DIMS = (1, 2, 5, 32)


def orders(features: int) -> dict[str, torch.Tensor]:
    return {"natural": torch.arange(features), "reverse": torch.arange(features).flip(0),
            "random": torch.randperm(features, generator=torch.Generator().manual_seed(3))}


def jacobians(function, x: torch.Tensor) -> torch.Tensor:
    """``(N, outputs, inputs)``: the autograd Jacobian of ``function`` at every example."""
    return torch.stack([torch.autograd.functional.jacobian(lambda v: function(v[None])[0], row)
                        for row in x])


def brute_logabsdet(function, x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.slogdet(jacobians(function, x)).logabsdet


def position(order: torch.Tensor) -> torch.Tensor:
    """``position[i]``: where dimension ``i`` comes in ``order``."""
    return torch.argsort(order)


@pytest.mark.parametrize("features", DIMS)
@pytest.mark.parametrize("order_name", ["natural", "reverse", "random"])
@pytest.mark.parametrize("depth,degree_seed", [(0, None), (1, None), (2, None), (2, 7)])
def test_made_outputs_depend_exactly_on_the_earlier_inputs(features, order_name, depth,
                                                           degree_seed) -> None:
    """Output ``j * D + i`` has a zero derivative in every input not strictly before ``i`` in
    the ordering, and (sequential degrees, width >= D - 1) a nonzero one in every earlier input."""
    order = orders(features)[order_name]
    made = perturb(MADE(features, order, width=max(features, 8), depth=depth, activation="tanh",
                        degree_seed=degree_seed), scale=0.5)
    jacobian = jacobians(made, torch.randn(6, features)).abs().sum(0)  # (2D, D)
    pos = position(order)
    earlier = (pos[None, :] < pos[:, None]).repeat(2, 1)  # [output, input]
    assert jacobian.shape == (2 * features, features)
    assert torch.all(jacobian[~earlier] == 0)
    if degree_seed is None:
        assert torch.all(jacobian[earlier] > 0)


def test_masked_linear_multiplies_its_weight_by_the_mask() -> None:
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    layer = MaskedLinear(mask)
    x = torch.randn(4, 3)
    torch.testing.assert_close(layer(x), x @ (layer.weight * mask).T + layer.bias)
    layer(x).sum().backward()
    assert torch.all(layer.weight.grad[mask == 0] == 0)
    assert "mask" in layer.state_dict()


def random_layer(features: int, order: torch.Tensor, **kwargs) -> MaskedAutoregressiveAffine:
    layer = MaskedAutoregressiveAffine(features, order, width=max(features, 16), **kwargs)
    return perturb(layer, scale=0.3)


@pytest.mark.parametrize("features", DIMS)
@pytest.mark.parametrize("order_name", ["natural", "reverse", "random"])
def test_layer_is_exact(features: int, order_name: str) -> None:
    layer = random_layer(features, orders(features)[order_name])
    x = 2 * torch.randn(8, features)
    z, logabsdet = layer(x)
    assert z.shape == x.shape and logabsdet.shape == (8,)
    torch.testing.assert_close(layer.inverse(z), x, atol=1e-10, rtol=0)
    torch.testing.assert_close(logabsdet, brute_logabsdet(lambda v: layer(v)[0], x),
                               atol=1e-10, rtol=0)


def test_layer_is_the_identity_at_init() -> None:
    layer = MaskedAutoregressiveAffine(6, width=16)
    x = torch.randn(5, 6)
    z, logabsdet = layer(x)
    assert torch.equal(z, x) and torch.equal(logabsdet, torch.zeros(5))


def test_layer_log_scale_is_bounded_like_affine_coupling() -> None:
    layer = MaskedAutoregressiveAffine(4, width=8, scale_bound=2.0)
    with torch.no_grad():
        layer.made.net[-1].bias.fill_(1e6)  # a conditioner gone wild
    z, logabsdet = layer(torch.randn(3, 4))
    assert torch.isfinite(z).all()
    torch.testing.assert_close(logabsdet, torch.full((3,), 4 * 2.0))


def test_one_dimension_is_a_learned_elementwise_affine_map() -> None:
    layer = MaskedAutoregressiveAffine(1, width=4)
    with torch.no_grad():
        layer.made.net[-1].bias.copy_(torch.tensor([0.5, -1.0]))  # raw log-scale, shift
    x = torch.randn(7, 1)
    z, logabsdet = layer(x)
    log_scale = 3.0 * torch.tanh(torch.tensor(0.5 / 3.0))
    torch.testing.assert_close(z, x * torch.exp(log_scale) - 1.0)
    torch.testing.assert_close(logabsdet, log_scale.expand(7))
    torch.testing.assert_close(layer.inverse(z), x, atol=1e-12, rtol=0)


def test_density_takes_one_conditioner_pass_and_sampling_d() -> None:
    features = 6
    layer = random_layer(features, orders(features)["random"])
    calls = []
    layer.made.register_forward_hook(lambda *args: calls.append(1))
    z, _ = layer(torch.randn(3, features))
    assert len(calls) == 1
    calls.clear()
    layer.inverse(z)
    assert len(calls) == features


def test_each_inverse_pass_fixes_one_more_dimension_along_the_order() -> None:
    """After k passes exactly the first k dimensions along the order are right: D passes are
    needed, not fewer."""
    features = 5
    order = orders(features)["random"]
    layer = random_layer(features, order)
    x = torch.randn(4, features)
    z, _ = layer(x)
    guess = torch.zeros_like(z)
    for k in range(1, features + 1):
        log_scale, shift = layer._scale_shift(guess)
        guess = (z - shift) * torch.exp(-log_scale)
        error = (guess - x).abs().amax(dim=0)
        assert torch.all(error[order[:k]] < 1e-12), k
        if k < features:
            assert error[order[k]] > 1e-6, k


def test_made_masks_and_order_are_persistent_buffers() -> None:
    made = MADE(4, [2, 0, 3, 1], width=8, depth=2, degree_seed=3)
    state = made.state_dict()
    assert torch.equal(state["order"], torch.tensor([2, 0, 3, 1]))
    assert {"net.0.mask", "net.2.mask", "net.4.mask"} <= set(state)
    reloaded = MADE(4, width=8, depth=2)  # natural order, sequential degrees
    reloaded.load_state_dict(state)
    x = torch.randn(3, 4)
    torch.testing.assert_close(reloaded(x), made(x), atol=0, rtol=0)


def test_layers_built_from_one_order_tensor_keep_their_own_buffers() -> None:
    shared = torch.arange(3)
    first, second = MADE(3, shared, width=4), MADE(3, shared, width=4)
    first.order.copy_(torch.tensor([2, 1, 0]))  # as load_state_dict does
    assert second.order.tolist() == [0, 1, 2] and shared.tolist() == [0, 1, 2]


def test_made_degrees_come_from_their_own_seed() -> None:
    def masks(made: MADE) -> list[list[list[float]]]:
        return [layer.mask.tolist() for layer in made.net if isinstance(layer, MaskedLinear)]

    first = masks(MADE(6, width=12, degree_seed=1))
    torch.manual_seed(9)  # the global RNG plays no part
    assert masks(MADE(6, width=12, degree_seed=1)) == first
    assert masks(MADE(6, width=12, degree_seed=2)) != first
    assert masks(MADE(6, width=12)) != first  # sequential degrees


@pytest.mark.parametrize("call,message", [
    (lambda: MADE(40, width=16), "width >= 39"),
    (lambda: MADE(3, [0, 1, 1]), "permutation of 0..2"),
    (lambda: MaskedAutoregressiveAffine(3, scale_bound=0.0), "scale_bound must be positive"),
    (lambda: MaskedAutoregressiveAffine(3)(torch.randn(2, 4)), r"expects \(N, 3\)"),
])
def test_bad_layer_input_is_rejected(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# --- the registered flow -------------------------------------------------------------------------

FLOW_CASES = list(itertools.product((2, 5, 32), ("reverse", "random"), (False, True)))


def maf(features: int, **hparams) -> flowbench.Flow:
    return flowbench.build_flow("maf", "normal", (features,), width=max(16, features), **hparams)


def away_from_init(flow: flowbench.Flow, features: int) -> flowbench.Flow:
    """Perturbed weights and, with batch norm, running statistics that are not (0, 1). (0.2:
    at 0.3 five stacked layers in 32-D send latents to ~1e3, where float64 round-off alone
    leaves ~1e-9 in the inverse.)"""
    flow.train()
    with torch.no_grad():
        flow(3 * torch.randn(256, features) + 1)
    flow.eval()
    return perturb(flow, scale=0.2)


@pytest.mark.parametrize("features,order,batchnorm", FLOW_CASES)
def test_flow_is_exact(features: int, order: str, batchnorm: bool) -> None:
    flow = away_from_init(maf(features, order=order, batchnorm=batchnorm), features)
    has_batchnorm = any(isinstance(layer, BatchNormFlow) for layer in flow.layers())
    assert has_batchnorm == batchnorm
    x = torch.randn(6, features)
    z, logabsdet = flow(x)
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-10, rtol=0)
    torch.testing.assert_close(logabsdet, brute_logabsdet(lambda v: flow(v)[0], x),
                               atol=1e-9, rtol=0)


def test_flow_layout_alternates_orders_with_batchnorm_between_layers() -> None:
    transform = flowbench_maf.build((4,), layers=3, width=8, batchnorm=True)
    kinds = [type(layer).__name__ for layer in transform]
    assert kinds == ["MaskedAutoregressiveAffine", "BatchNormFlow", "MaskedAutoregressiveAffine",
                     "BatchNormFlow", "MaskedAutoregressiveAffine"]
    mafs = [layer for layer in transform if isinstance(layer, MaskedAutoregressiveAffine)]
    assert [m.made.order.tolist() for m in mafs] == [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 2, 3]]


def test_random_orders_are_seeded_and_differ_from_reverse() -> None:
    def layer_orders(**hparams) -> list[list[int]]:
        return [layer.made.order.tolist() for layer in flowbench_maf.build((8,), width=8,
                                                                           **hparams)]

    torch.manual_seed(1)
    first = layer_orders(order="random", order_seed=4)
    torch.manual_seed(2)  # the global RNG plays no part
    assert layer_orders(order="random", order_seed=4) == first
    assert layer_orders(order="random", order_seed=5) != first
    assert first != layer_orders(order="reverse")
    assert len({tuple(o) for o in first}) > 1  # a fresh permutation per layer
    assert all(sorted(o) == list(range(8)) for o in first)


def made_orders(flow: flowbench.Flow) -> list[list[int]]:
    return [layer.made.order.tolist() for layer in flow.layers()
            if isinstance(layer, MaskedAutoregressiveAffine)]


@pytest.mark.parametrize("saved,loaded", [("random", "random"), ("random", "reverse"),
                                          ("reverse", "random")])
def test_state_dict_reload_reproduces_a_differently_built_flow(saved: str, loaded: str) -> None:
    """The orderings and masks live in the state dict: loading into a build with another
    ordering (or order seed) and another global seed gives the same orders, densities and
    samples."""
    torch.manual_seed(0)
    trained = away_from_init(maf(5, order=saved, order_seed=0, batchnorm=True), 5)
    torch.manual_seed(1)
    other = maf(5, order=loaded, order_seed=1, batchnorm=True)
    assert made_orders(other) != made_orders(trained)
    other.load_state_dict(trained.state_dict())
    other.eval()
    assert made_orders(other) == made_orders(trained)
    x = torch.randn(32, 5)
    with torch.no_grad():
        torch.testing.assert_close(other.log_prob(x), trained.log_prob(x), atol=0, rtol=0)
        torch.testing.assert_close(other.sample(16, torch.Generator().manual_seed(0)),
                                   trained.sample(16, torch.Generator().manual_seed(0)),
                                   atol=0, rtol=0)


def test_construction_is_deterministic() -> None:
    def build() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        return maf(5, order="random", batchnorm=True).state_dict()

    first, second = build(), build()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("call,message", [
    (lambda: flowbench_maf.build((1, 8, 8)), r"vectors \(D,\) only; got event shape \(1, 8, 8\)"),
    (lambda: flowbench_maf.build((4,), order="shuffle"), "unknown order 'shuffle'"),
    (lambda: flowbench_maf.build((4,), layers=0), "layers >= 1"),
])
def test_bad_flow_settings_are_rejected(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("features", [2, 64, 300])
def test_search_space_only_proposes_widths_made_can_use(features: int) -> None:
    defaults = flowbench.get_registry().spec("flow", "maf").defaults
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        params = flowbench_maf.search_space(study.ask(), (features,))
        assert set(params) <= set(defaults)
        assert params["width"] >= features - 1
    flowbench_maf.build((features,), **{**params, "layers": 1})
    if features == 2:  # RealNVP's widths where they all work
        assert study.trials[0].distributions["width"].choices == (32, 64, 128)


@pytest.mark.parametrize("shape,hparams", [((2,), {"batchnorm": True}),
                                           ((5,), {"order": "random", "batchnorm": True})])
def test_non_default_settings_pass_flowbench_check(shape, hparams) -> None:
    """What ``flowbench check maf --set ...`` runs, for the settings the defaults leave out."""
    report = check_registered("maf", event_shape=shape, hparams={"width": 16, **hparams})
    assert report.passed, "\n" + "\n".join(str(f) for f in report.failures)
