"""Built-in plugin: RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real
NVP", arXiv:1605.08803).

Vector data: a stack of affine couplings with alternating partitions (MLP conditioners).
Images (C, H, W): the multiscale architecture of section 3.6 — per scale 3 checkerboard couplings,
squeeze, 3 channel couplings, factor out half; the last scale 4 checkerboard couplings — with
ResNet conditioners and, optionally, batch normalisation as a flow layer after every coupling
(section 3.7). Each form ignores the other form's hyperparameters.
"""

from __future__ import annotations

from flowbench import FlowSpec, hookimpl
from flowbench.search_spaces import halvings, mlp_conditioner, resnet_conditioner, scale_bound
from flowbench.layers import (
    AffineCoupling, BatchNormFlow, Compose, MaskPartition, Multiscale, Squeeze,
    alternating_partition, channel_partition, checkerboard_mask, event_size, mlp_factory,
    resnet_factory,
)
from flowbench.specs import defaults_of


def build(
    event_shape: tuple[int, ...], layers: int = 8, width: int = 64, depth: int = 2,
    activation: str = "relu", partition: str = "split", scale_bound: float = 3.0,
    scales: int = 2, hidden: int = 32, blocks: int = 2, batchnorm: bool = True,
):
    """The vector form for (D,) events, the multiscale image form for (C, H, W). These keyword
    defaults are the registered ones (``defaults_of``)."""
    if len(event_shape) == 3:
        return build_image(tuple(event_shape), scales=scales, hidden=hidden, blocks=blocks,
                           batchnorm=batchnorm, scale_bound=scale_bound)
    if len(event_shape) != 1:
        raise ValueError(f"realnvp models vectors (D,) or images (C, H, W); got {event_shape}")
    features = event_size(event_shape)
    conditioner = mlp_factory(width, depth, activation)
    return Compose([
        AffineCoupling(alternating_partition(features, k % 2 == 1, partition), conditioner,
                       scale_bound)
        for k in range(layers)
    ])


def build_image(event_shape: tuple[int, int, int], *, scales: int, hidden: int, blocks: int,
                batchnorm: bool, scale_bound: float) -> Multiscale:
    """RealNVP's multiscale architecture for (C, H, W) images (defaults: see ``build``)."""
    channels, height, width = event_shape
    if scales < 1 or height % 2 ** (scales - 1) or width % 2 ** (scales - 1):
        raise ValueError(f"{scales} scales need H and W divisible by {2 ** (scales - 1)}; "
                         f"got {event_shape}")
    conditioner = resnet_factory(hidden, blocks)

    def coupled(partition, features: int) -> list:
        layer = [AffineCoupling(partition, conditioner, scale_bound)]
        return layer + [BatchNormFlow(features)] if batchnorm else layer

    def checkerboard(c: int, h: int, w: int, count: int) -> list:
        return [part for k in range(count)
                for part in coupled(MaskPartition(checkerboard_mask(c, h, w, k % 2)), c)]

    levels = []
    c, h, w = channels, height, width
    for _ in range(scales - 1):
        steps = checkerboard(c, h, w, 3) + [Squeeze()]
        c, h, w = 4 * c, h // 2, w // 2
        steps += [part for k in range(3) for part in coupled(channel_partition(c, k % 2 == 1), c)]
        levels.append(Compose(steps))
        c //= 2  # half of the channels factored out
    levels.append(Compose(checkerboard(c, h, w, 4)))
    return Multiscale(event_shape, levels)


def search_space(trial, event_shape=(2,)) -> dict:
    """Tuning ranges for the form that ``event_shape`` selects."""
    if len(event_shape) == 3:
        most = min(3, 1 + halvings(event_shape[1:]))  # every squeeze halves H and W
        return {"scales": trial.suggest_int("scales", 1, most), **resnet_conditioner(trial),
                **scale_bound(trial)}
    return {"layers": trial.suggest_int("layers", 2, 12), **mlp_conditioner(trial),
            **scale_bound(trial)}


@hookimpl
def flowbench_register_flows() -> list[FlowSpec]:
    return [FlowSpec(
        name="realnvp",
        build=build,
        description="RealNVP: affine couplings; images: checkerboard/channel masks, squeeze, "
                    "multiscale, batch norm",
        reference="Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803",
        defaults=defaults_of(build),
        data_kinds=("vector", "image"),
        search_space=search_space,
    )]
