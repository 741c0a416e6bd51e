"""Built-in plugin: Glow (Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1
Convolutions", arXiv:1807.03039).

Vector data: ``steps`` steps of actnorm -> invertible linear map (LU-parameterised by default;
the vector form of the 1x1 convolution) -> affine coupling. Images (C, H, W): ``levels`` levels
of squeeze, ``steps`` steps of (actnorm, invertible 1x1 convolution, affine coupling with a
ResNet conditioner), split (factor out half) — all but the last level split. Each form ignores
the other form's hyperparameters.
"""

from __future__ import annotations

from flowbench import FlowSpec, hookimpl
from flowbench.search_spaces import halvings, mlp_conditioner, resnet_conditioner, scale_bound
from flowbench.layers import (
    ActNorm, AffineCoupling, Compose, IndexPartition, InvertibleLinear, LUInvertibleLinear,
    Multiscale, Squeeze, channel_partition, event_size, mlp_factory, resnet_factory,
)
from flowbench.specs import defaults_of


def build(
    event_shape: tuple[int, ...], steps: int = 8, width: int = 64, depth: int = 2,
    activation: str = "relu", lu: bool = True, scale_bound: float = 3.0, levels: int = 2,
    hidden: int = 32, blocks: int = 1,
):
    """The vector form for (D,) events, the multiscale image form for (C, H, W). These keyword
    defaults are the registered ones (``defaults_of``)."""
    linear = LUInvertibleLinear if lu else InvertibleLinear
    if len(event_shape) == 3:
        return build_image(tuple(event_shape), levels=levels, steps=steps, hidden=hidden,
                           blocks=blocks, lu=lu, scale_bound=scale_bound)
    if len(event_shape) != 1:
        raise ValueError(f"glow models vectors (D,) or images (C, H, W); got {event_shape}")
    features = event_size(event_shape)
    conditioner = mlp_factory(width, depth, activation)
    return Compose([
        Compose([
            ActNorm(features),
            linear(features),
            AffineCoupling(IndexPartition.halves(features), conditioner, scale_bound),
        ])
        for _ in range(steps)
    ])


def build_image(event_shape: tuple[int, int, int], *, levels: int, steps: int, hidden: int,
                blocks: int, lu: bool, scale_bound: float) -> Multiscale:
    """Glow's multi-scale architecture (section 3 / figure 2) for (C, H, W) images (defaults:
    see ``build``)."""
    channels, height, width = event_shape
    if levels < 1 or height % 2**levels or width % 2**levels:
        raise ValueError(f"{levels} levels need H and W divisible by {2 ** levels}; "
                         f"got {event_shape}")
    linear = LUInvertibleLinear if lu else InvertibleLinear
    conditioner = resnet_factory(hidden, blocks)
    stages, c = [], channels
    for level in range(levels):
        c *= 4  # squeeze
        layers = [Squeeze()]
        for _ in range(steps):
            layers += [ActNorm(c), linear(c),
                       AffineCoupling(channel_partition(c), conditioner, scale_bound)]
        stages.append(Compose(layers))
        if level < levels - 1:
            c //= 2  # split: half of the channels factored out
    return Multiscale(event_shape, stages)


def search_space(trial, event_shape=(2,)) -> dict:
    """Tuning ranges for the form that ``event_shape`` selects."""
    if len(event_shape) == 3:
        most = min(3, halvings(event_shape[1:]))  # every level squeezes once
        return {"levels": trial.suggest_int("levels", 1, most),
                "steps": trial.suggest_int("steps", 2, 8),
                **resnet_conditioner(trial, max_blocks=3), **scale_bound(trial)}
    return {"steps": trial.suggest_int("steps", 2, 12), **mlp_conditioner(trial),
            **scale_bound(trial)}


@hookimpl
def flowbench_register_flows() -> list[FlowSpec]:
    return [FlowSpec(
        name="glow",
        build=build,
        description="Glow: steps of actnorm -> LU invertible linear / 1x1 conv -> affine "
                    "coupling; images: multi-scale with squeeze and split",
        reference="Kingma & Dhariwal 2018, arXiv:1807.03039",
        defaults=defaults_of(build),
        data_kinds=("vector", "image"),
        search_space=search_space,
        measures=("linear_cost",),
    )]
