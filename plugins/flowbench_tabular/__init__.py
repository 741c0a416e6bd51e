"""Built-in plugin: tabular data — densities with exact oracles in any dimension, the five
standard tabular benchmarks from the user's own files — and the ``tabular``, ``tabular-smoke``
and ``uci`` suites.

The densities live in ``flowbench.data.oracles`` and the file loaders in ``flowbench.data.uci``;
this plugin only names them and defines the suites. Oracle datasets are registered by name at
``REGISTERED_DIMS`` and, as dataset families, in every other dimension: ``funnel-48`` works
wherever a dataset name is taken (``--datasets funnel-48``, a suite file, ``load_dataset``).
"""

from __future__ import annotations

from functools import partial

from flowbench import DatasetSpec, SuiteSpec, hookimpl
from flowbench.data import oracles, uci
from flowbench.specs import DatasetFamilySpec

#: tiny models train faster as one CPU process per core than as processes sharing a GPU
#: (each step is a few hundred microsecond-sized kernels: launch-bound on a GPU)
TINY_MODELS_DEVICE = "cpu"

#: the dimensions the ``tabular`` suite runs each oracle family at
TABULAR_DIMS = (8, 32)
TABULAR_FLOWS = ("nice", "realnvp", "glow", "maf")

#: the tabular suite's budget: 10 datasets x 4 flows x 2 bases x 3 seeds within 15 minutes on
#: two cores
TABULAR_TRAIN = {"steps": 800, "batch_size": 256, "lr": 2e-3, "eval_every": 100}

#: the uci suite's budget, for machines that can afford it: the papers train to convergence
#: (MAF: early stopping after 30 epochs without improvement); this is a fixed, shorter budget
UCI_TRAIN = {"steps": 20000, "batch_size": 512, "lr": 1e-3, "eval_every": 1000,
             "eval_batch_size": 8192}


def oracle_spec(family: str, dim: int) -> DatasetSpec:
    """The dataset ``<family>-<dim>``."""
    record = oracles.FAMILIES[family]
    return DatasetSpec(
        name=oracles.oracle_name(family, dim), load=partial(oracles.load_oracle, family, dim),
        description=f"{record.description} (D = {dim})", event_shape=(dim,), kind="vector",
        has_oracle=True, reference=record.reference,
    )


def tabular_train_space(trial) -> dict:
    """Training settings tuned alongside each flow on the tabular suites."""
    return {
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
        "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 1e-6, 1e-5, 1e-4]),
    }


@hookimpl
def flowbench_register_dataset_families() -> list[DatasetFamilySpec]:
    return [
        DatasetFamilySpec(name=name, make=partial(oracle_spec, name),
                          description=record.description, reference=record.reference,
                          min_dim=record.min_dim)
        for name, record in oracles.FAMILIES.items()
    ]


@hookimpl
def flowbench_register_datasets() -> list[DatasetSpec]:
    specs = [oracle_spec(family, dim) for family in oracles.FAMILIES
             for dim in oracles.REGISTERED_DIMS if dim >= oracles.FAMILIES[family].min_dim]
    specs += [
        DatasetSpec(name=name, load=partial(uci.load_uci, name), description=record.description,
                    event_shape=(record.dim,), kind="vector", reference=record.reference,
                    published=record.published)
        for name, record in uci.UCI.items()
    ]
    return specs


@hookimpl
def flowbench_register_suites() -> list[SuiteSpec]:
    families = tuple(oracles.FAMILIES)
    dims = " and ".join(map(str, TABULAR_DIMS))
    return [
        SuiteSpec(
            name="tabular",
            device=TINY_MODELS_DEVICE,
            description=f"NICE, RealNVP, Glow and MAF x normal and gmm bases on {len(families)} "
                        f"densities with exact oracles at D = {dims}, 3 seeds",
            datasets=tuple(oracles.oracle_name(f, d) for f in families for d in TABULAR_DIMS),
            flows=TABULAR_FLOWS,
            bases=("normal", "gmm"),
            seeds=(0, 1, 2),
            train=TABULAR_TRAIN,
            train_space=tabular_train_space,
        ),
        SuiteSpec(
            name="tabular-smoke",
            device=TINY_MODELS_DEVICE,
            description="seconds of everything on the tabular oracles at D = 4: tiny flows, tiny "
                        "budget (for tests)",
            datasets=tuple(oracles.oracle_name(f, 4) for f in families[:2]),
            flows=TABULAR_FLOWS,
            bases=("normal", "gmm"),
            seeds=(0,),
            train={"steps": 30, "batch_size": 128, "eval_every": 10, "lr": 2e-3},
            flow_hparams={"nice": {"layers": 2, "width": 16},
                          "realnvp": {"layers": 2, "width": 16},
                          "glow": {"steps": 2, "width": 16},
                          "maf": {"layers": 2, "width": 16}},
            measure={"references": False, "logdet_dims": (2, 4, 8), "logdet_repeats": 2,
                     "speed_batch": 512, "speed_repeats": 2, "linear_channels": (4, 8, 16)},
            train_space=tabular_train_space,
        ),
        SuiteSpec(
            name="uci",
            description="RealNVP, Glow and MAF on POWER, GAS, HEPMASS, MINIBOONE and BSDS300 from "
                        "your files (--data-dir DIR; the MAF paper's preprocessing and splits), "
                        "3 seeds",
            datasets=tuple(uci.UCI),
            flows=("realnvp", "glow", "maf"),
            bases=("normal",),
            seeds=(0, 1, 2),
            train=UCI_TRAIN,
            # the Gaussian / GMM / KDE references fit and evaluate on every train point: a KDE on
            # 10^6 points costs N_train x N_test kernel sums; the papers' numbers are shown as
            # published rows instead
            measure={"references": False},
            train_space=tabular_train_space,
        ),
    ]
