"""Built-in plugin: NICE (Dinh, Krueger & Bengio 2015, "NICE: Non-linear Independent Components
Estimation", arXiv:1410.8516).

Additive couplings with alternating partitions (volume preserving), closed by the paper's
diagonal scaling layer. Images are flattened first, as in the paper.
"""

from __future__ import annotations

from flowbench import FlowSpec, hookimpl
from flowbench.search_spaces import mlp_conditioner
from flowbench.layers import (
    AdditiveCoupling, Compose, DiagonalScaling, Flatten, alternating_partition, event_size,
    mlp_factory,
)
from flowbench.specs import defaults_of


def build(
    event_shape: tuple[int, ...], layers: int = 4, width: int = 64, depth: int = 2,
    activation: str = "relu", partition: str = "split",
) -> Compose:
    """``layers`` additive couplings (alternating halves), then a diagonal scaling; images are
    flattened to vectors first."""
    event_shape = tuple(event_shape)
    features = event_size(event_shape)
    flatten = [Flatten(event_shape)] if len(event_shape) > 1 else []
    conditioner = mlp_factory(width, depth, activation)
    couplings = [
        AdditiveCoupling(alternating_partition(features, k % 2 == 1, partition), conditioner)
        for k in range(layers)
    ]
    return Compose([*flatten, *couplings, DiagonalScaling((features,))])


def search_space(trial, event_shape=(2,)) -> dict:
    """Tuning ranges: depth of the coupling stack and of its conditioners, width, activation."""
    return {"layers": trial.suggest_int("layers", 2, 10), **mlp_conditioner(trial)}


@hookimpl
def flowbench_register_flows() -> list[FlowSpec]:
    return [FlowSpec(
        name="nice",
        build=build,
        description="NICE: additive (volume-preserving) couplings + diagonal scaling",
        reference="Dinh, Krueger & Bengio 2015, arXiv:1410.8516",
        defaults=defaults_of(build),
        data_kinds=("vector", "image"),
        search_space=search_space,
    )]
