"""Every layer alone: invertibility and log-det against the brute-force Jacobian (float64),
checked away from the identity (random conditioner weights), plus layer-specific behaviour."""

from __future__ import annotations

import io
import re

import pytest
import torch
from torch import nn

from flowbench.layers import (
    ActNorm, AdditiveCoupling, AffineCoupling, Compose, DiagonalScaling, FixedAffine,
    IndexPartition, InvertibleLinear, LUInvertibleLinear, MaskPartition, MLP, Permutation,
    alternating_partition, mlp_factory,
)
from flowbench.testing import brute_force_logabsdet, perturb



pytestmark = pytest.mark.usefixtures("float64")


def randomise(module: nn.Module, scale: float = 0.3) -> nn.Module:
    return perturb(module, scale)


def assert_exact(layer, x: torch.Tensor) -> None:
    layer = layer.double().eval()
    z, logabsdet = layer(x)
    assert logabsdet.shape == (x.shape[0],)
    assert z.shape == x.shape
    torch.testing.assert_close(layer.inverse(z), x, atol=1e-10, rtol=0)
    brute = brute_force_logabsdet(lambda v: layer(v)[0], x)
    torch.testing.assert_close(logabsdet, brute, atol=1e-8, rtol=0)


PARTITIONS = {
    "split-halves": lambda d: IndexPartition.halves(d),
    "split-flipped": lambda d: IndexPartition.halves(d, flip=True),
    "split-scattered": lambda d: IndexPartition([0, 3, 4], [1, 2]),
    "mask-alternating": lambda d: MaskPartition.alternating(d),
    "mask-flipped": lambda d: MaskPartition.alternating(d, flip=True),
}


@pytest.mark.parametrize("partition", PARTITIONS)
@pytest.mark.parametrize("coupling", ["additive", "affine"])
def test_coupling_exact(partition: str, coupling: str) -> None:
    x = torch.randn(8, 5, dtype=torch.float64) * 2
    part = PARTITIONS[partition](5)
    factory = mlp_factory(width=16, depth=2, activation="tanh")
    layer = AdditiveCoupling(part, factory) if coupling == "additive" else \
        AffineCoupling(part, factory)
    assert_exact(randomise(layer), x)


@pytest.mark.parametrize("coupling", [AdditiveCoupling, AffineCoupling])
@pytest.mark.parametrize("partition", ["split", "mask"])
def test_coupling_is_identity_at_init(coupling, partition: str) -> None:
    layer = coupling(alternating_partition(6, False, partition), mlp_factory(32, 2, "relu"))
    x = torch.randn(10, 6)
    z, logabsdet = layer(x)
    assert torch.equal(z, x)
    assert torch.equal(logabsdet, torch.zeros(10))


def test_coupling_keeps_the_kept_part_and_changes_the_rest() -> None:
    layer = randomise(AffineCoupling(IndexPartition([0, 2], [1, 3]), mlp_factory(8, 1)))
    x = torch.randn(4, 4)
    z, _ = layer(x)
    assert torch.equal(z[:, [0, 2]], x[:, [0, 2]])
    assert not torch.allclose(z[:, [1, 3]], x[:, [1, 3]])


def test_affine_log_scale_is_bounded() -> None:
    layer = AffineCoupling(IndexPartition.halves(2), mlp_factory(8, 1), scale_bound=2.0)
    with torch.no_grad():
        layer.conditioner[-1].bias.fill_(1e6)  # a conditioner gone wild
    z, logabsdet = layer(torch.randn(3, 2))
    assert torch.isfinite(z).all()
    assert float(logabsdet.detach().max()) <= 2.0 + 1e-12


def test_split_and_mask_partitions_give_the_same_affine_map() -> None:
    """The fast index split is the RealNVP mask equation with the conditioner restricted."""
    x = torch.randn(6, 4)
    mask = MaskPartition(torch.tensor([1.0, 1.0, 0.0, 0.0]))
    split = IndexPartition.halves(4)
    masked = AffineCoupling(mask, mlp_factory(8, 1))
    fast = AffineCoupling(split, mlp_factory(8, 1))
    randomise(masked)
    with torch.no_grad():  # copy weights: the mask net sees [x1, x2, 0, 0] and predicts s,t for all
        first, last = masked.conditioner[0], masked.conditioner[-1]
        fast.conditioner[0].weight.copy_(first.weight[:, :2])
        fast.conditioner[0].bias.copy_(first.bias)
        s_rows, t_rows = last.weight[:4], last.weight[4:]
        fast.conditioner[-1].weight.copy_(torch.cat([s_rows[2:], t_rows[2:]]))
        fast.conditioner[-1].bias.copy_(torch.cat([last.bias[2:4], last.bias[6:]]))
    z_mask, ld_mask = masked(x)
    z_fast, ld_fast = fast(x)
    torch.testing.assert_close(z_mask, z_fast)
    torch.testing.assert_close(ld_mask, ld_fast)


@pytest.mark.parametrize("bad,message", [
    (([0, 1], [1, 2]), "keep [0, 1] and change [1, 2] must partition 0..3 exactly"),
    (([0], []), "both parts of a partition must be non-empty"),
    (([0, 2], [3]), "keep [0, 2] and change [3] must partition 0..2 exactly"),
])
def test_bad_index_partitions_are_rejected(bad, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        IndexPartition(*bad)


def test_bad_masks_are_rejected() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        MaskPartition(torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="keep some"):
        MaskPartition(torch.ones(3))


def test_diagonal_scaling_exact() -> None:
    assert_exact(randomise(DiagonalScaling((3,))), torch.randn(5, 3))


@pytest.mark.parametrize("make", [lambda: Permutation.reverse(5),
                                  lambda: Permutation.random(5, seed=3)])
def test_permutation_exact(make) -> None:
    assert_exact(make(), torch.randn(4, 5))


def test_random_permutation_is_fixed_by_its_seed() -> None:
    assert torch.equal(Permutation.random(10, 1).permutation, Permutation.random(10, 1).permutation)
    assert not torch.equal(Permutation.random(10, 1).permutation,
                           Permutation.random(10, 2).permutation)
    with pytest.raises(ValueError, match="not a permutation"):
        Permutation([0, 0, 1])


@pytest.mark.parametrize("shape", [(64, 3), (16, 3, 4, 4)])
def test_actnorm_initialises_from_data_and_is_exact(shape) -> None:
    x = torch.randn(*shape) * 3 + 2
    layer = ActNorm(3)
    layer.train()
    z, _ = layer(x)
    per_feature = z.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_feature.mean(1), torch.zeros(3), atol=1e-10, rtol=0)
    torch.testing.assert_close(per_feature.std(1), torch.ones(3), atol=1e-5, rtol=0)
    assert_exact(randomise(layer), x[:4])


def test_actnorm_reload_does_not_reinitialise() -> None:
    trained = ActNorm(2)
    trained(torch.randn(100, 2) * 5 + 1)
    with torch.no_grad():
        trained.log_scale.add_(0.7)  # "training" moved it away from the data-dependent init
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    reloaded = ActNorm(2)
    reloaded.load_state_dict(torch.load(buffer))
    x = torch.randn(50, 2) * 10  # a batch with very different statistics
    torch.testing.assert_close(reloaded(x)[0], trained(x)[0])
    assert bool(reloaded.initialized)


def test_actnorm_ignores_a_single_example_for_initialisation() -> None:
    layer = ActNorm(2)
    layer(torch.randn(1, 2))
    assert not bool(layer.initialized)


@pytest.mark.parametrize("layer_type", [InvertibleLinear, LUInvertibleLinear])
@pytest.mark.parametrize("shape", [(8, 4), (3, 4, 3, 2)])
def test_invertible_linear_exact(layer_type, shape) -> None:
    assert_exact(randomise(layer_type(4), 0.2), torch.randn(*shape))


def test_lu_linear_is_p_l_u_with_o_c_logdet() -> None:
    layer = randomise(LUInvertibleLinear(6), 0.2)
    weight = layer.weight()
    lower, upper = layer._factors()
    assert torch.equal(torch.tril(lower, -1) + torch.eye(6), lower)
    assert torch.equal(torch.triu(upper), upper)
    torch.testing.assert_close(layer.permutation @ lower @ upper, weight)
    torch.testing.assert_close(layer.log_s.sum(), torch.linalg.slogdet(weight).logabsdet)


@pytest.mark.parametrize("layer_type", [InvertibleLinear, LUInvertibleLinear])
def test_linear_starts_as_a_rotation(layer_type) -> None:
    layer = layer_type(5)
    weight = layer.weight() if callable(layer.weight) else layer.weight
    torch.testing.assert_close(weight @ weight.T, torch.eye(5), atol=1e-6, rtol=0)


def test_fixed_affine_standardises_and_counts_its_logdet() -> None:
    data = torch.randn(500, 3) * torch.tensor([1.0, 10.0, 0.1]) + 4
    layer = FixedAffine.standardize(data)
    z, logabsdet = layer(data)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-10, rtol=0)
    assert_exact(layer, data[:5])
    assert not list(layer.parameters())  # preprocessing is not trained


def test_compose_adds_logdets_and_inverts_in_reverse_order() -> None:
    stack = Compose([randomise(AffineCoupling(IndexPartition.halves(3), mlp_factory(8, 1))),
                     Permutation.reverse(3), randomise(DiagonalScaling((3,)))])
    assert_exact(stack, torch.randn(6, 3))
    steps = stack.forward_steps(torch.randn(2, 3))
    assert [name for name, _, _ in steps] == ["0:AffineCoupling", "1:Permutation",
                                              "2:DiagonalScaling"]


def test_mlp_validates_its_activation() -> None:
    with pytest.raises(ValueError, match="unknown activation 'relux'; valid choices"):
        mlp_factory(8, 2, "relux")
    net = MLP(3, 4, width=8, depth=3, activation_name="gelu")
    assert sum(isinstance(m, nn.Linear) for m in net) == 4
    assert torch.equal(net(torch.randn(2, 3)), torch.zeros(2, 4))
