"""flowbench plugin: zuko's vector flows (``zuko-<family>``) and the ``libraries`` suite.

Found by flowbench through this distribution's entry point::

    [project.entry-points.flowbench]
    zuko = "flowbench_zuko.plugin"
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from typing import Any, Callable

from flowbench import FlowSpec, SuiteSpec, hookimpl
from flowbench.specs import defaults_of

from .families import FAMILIES

#: tiny models train faster as one CPU process per core than as processes sharing a GPU
#: (each step is a few hundred microsecond-sized kernels: launch-bound on a GPU)
TINY_MODELS_DEVICE = "cpu"

HIDDEN_CHOICES = ["32x32", "64x64", "128x128", "64x64x64"]


def _mlp(trial: Any, activations: tuple[str, ...] = ("relu", "elu", "tanh")) -> dict[str, Any]:
    return {"hidden_features": trial.suggest_categorical("hidden_features", HIDDEN_CHOICES),
            "activation": trial.suggest_categorical("activation", list(activations))}


def _autoregressive(trial: Any) -> dict[str, Any]:
    return {"transforms": trial.suggest_int("transforms", 2, 8),
            "randperm": trial.suggest_categorical("randperm", [False, True]), **_mlp(trial)}


def _coupling(trial: Any) -> dict[str, Any]:
    return {"transforms": trial.suggest_int("transforms", 2, 10),
            "randmask": trial.suggest_categorical("randmask", [False, True]), **_mlp(trial)}


def _monotonic_network(trial: Any) -> dict[str, Any]:
    return {**_autoregressive(trial),
            "signal": trial.suggest_categorical("signal", [8, 16, 32]),
            "network_hidden_features": trial.suggest_categorical("network_hidden_features",
                                                                 ["32x32", "64x64"])}


#: family -> Optuna search space (keys are the builder's hyperparameters; hidden widths are
#: suggested in their string form "64x64", which the builders accept)
SEARCH_SPACES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "maf": _autoregressive,
    "nsf": lambda trial: {**_autoregressive(trial), "bins": trial.suggest_int("bins", 4, 16)},
    "realnvp": _coupling,
    "nice": _coupling,
    "naf": _monotonic_network,
    "unaf": _monotonic_network,
    "sospf": lambda trial: {**_autoregressive(trial),
                            "degree": trial.suggest_int("degree", 2, 6),
                            "polynomials": trial.suggest_int("polynomials", 2, 5)},
    "bpf": lambda trial: {**_autoregressive(trial), "degree": trial.suggest_int("degree", 8, 24)},
    "cnf": lambda trial: {**_mlp(trial, ("elu", "tanh", "silu")),
                          "freqs": trial.suggest_int("freqs", 1, 5)},
    "gf": lambda trial: {"transforms": trial.suggest_int("transforms", 2, 8),
                         "components": trial.suggest_int("components", 4, 16)},
}


def flow_specs() -> list[FlowSpec]:
    """One ``zuko-<family>`` spec per family of :data:`flowbench_zuko.families.FAMILIES`."""
    return [
        FlowSpec(name=f"zuko-{family}", build=build, description=description,
                 reference=f"{reference}; implementation: zuko (Rozet et al., "
                           "github.com/probabilists/zuko)",
                 defaults=defaults_of(build), data_kinds=("vector",),
                 search_space=SEARCH_SPACES[family])
        for family, (build, description, reference) in FAMILIES.items()
    ]


# ---- the libraries suite: the same architectures from flowbench and from zuko -----------------

#: layers and MLP widths shared by every flow of the suite (matched sizes)
LAYERS, WIDTH, DEPTH = 4, 64, 2
LIBRARIES_DATASETS = ("two_moons", "pinwheel", "rings", "checkerboard", "funnel-8", "banana-8")
LIBRARIES_TRAIN = {"steps": 700, "batch_size": 256, "lr": 2e-3, "eval_every": 100}
LIBRARIES_MEASURE = {"references": False, "logdet_dims": (2, 8), "logdet_repeats": 2,
                     "speed_batch": 1024, "speed_repeats": 3}
_HIDDEN = (WIDTH,) * DEPTH
LIBRARIES_FLOW_HPARAMS: dict[str, dict[str, Any]] = {
    "realnvp": {"layers": LAYERS, "width": WIDTH, "depth": DEPTH},
    "glow": {"steps": LAYERS, "width": WIDTH, "depth": DEPTH},
    "maf": {"layers": LAYERS, "width": WIDTH, "depth": DEPTH},
    "nsf": {"layers": LAYERS, "width": WIDTH, "depth": DEPTH},
    "zuko-realnvp": {"transforms": LAYERS, "hidden_features": _HIDDEN},
    "zuko-maf": {"transforms": LAYERS, "hidden_features": _HIDDEN},
    # passes=2: each layer is a coupling, as flowbench-nsf's RQ-NSF (C)
    "zuko-nsf": {"transforms": LAYERS, "hidden_features": _HIDDEN, "passes": 2},
    "zuko-naf": {"transforms": LAYERS, "hidden_features": _HIDDEN},
}


def nsf_installed() -> bool:
    """Whether the flowbench-nsf plugin is installed (its ``nsf`` flow joins the suite then)."""
    try:
        distribution("flowbench-nsf")
    except PackageNotFoundError:
        return False
    return True


def libraries_suite(with_nsf: bool | None = None) -> SuiteSpec:
    """flowbench's realnvp, glow, maf (and nsf when flowbench-nsf is installed) against zuko's
    realnvp, maf, nsf and naf at the same layers and hidden widths, normal base, 3 seeds."""
    with_nsf = nsf_installed() if with_nsf is None else with_nsf
    ours = ("realnvp", "glow", "maf") + (("nsf",) if with_nsf else ())
    theirs = ("zuko-realnvp", "zuko-maf", "zuko-nsf", "zuko-naf")
    flows = ours + theirs
    return SuiteSpec(
        name="libraries",
        device=TINY_MODELS_DEVICE,
        description="flowbench's realnvp/glow/maf(/nsf) against zuko's realnvp/maf/nsf/naf at "
                    f"matched sizes ({LAYERS} layers, MLPs {WIDTH}x{DEPTH}) on 4 toy2d and 2 "
                    "tabular oracle datasets, normal base, 3 seeds",
        datasets=LIBRARIES_DATASETS,
        flows=flows,
        bases=("normal",),
        seeds=(0, 1, 2),
        train=LIBRARIES_TRAIN,
        flow_hparams={name: LIBRARIES_FLOW_HPARAMS[name] for name in flows},
        measure=LIBRARIES_MEASURE,
    )


@hookimpl
def flowbench_register_flows() -> list[FlowSpec]:
    return flow_specs()


@hookimpl
def flowbench_register_suites() -> list[SuiteSpec]:
    return [libraries_suite()]
