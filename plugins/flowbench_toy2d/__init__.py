"""Built-in plugin: the 2-D toy datasets with exact oracles, and the ``toy2d`` and ``smoke`` suites.

The densities themselves (samplers, exact log-densities, true entropies) live in
``flowbench.data.toy2d``; this plugin only names them and defines the suites.
"""

from __future__ import annotations

from functools import partial

from flowbench import DatasetSpec, SuiteSpec, hookimpl
from flowbench.data import toy2d

#: tiny models train faster as one CPU process per core than as processes sharing a GPU
#: (each step is a few hundred microsecond-sized kernels: launch-bound on a GPU)
TINY_MODELS_DEVICE = "cpu"

REFERENCE = "Grathwohl et al. 2019 (FFJORD), arXiv:1810.01367; scikit-learn make_moons/make_circles"

#: the toy2d suite's training budget: sized so the whole default run fits in ~10 minutes on two
#: cores while the best flow on two_moons comes within 0.05 nats of the true entropy
TOY2D_TRAIN = {"steps": 2000, "batch_size": 256, "lr": 2e-3, "eval_every": 100}


def toy2d_train_space(trial) -> dict:
    """Training settings tuned alongside each flow: learning rate, batch size, weight decay and
    the number of steps (around the default budget)."""
    return {
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
        "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 1e-6, 1e-5, 1e-4]),
        "steps": trial.suggest_categorical("steps", [1000, 2000, 3000]),
    }


@hookimpl
def flowbench_register_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name=name, load=partial(toy2d.load_toy2d, name), description=record.description,
            event_shape=(2,), kind="vector", has_oracle=True, reference=REFERENCE,
        )
        for name, record in toy2d.TOY2D.items()
    ]


@hookimpl
def flowbench_register_suites() -> list[SuiteSpec]:
    return [
        SuiteSpec(
            name="toy2d",
            device=TINY_MODELS_DEVICE,
            description="NICE, RealNVP and Glow x normal and bimodal bases on seven 2-D densities "
                        "with known entropy, 3 seeds",
            datasets=toy2d.TOY2D_NAMES,
            flows=("nice", "realnvp", "glow"),
            bases=("normal", "bimodal"),
            seeds=(0, 1, 2),
            train=TOY2D_TRAIN,
            train_space=toy2d_train_space,
        ),
        SuiteSpec(
            name="smoke",
            device=TINY_MODELS_DEVICE,
            description="a few seconds of everything: two datasets, three flows, two bases, "
                        "tiny budget (for tests)",
            datasets=("two_moons", "eight_gaussians"),
            flows=("nice", "realnvp", "glow"),
            bases=("normal", "bimodal"),
            seeds=(0,),
            train={"steps": 30, "batch_size": 128, "eval_every": 10, "lr": 2e-3},
            flow_hparams={"nice": {"layers": 2, "width": 16},
                          "realnvp": {"layers": 2, "width": 16},
                          "glow": {"steps": 2, "width": 16}},
            # everything measured, at token sizes (the references are exercised elsewhere)
            measure={"references": False, "logdet_dims": (2, 4, 8), "logdet_repeats": 2,
                     "speed_batch": 512, "speed_repeats": 2,
                     "linear_channels": (4, 8, 16)},
            train_space=lambda trial: {"lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True)},
        ),
    ]
