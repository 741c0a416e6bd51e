"""Image layers: RealNVP's checkerboard and channel masks, the ResNet conditioner, squeeze and
flatten, batch normalisation as a flow layer and the multiscale architecture (Dinh,
Sohl-Dickstein & Bengio 2017, arXiv:1605.08803; Kingma & Dhariwal 2018, arXiv:1807.03039).

Every layer is checked (float64, away from its identity initialisation) for invertibility and
for its log-det against the brute-force autograd Jacobian."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from flowbench.distributions import StandardNormal
from flowbench.flow import Flow
from flowbench.layers.base import Compose
from flowbench.layers.coupling import AdditiveCoupling, AffineCoupling
from flowbench.layers.elementwise import ActNorm
from flowbench.layers.linear import InvertibleLinear, LUInvertibleLinear
from flowbench.layers.partition import IndexPartition, MaskPartition
from flowbench.layers.convnets import ResNet, resnet_factory
from flowbench.layers.masks import channel_partition, checkerboard_mask
from flowbench.layers.multiscale import Multiscale
from flowbench.layers.normalization import BatchNormFlow
from flowbench.layers.reshape import Flatten, Squeeze
from flowbench.testing import brute_force_logabsdet, perturb, check_flow

torch.set_num_threads(1)

SHAPES = [(1, 4, 4), (3, 4, 4)]
BATCH = 6


pytestmark = pytest.mark.usefixtures("float64")


def randomise(module: nn.Module, scale: float = 0.3) -> nn.Module:
    return perturb(module, scale)


def assert_exact(layer, x: torch.Tensor, out_shape: tuple[int, ...] | None = None) -> None:
    """Invertible, log-det of shape (N,) equal to the brute-force Jacobian's (eval mode)."""
    layer = layer.double().eval()
    with torch.no_grad():
        z, logabsdet = layer(x)
        x_back = layer.inverse(z)
    assert logabsdet.shape == (x.shape[0],)
    expected = x.shape if out_shape is None else (x.shape[0], *out_shape)
    assert z.shape == expected
    assert tuple(layer.output_shape(tuple(x.shape[1:]))) == tuple(z.shape[1:])
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    brute = brute_force_logabsdet(lambda v: layer(v)[0], x)
    torch.testing.assert_close(logabsdet, brute, atol=1e-8, rtol=0)


def images(shape: tuple[int, ...], n: int = BATCH) -> torch.Tensor:
    return 1.5 * torch.randn(n, *shape) + 0.2


FACTORY = resnet_factory(hidden=8, blocks=1)


# --- masks ---------------------------------------------------------------------------------------

def test_checkerboard_mask_pattern() -> None:
    mask = checkerboard_mask(2, 3, 4)
    assert mask.shape == (2, 3, 4) and mask.dtype == torch.float64
    expected = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]])
    assert torch.equal(mask[0], expected) and torch.equal(mask[1], expected)
    assert torch.equal(checkerboard_mask(2, 3, 4, parity=1), 1 - mask)
    with pytest.raises(ValueError, match="parity"):
        checkerboard_mask(1, 2, 2, parity=2)


def test_channel_partition_halves_the_channels() -> None:
    x = torch.randn(2, 5, 2, 2)
    first, second = channel_partition(5), channel_partition(5, flip=True)
    assert isinstance(first, IndexPartition)
    assert torch.equal(first.kept(x), x[:, :3]) and torch.equal(first.transformed(x), x[:, 3:])
    assert torch.equal(second.kept(x), x[:, 3:]) and torch.equal(second.transformed(x), x[:, :3])
    with pytest.raises(ValueError, match="at least 2 channels"):
        channel_partition(1)


# --- ResNet conditioner --------------------------------------------------------------------------

@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("norm", ["none", "group"])
def test_resnet_keeps_spatial_size_and_starts_at_zero(kernel_size: int, norm: str) -> None:
    net = ResNet(3, 10, hidden=8, blocks=2, kernel_size=kernel_size, norm=norm)
    x = torch.randn(4, 3, 5, 6)
    out = net(x)
    assert out.shape == (4, 10, 5, 6)
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("norm", ["none", "group"])
def test_resnet_never_couples_examples(norm: str) -> None:
    """No batch statistics: in training mode too, one example's output ignores the others."""
    net = randomise(ResNet(2, 4, hidden=8, blocks=2, norm=norm)).train()
    x = torch.randn(5, 2, 4, 4)
    together = net(x)
    alone = torch.cat([net(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, atol=1e-12, rtol=0)
    # and works on 1x1 feature maps (deep in a multiscale stack)
    assert net(torch.randn(3, 2, 1, 1)).shape == (3, 4, 1, 1)


def test_resnet_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="odd"):
        resnet_factory(kernel_size=2)
    with pytest.raises(ValueError, match="norm"):
        resnet_factory(norm="batch")
    with pytest.raises(ValueError, match="activation"):
        resnet_factory(activation="nope")
    with pytest.raises(ValueError, match="images"):
        ResNet(2, 2)(torch.randn(3, 2))


# --- couplings on images -------------------------------------------------------------------------

PARTITIONS = {
    "checker-0": lambda s: MaskPartition(checkerboard_mask(*s, parity=0)),
    "checker-1": lambda s: MaskPartition(checkerboard_mask(*s, parity=1)),
    "channel": lambda s: channel_partition(s[0]),
    "channel-flip": lambda s: channel_partition(s[0], flip=True),
}
CASES = [(p, s) for s in SHAPES for p in PARTITIONS if s[0] > 1 or p.startswith("checker")]


@pytest.mark.parametrize("coupling", [AdditiveCoupling, AffineCoupling])
@pytest.mark.parametrize("partition,shape", CASES)
def test_image_coupling_exact(coupling, partition: str, shape) -> None:
    layer = coupling(PARTITIONS[partition](shape), FACTORY)
    assert_exact(randomise(layer), images(shape))


@pytest.mark.parametrize("norm", ["none", "group"])
def test_image_coupling_exact_with_group_norm_conditioner(norm: str) -> None:
    layer = AffineCoupling(channel_partition(3), resnet_factory(8, 2, norm=norm))
    assert_exact(randomise(layer), images((3, 4, 4)))


@pytest.mark.parametrize("coupling", [AdditiveCoupling, AffineCoupling])
@pytest.mark.parametrize("partition,shape", CASES)
def test_image_coupling_is_identity_at_init(coupling, partition: str, shape) -> None:
    layer = coupling(PARTITIONS[partition](shape), FACTORY)
    x = images(shape)
    z, logabsdet = layer(x)
    assert torch.equal(z, x)
    assert torch.equal(logabsdet, torch.zeros(BATCH))


def test_checkerboard_coupling_keeps_the_kept_pixels() -> None:
    mask = checkerboard_mask(3, 4, 4)
    layer = randomise(AffineCoupling(MaskPartition(mask), FACTORY))
    x = images((3, 4, 4))
    z, _ = layer(x)
    kept = mask.bool().expand_as(x)
    assert torch.equal(z[kept], x[kept])
    assert not torch.allclose(z[~kept], x[~kept])


@pytest.mark.parametrize("shape", SHAPES)
def test_actnorm_on_images_exact(shape) -> None:
    layer = ActNorm(shape[0])
    layer(images(shape, 32))  # data-dependent initialisation
    assert bool(layer.initialized)
    assert_exact(randomise(layer), images(shape))


@pytest.mark.parametrize("layer_type", [InvertibleLinear, LUInvertibleLinear])
@pytest.mark.parametrize("shape", SHAPES)
def test_one_by_one_convolution_on_images_exact(layer_type, shape) -> None:
    assert_exact(randomise(layer_type(shape[0])), images(shape))


# --- reshapes ------------------------------------------------------------------------------------

def test_squeeze_layout_matches_realnvp() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    z, logabsdet = Squeeze()(x)
    expected = torch.tensor([
        [[0.0, 2], [8, 10]],   # offset (0, 0) of each 2x2 block
        [[1.0, 3], [9, 11]],   # (0, 1)
        [[4.0, 6], [12, 14]],  # (1, 0)
        [[5.0, 7], [13, 15]],  # (1, 1)
    ]).unsqueeze(0)
    assert torch.equal(z, expected)
    assert torch.equal(logabsdet, torch.zeros(1))
    # general rule z[:, 4c + 2i + j, h, w] = x[:, c, 2h + i, 2w + j], channel-major
    x = torch.randn(2, 3, 4, 6)
    z, _ = Squeeze()(x)
    for c in range(3):
        for i in range(2):
            for j in range(2):
                assert torch.equal(z[:, 4 * c + 2 * i + j], x[:, c, i::2, j::2])


@pytest.mark.parametrize("shape", SHAPES + [(2, 2, 6)])
def test_squeeze_exact_and_output_shape(shape) -> None:
    c, h, w = shape
    assert Squeeze().output_shape(shape) == (4 * c, h // 2, w // 2)
    assert_exact(Squeeze(), images(shape), (4 * c, h // 2, w // 2))


def test_squeeze_rejects_odd_sizes() -> None:
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze()(torch.randn(2, 1, 3, 4))
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze().output_shape((1, 4, 5))
    with pytest.raises(ValueError, match="images"):
        Squeeze().output_shape((16,))


@pytest.mark.parametrize("shape", SHAPES)
def test_flatten_exact_and_output_shape(shape) -> None:
    layer = Flatten(shape)
    size = shape[0] * shape[1] * shape[2]
    assert layer.output_shape(shape) == (size,)
    assert_exact(layer, images(shape), (size,))
    x = images(shape)
    assert torch.equal(layer(x)[0], x.reshape(BATCH, -1))
    with pytest.raises(ValueError, match="event"):
        layer(torch.randn(2, 2, 4, 4))


# --- batch normalisation -------------------------------------------------------------------------

def trained_batchnorm(shape, steps: int = 5) -> BatchNormFlow:
    layer = randomise(BatchNormFlow(shape[0])).train()
    with torch.no_grad():
        for _ in range(steps):
            layer(images(shape, 16))
    return layer


@pytest.mark.parametrize("shape", SHAPES + [(5,)])
def test_batchnorm_eval_mode_exact(shape) -> None:
    assert_exact(trained_batchnorm(shape), images(shape))


@pytest.mark.parametrize("shape", SHAPES + [(5,)])
def test_batchnorm_training_mode_uses_the_batch(shape) -> None:
    layer = randomise(BatchNormFlow(shape[0], momentum=0.2)).train()
    x = images(shape)
    dims = [0, *range(2, x.dim())]
    mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    z, logabsdet = layer(x)
    per_example = x[0, 0].numel()
    expected = ((layer.log_gamma - 0.5 * torch.log(var + layer.eps)).sum() * per_example)
    torch.testing.assert_close(logabsdet, expected.expand(BATCH), atol=1e-12, rtol=0)
    view = (1, -1, *([1] * (x.dim() - 2)))
    normalised = (z - layer.beta.view(view)) * torch.exp(-layer.log_gamma.view(view))
    torch.testing.assert_close(normalised.mean(dim=dims), torch.zeros(shape[0]),
                               atol=1e-10, rtol=0)
    torch.testing.assert_close(normalised.var(dim=dims, unbiased=False),
                               var / (var + layer.eps), atol=1e-10, rtol=0)
    # running averages moved from (0, 1) towards the batch's (unbiased variance, as nn.BatchNorm)
    count = x.numel() // shape[0]
    torch.testing.assert_close(layer.running_mean, 0.2 * mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(layer.running_var, 0.8 + 0.2 * var * count / (count - 1),
                               atol=1e-12, rtol=0)
    assert logabsdet.requires_grad


def test_batchnorm_inverse_refuses_training_mode() -> None:
    layer = BatchNormFlow(3).train()
    z, _ = layer(images((3, 4, 4)))
    with pytest.raises(RuntimeError, match="eval"):
        layer.inverse(z)
    layer.eval()
    assert layer.inverse(z).shape == z.shape


def test_batchnorm_state_dict_keeps_running_statistics() -> None:
    trained = trained_batchnorm((3, 4, 4)).eval()
    assert {"running_mean", "running_var"} <= set(trained.state_dict())
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    reloaded = BatchNormFlow(3)
    reloaded.load_state_dict(torch.load(buffer, weights_only=True))
    reloaded.eval()
    x = images((3, 4, 4))
    z_a, ld_a = trained(x)
    z_b, ld_b = reloaded(x)
    assert torch.equal(z_a, z_b) and torch.equal(ld_a, ld_b)
    assert not torch.equal(reloaded.running_var, torch.ones(3))


def test_batchnorm_needs_more_than_one_value_in_training() -> None:
    with pytest.raises(ValueError, match="more than one value"):
        BatchNormFlow(2).train()(torch.randn(1, 2))


# --- multiscale ----------------------------------------------------------------------------------

def small_multiscale() -> Multiscale:
    """1x8x8: [checkerboard coupling, squeeze, channel coupling] -> split 4x4x4 into 2 + 2
    channels -> [squeeze, 1x1 conv, channel coupling] on 2x4x4 -> 8x2x2."""
    first = Compose([
        AffineCoupling(MaskPartition(checkerboard_mask(1, 8, 8)), FACTORY),
        Squeeze(),
        AffineCoupling(channel_partition(4), FACTORY),
    ])
    last = Compose([
        Squeeze(), LUInvertibleLinear(8), AffineCoupling(channel_partition(8, flip=True), FACTORY),
    ])
    return Multiscale((1, 8, 8), [first, last], [True, False])


def test_multiscale_shapes() -> None:
    layer = small_multiscale()
    assert layer.level_shapes == [((1, 8, 8), (4, 4, 4), (2, 4, 4)),
                                  ((2, 4, 4), (8, 2, 2), None)]
    assert layer.part_sizes == [32, 32]
    assert layer.output_shape((1, 8, 8)) == (64,)
    assert [type(leaf).__name__ for leaf in layer.leaves()] == [
        "AffineCoupling", "Squeeze", "AffineCoupling", "Squeeze", "LUInvertibleLinear",
        "AffineCoupling"]
    with pytest.raises(ValueError, match="built for"):
        layer.output_shape((1, 4, 4))


def test_multiscale_exact() -> None:
    layer = randomise(small_multiscale(), 0.2)
    assert_exact(layer, images((1, 8, 8)), (64,))


def test_multiscale_factored_part_skips_later_levels() -> None:
    layer = randomise(small_multiscale(), 0.2)
    x = images((1, 8, 8))
    with torch.no_grad():
        z, _ = layer(x)
        h, _ = layer.levels[0](x)
        torch.testing.assert_close(z[:, :32], h[:, 2:].reshape(BATCH, -1), atol=0, rtol=0)
        randomise(layer.levels[1])
        z_after, _ = layer(x)
    assert torch.equal(z_after[:, :32], z[:, :32])
    assert not torch.allclose(z_after[:, 32:], z[:, 32:])


def test_multiscale_identity_at_init_and_logdet_adds_up() -> None:
    layer = small_multiscale()
    x = images((1, 8, 8))
    z, logabsdet = layer(x)
    # couplings are the identity at init; only the 1x1 convolution (a rotation) acts
    assert torch.allclose(logabsdet, torch.zeros(BATCH), atol=1e-12)
    randomise(layer, 0.2)
    with torch.no_grad():
        h, first = layer.levels[0](x)
        _, second = layer.levels[1](h[:, :2])
        torch.testing.assert_close(layer(x)[1], first + second, atol=1e-12, rtol=0)


def test_multiscale_rejects_bad_configurations() -> None:
    odd = Compose([AffineCoupling(MaskPartition(checkerboard_mask(1, 4, 4)), FACTORY)])
    with pytest.raises(ValueError, match="even size"):  # 1 channel cannot be split
        Multiscale((1, 4, 4), [odd, Squeeze()], [True, False])
    with pytest.raises(ValueError, match="last level"):
        Multiscale((1, 4, 4), [Squeeze()], [True])
    with pytest.raises(ValueError, match="split flags"):
        Multiscale((1, 4, 4), [Squeeze(), Squeeze()], [True])
    with pytest.raises(ValueError, match="even height"):  # 4x4 -> 2x2 (split) -> 1x1 -> odd
        Multiscale((1, 4, 4), [Squeeze(), Squeeze(), Squeeze()])
    layer = Multiscale((1, 4, 4), [Squeeze(), Squeeze()])  # split defaults to all but the last
    assert layer.split == (True, False)
    with pytest.raises(ValueError, match="events of shape"):
        layer(torch.randn(2, 1, 8, 8))


def test_multiscale_flow_passes_check_flow() -> None:
    flow = Flow(small_multiscale(), StandardNormal((64,)), event_shape=(1, 8, 8))
    data = 0.8 * torch.randn(128, 1, 8, 8) + 0.3
    report = check_flow(flow, data, n=4, train_steps=5, density=False)
    assert report.passed, str(report)
    assert flow.sample(3).shape == (3, 1, 8, 8)
