"""Built-in plugin: RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real
NVP", arXiv:1605.08803).

Vector form: a stack of affine couplings with alternating partitions.
"""

from __future__ import annotations

from flowbench import FlowSpec, hookimpl
from flowbench.layers import AffineCoupling, Compose, alternating_partition, event_size, mlp_factory

DEFAULTS = {
    "layers": 8, "width": 64, "depth": 2, "activation": "relu", "partition": "split",
    "scale_bound": 3.0,
}


def build(
    event_shape: tuple[int, ...], layers: int = 8, width: int = 64, depth: int = 2,
    activation: str = "relu", partition: str = "split", scale_bound: float = 3.0,
) -> Compose:
    """``layers`` affine couplings, partitions alternating between layers."""
    if len(event_shape) != 1:
        raise ValueError(f"realnvp (vector form) models vectors; got event shape {event_shape}")
    features = event_size(event_shape)
    conditioner = mlp_factory(width, depth, activation)
    return Compose([
        AffineCoupling(alternating_partition(features, k % 2 == 1, partition), conditioner,
                       scale_bound)
        for k in range(layers)
    ])


def search_space(trial) -> dict:
    """Tuning ranges: number of couplings, conditioner width/depth/activation, log-scale bound."""
    return {
        "layers": trial.suggest_int("layers", 2, 12),
        "width": trial.suggest_categorical("width", [32, 64, 128]),
        "depth": trial.suggest_int("depth", 1, 3),
        "activation": trial.suggest_categorical("activation", ["relu", "elu", "tanh"]),
        "scale_bound": trial.suggest_float("scale_bound", 1.0, 5.0),
    }


@hookimpl
def flowbench_register_flows() -> list[FlowSpec]:
    return [FlowSpec(
        name="realnvp",
        build=build,
        description="RealNVP: affine couplings with alternating partitions",
        reference="Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803",
        defaults=DEFAULTS,
        search_space=search_space,
    )]
