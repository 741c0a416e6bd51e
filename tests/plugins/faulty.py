"""A test plugin with flows that go wrong on purpose, and a tiny suite that uses them.

- ``explodes``: raises while being built (the cell must be recorded as ``failed``);
- ``blows_up``: trains normally, then its log-det turns NaN after 5 steps (``diverged``).
"""

from __future__ import annotations

import torch

from flowbench import FlowSpec, SuiteSpec, hookimpl
from flowbench.layers import Compose, DiagonalScaling, Transform


def build_exploding(event_shape, **_):
    raise RuntimeError("this flow cannot be built")


class BlowsUp(Transform):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.calls += 1
        bad = float("nan") if int(self.calls) > 5 else 0.0
        return x, x.new_full((x.shape[0],), bad)

    def inverse(self, z):
        return z


@hookimpl
def flowbench_register_flows():
    return [
        FlowSpec(name="explodes", build=build_exploding, description="always fails to build"),
        FlowSpec(name="blows_up", build=lambda shape: Compose([DiagonalScaling(shape), BlowsUp()]),
                 description="NaN log-det after 5 training steps"),
    ]


@hookimpl
def flowbench_register_suites():
    return [SuiteSpec(
        name="faulty", description="one good flow and two bad ones",
        datasets=("two_moons",), flows=("nice", "explodes", "blows_up"), bases=("normal",),
        seeds=(0,), train={"steps": 20, "eval_every": 10},
        flow_hparams={"nice": {"layers": 2, "width": 8}},
        # no baselines, no cost study: the tests that use this suite check neither
        measure={"references": False, "logdet_dims": (), "linear_channels": ()},
    )]
