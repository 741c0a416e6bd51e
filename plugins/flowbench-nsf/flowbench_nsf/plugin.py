"""flowbench plugin: the ``nsf`` flow (Neural Spline Flows) and the ``banana`` dataset.

Found by flowbench through this distribution's entry point::

    [project.entry-points.flowbench]
    nsf = "flowbench_nsf.plugin"
"""

from __future__ import annotations

from typing import Any

from flowbench import DatasetSpec, FlowSpec, hookimpl
from flowbench.layers import Compose, alternating_partition, event_size, mlp_factory
from flowbench.specs import defaults_of

from . import banana
from .coupling import RationalQuadraticCoupling

REFERENCE = ("Durkan, Bekasov, Murray & Papamakarios 2019, Neural Spline Flows (NeurIPS), "
             "arXiv:1906.04068")


def build(
    event_shape: tuple[int, ...], layers: int = 4, bins: int = 8, bound: float = 6.0,
    width: int = 64, depth: int = 2, activation: str = "relu", partition: str = "split",
) -> Compose:
    """``layers`` rational-quadratic spline couplings, partitions alternating between layers
    (as RealNVP's), each conditioned by an MLP with a zero-initialised output layer.

    These keyword defaults are the registered ones (:data:`DEFAULTS`). ``bound`` is in
    standardised units (flowbench standardises the data before the flow; see the README on
    choosing it for heavy tails).
    """
    if len(event_shape) != 1:
        raise ValueError(f"nsf models vectors; got event shape {tuple(event_shape)}")
    if int(layers) != layers or layers < 1:
        raise ValueError(f"layers must be a positive integer, got {layers!r}")
    features = event_size(event_shape)
    conditioner = mlp_factory(width, depth, activation)
    return Compose([
        RationalQuadraticCoupling(alternating_partition(features, k % 2 == 1, partition),
                                  conditioner, bins=bins, bound=bound)
        for k in range(int(layers))
    ])


#: every hyperparameter ``build`` accepts, with its default, read from ``build`` itself
DEFAULTS: dict[str, Any] = defaults_of(build)


def search_space(trial: Any) -> dict[str, Any]:
    """Tuning ranges, suggested through an Optuna ``Trial``."""
    return {
        "layers": trial.suggest_int("layers", 2, 8),
        "bins": trial.suggest_int("bins", 4, 16),
        "bound": trial.suggest_float("bound", 2.0, 8.0),
        "width": trial.suggest_categorical("width", [32, 64, 128]),
        "depth": trial.suggest_int("depth", 1, 3),
        "activation": trial.suggest_categorical("activation", ["relu", "elu", "tanh"]),
    }


@hookimpl
def flowbench_register_flows() -> list[FlowSpec]:
    return [FlowSpec(
        name="nsf",
        build=build,
        description="Neural Spline Flow: rational-quadratic spline couplings, alternating halves",
        reference=REFERENCE,
        defaults=dict(DEFAULTS),
        search_space=search_space,
    )]


@hookimpl
def flowbench_register_datasets() -> list[DatasetSpec]:
    return [DatasetSpec(
        name=banana.NAME, load=banana.load, description=banana.DESCRIPTION, event_shape=(2,),
        kind="vector", has_oracle=True,
        reference="sheared Gaussian (\"banana\"), cf. Haario, Saksman & Tamminen 1999",
    )]
