"""Built-in plugin: MAF (Papamakarios, Pavlakou & Murray 2017, "Masked Autoregressive Flow for
Density Estimation", arXiv:1705.07057) with MADE conditioners (Germain, Gregor, Murray &
Larochelle 2015, arXiv:1502.03509).

Vector data only: ``layers`` affine autoregressive layers, the ordering reversed from one layer to
the next (or a random permutation per layer, seeded by ``order_seed``), optionally with batch
normalisation between layers as in the paper. Density evaluation is one MADE pass per layer;
sampling needs D sequential passes per layer.
"""

from __future__ import annotations

import torch

from flowbench import FlowSpec, hookimpl
from flowbench.layers import BatchNormFlow, Compose, MaskedAutoregressiveAffine, event_size
from flowbench.search_spaces import mlp_conditioner, scale_bound
from flowbench.specs import defaults_of

ORDERS = ("reverse", "random")


def orderings(features: int, layers: int, order: str, order_seed: int) -> list[torch.Tensor]:
    """The ordering of each layer: identity, reversed, identity, ... (``"reverse"``), or a fresh
    permutation per layer from ``torch.Generator().manual_seed(order_seed)`` (``"random"``)."""
    if order == "reverse":
        natural = torch.arange(features)
        return [natural if k % 2 == 0 else natural.flip(0) for k in range(layers)]
    if order == "random":
        generator = torch.Generator().manual_seed(order_seed)
        return [torch.randperm(features, generator=generator) for _ in range(layers)]
    raise ValueError(f"unknown order {order!r}; valid choices: {', '.join(ORDERS)}")


def build(
    event_shape: tuple[int, ...], layers: int = 5, width: int = 64, depth: int = 2,
    activation: str = "relu", scale_bound: float = 3.0, order: str = "reverse",
    order_seed: int = 0, batchnorm: bool = False,
) -> Compose:
    """``layers`` MAF layers on (D,) events, with ``BatchNormFlow`` between consecutive layers
    when ``batchnorm``. These keyword defaults are the registered ones (``defaults_of``)."""
    if len(event_shape) != 1:
        raise ValueError(f"maf models vectors (D,) only; got event shape {tuple(event_shape)}")
    if layers < 1:
        raise ValueError(f"maf needs layers >= 1, got {layers}")
    features = event_size(event_shape)
    steps: list = []
    for k, ordering in enumerate(orderings(features, layers, order, order_seed)):
        if batchnorm and k > 0:
            steps.append(BatchNormFlow(features))
        steps.append(MaskedAutoregressiveAffine(features, ordering, width, depth, activation,
                                                scale_bound))
    return Compose(steps)


def search_space(trial, event_shape=(2,)) -> dict:
    """Tuning ranges like RealNVP's, plus the ordering. MADE needs ``width >= D - 1`` (a hidden
    unit for every degree), so in high dimension the widths on offer start higher."""
    features = event_size(event_shape)
    widths = [w for w in (32, 64, 128, 256, 512, 1024) if w >= features - 1][:3] \
        or [features - 1]
    return {"layers": trial.suggest_int("layers", 2, 10), **mlp_conditioner(trial, widths),
            **scale_bound(trial), "order": trial.suggest_categorical("order", list(ORDERS))}


@hookimpl
def flowbench_register_flows() -> list[FlowSpec]:
    return [FlowSpec(
        name="maf",
        build=build,
        description="MAF: affine autoregressive layers with MADE conditioners, reversed orders; "
                    "one-pass density, D-pass sampling",
        reference="Papamakarios, Pavlakou & Murray 2017, arXiv:1705.07057",
        defaults=defaults_of(build),
        data_kinds=("vector",),
        search_space=search_space,
    )]
