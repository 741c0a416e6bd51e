"""A test plugin: a small two-moons dataset and a quick suite that measures everything."""

from __future__ import annotations

import dataclasses

from flowbench import DatasetSpec, SuiteSpec, hookimpl
from flowbench.data import toy2d


def load_tiny_moons(seed: int):
    data = toy2d.load_toy2d("two_moons", seed, n_train=1500, n_val=500, n_test=500)
    return dataclasses.replace(data, name="tiny_moons")


@hookimpl
def flowbench_register_datasets():
    return [DatasetSpec(name="tiny_moons", load=load_tiny_moons, has_oracle=True,
                        description="two_moons with 1500/500/500 points")]


@hookimpl
def flowbench_register_suites():
    return [SuiteSpec(
        name="tiny", description="two flows, two seeds, every measurement at token sizes",
        datasets=("tiny_moons",), flows=("nice", "glow"), bases=("normal",), seeds=(0, 1),
        train={"steps": 40, "eval_every": 20, "batch_size": 128},
        flow_hparams={"nice": {"layers": 2, "width": 8}, "glow": {"steps": 2, "width": 8}},
        measure={"references": True, "logdet_dims": (2, 4), "logdet_repeats": 2,
                 "speed_batch": 512, "speed_repeats": 2,
                 "linear_channels": (4, 8)},
    )]
