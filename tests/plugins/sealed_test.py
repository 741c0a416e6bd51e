"""A dataset whose test split raises if anything reads it: tuning must never touch test data."""

from __future__ import annotations

import dataclasses

import torch

from flowbench import DatasetSpec, SuiteSpec, hookimpl
from flowbench.data import toy2d


class SealedTensor(torch.Tensor):
    """Any torch operation on it raises."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError("the test split was read")


def load(seed: int):
    data = toy2d.load_toy2d("two_moons", seed, n_train=1500, n_val=500, n_test=500)
    return dataclasses.replace(data, name="sealed_moons",
                               test=data.test.as_subclass(SealedTensor))


@hookimpl
def flowbench_register_datasets():
    return [DatasetSpec(name="sealed_moons", load=load, has_oracle=True,
                        description="two_moons whose test split must not be read")]


@hookimpl
def flowbench_register_suites():
    return [SuiteSpec(
        name="sealed", description="tuning on a dataset with a sealed test split",
        datasets=("sealed_moons",), flows=("realnvp",), bases=("normal",), seeds=(0,),
        train={"steps": 30, "eval_every": 10, "batch_size": 128},
        train_space=lambda trial: {"lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True)},
        measure={"references": False, "logdet_dims": (), "linear_channels": ()},  # not checked
    )]
