"""Built-in plugin: Glow (Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1
Convolutions", arXiv:1807.03039).

Vector form: ``steps`` steps of actnorm -> invertible linear map (LU-parameterised by default; the
vector form of the 1x1 convolution) -> affine coupling.
"""

from __future__ import annotations

from flowbench import FlowSpec, hookimpl
from flowbench.layers import (
    ActNorm, AffineCoupling, Compose, IndexPartition, InvertibleLinear, LUInvertibleLinear,
    event_size, mlp_factory,
)

DEFAULTS = {
    "steps": 8, "width": 64, "depth": 2, "activation": "relu", "lu": True, "scale_bound": 3.0,
}


def build(
    event_shape: tuple[int, ...], steps: int = 8, width: int = 64, depth: int = 2,
    activation: str = "relu", lu: bool = True, scale_bound: float = 3.0,
) -> Compose:
    """``steps`` x (actnorm, invertible linear, affine coupling on fixed halves)."""
    if len(event_shape) != 1:
        raise ValueError(f"glow (vector form) models vectors; got event shape {event_shape}")
    features = event_size(event_shape)
    conditioner = mlp_factory(width, depth, activation)
    linear = LUInvertibleLinear if lu else InvertibleLinear
    return Compose([
        Compose([
            ActNorm(features),
            linear(features),
            AffineCoupling(IndexPartition.halves(features), conditioner, scale_bound),
        ])
        for _ in range(steps)
    ])


def search_space(trial) -> dict:
    """Tuning ranges: number of steps, conditioner width/depth/activation, log-scale bound."""
    return {
        "steps": trial.suggest_int("steps", 2, 12),
        "width": trial.suggest_categorical("width", [32, 64, 128]),
        "depth": trial.suggest_int("depth", 1, 3),
        "activation": trial.suggest_categorical("activation", ["relu", "elu", "tanh"]),
        "scale_bound": trial.suggest_float("scale_bound", 1.0, 5.0),
    }


@hookimpl
def flowbench_register_flows() -> list[FlowSpec]:
    return [FlowSpec(
        name="glow",
        build=build,
        description="Glow: steps of actnorm -> LU invertible linear -> affine coupling",
        reference="Kingma & Dhariwal 2018, arXiv:1807.03039",
        defaults=DEFAULTS,
        search_space=search_space,
    )]
