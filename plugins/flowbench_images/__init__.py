"""Built-in plugin: image datasets (scikit-learn's digits; MNIST, Fashion-MNIST and CIFAR-10 from
files you already have), the ``digits`` and ``digits-smoke`` suites, and the papers' image
suites (``mnist``, ``cifar10`` and their ``-small`` CPU variants; see ``papers``).

Pixels stay integers ``0..levels-1`` in the datasets; the runner dequantises them and the
preprocessing rescales (and logit-transforms) them with their log-dets, so every NLL is in bits
per dimension of the original discrete data.
"""

from __future__ import annotations

from flowbench import DatasetSpec, SuiteSpec, hookimpl
from flowbench.data import images

from . import papers

SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
          "cifar10": (3, 32, 32)}
REFERENCES = {
    "digits": "scikit-learn load_digits (UCI optical recognition of handwritten digits)",
    "mnist": "LeCun et al. 1998", "fashion_mnist": "Xiao, Rasul & Vollgraf 2017",
    "cifar10": "Krizhevsky 2009",
}

#: the digits suite's budget: every flow x 3 seeds within 20 minutes on two cores
DIGITS_TRAIN = {"steps": 8000, "batch_size": 64, "lr": 1e-3, "eval_every": 250,
                "eval_batch_size": 1024, "init_batch_size": 512}
#: NICE works on the flattened 64-pixel vector: wider, deeper conditioners than for 2-D data
DIGITS_FLOWS = {"nice": {"layers": 4, "width": 256, "depth": 3}}


def digits_train_space(trial) -> dict:
    return {
        "lr": trial.suggest_float("lr", 2e-4, 3e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
    }


@hookimpl
def flowbench_register_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(name=name, load=loader,
                    description=images.DESCRIPTIONS[name], event_shape=SHAPES[name],
                    kind="image", reference=REFERENCES[name],
                    published=papers.PUBLISHED.get(name, ()))
        for name, loader in images.IMAGE_DATASETS.items()
    ]


@hookimpl
def flowbench_register_suites() -> list[SuiteSpec]:
    return [
        SuiteSpec(
            name="digits",
            description="NICE, RealNVP and Glow on scikit-learn's 8x8 digits, bits/dim, 3 seeds",
            datasets=("digits",), flows=("nice", "realnvp", "glow"), bases=("normal",),
            seeds=(0, 1, 2), train=DIGITS_TRAIN, flow_hparams=DIGITS_FLOWS,
            train_space=digits_train_space,
        ),
        SuiteSpec(
            name="digits-smoke",
            description="seconds of everything on digits: tiny image flows, tiny budget (tests)",
            datasets=("digits",), flows=("nice", "realnvp", "glow"), bases=("normal",),
            seeds=(0,), train={"steps": 20, "batch_size": 32, "eval_every": 10, "lr": 1e-3},
            flow_hparams={"nice": {"layers": 2, "width": 32},
                          "realnvp": {"hidden": 8, "blocks": 1},
                          "glow": {"steps": 2, "hidden": 8}},
            measure={"references": False, "logdet_dims": (2, 4), "logdet_repeats": 2,
                     "speed_batch": 256, "speed_repeats": 2,
                     "linear_channels": (4, 8)},
        ),
        *papers.suites(),
    ]
