"""A test plugin for every non-finite path and for a mean NLL that one test point dominates.

Flows (each a real, trainable diagonal scaling plus a layer that misbehaves on purpose):
- ``nan_grad``: the loss stays finite, but after 5 training steps the gradient is NaN;
- ``nan_val_init``: in eval mode (validation) the log-det is NaN from the start;
- ``nan_val_later``: in eval mode the log-det turns NaN after 20 training steps.
Datasets (two_moons-like Gaussian blobs, small):
- ``far_point``: the test split holds one point 200 standard deviations out (a finite, huge NLL);
- ``inf_point``: the test split holds one point at 1e30 (its log-density is -inf in float32).
Suites: ``nonfinite`` (the three flows, and ``nice`` on ``inf_point``), ``outlier``.
"""

from __future__ import annotations

import dataclasses

import torch

from flowbench import DatasetSpec, FlowSpec, SuiteSpec, hookimpl
from flowbench.data import toy2d
from flowbench.layers import Compose, DiagonalScaling, Transform


class _NanGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class Misbehaves(Transform):
    """Identity with a zero log-det, until ``mode`` says otherwise (counted in training steps)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        logabsdet = x.new_zeros(x.shape[0])
        if self.training and torch.is_grad_enabled():
            self.steps += 1
            if self.mode == "nan_grad" and int(self.steps) > 5:
                x = _NanGradient.apply(x)
        elif not self.training:
            if self.mode == "nan_val_init" or (self.mode == "nan_val_later"
                                               and int(self.steps) > 20):
                logabsdet = logabsdet + float("nan")
        return x, logabsdet

    def inverse(self, z):
        return z


def _flow(mode: str):
    return lambda shape: Compose([DiagonalScaling(shape), Misbehaves(mode)])


def _with_test_point(name: str, point: float):
    def load(seed: int):
        data = toy2d.load_toy2d("eight_gaussians", seed, n_train=2000, n_val=500, n_test=1000)
        test = data.test.clone()
        test[0] = torch.tensor([point, point])
        return dataclasses.replace(data, name=name, test=test)
    return load


@hookimpl
def flowbench_register_flows():
    return [FlowSpec(name=mode, build=_flow(mode), description=f"misbehaves: {mode}")
            for mode in ("nan_grad", "nan_val_init", "nan_val_later")]


@hookimpl
def flowbench_register_datasets():
    return [
        DatasetSpec(name="far_point", load=_with_test_point("far_point", 200.0), has_oracle=True,
                    description="eight Gaussians; one test point 200 std out"),
        DatasetSpec(name="inf_point", load=_with_test_point("inf_point", 1e30), has_oracle=True,
                    description="eight Gaussians; one test point at 1e30"),
    ]


TRAIN = {"steps": 40, "eval_every": 10, "batch_size": 128}
QUIET = {"references": False, "logdet_dims": (), "linear_channels": (), "speed": False}


@hookimpl
def flowbench_register_suites():
    return [
        SuiteSpec(name="nonfinite", description="every non-finite path",
                  datasets=("far_point",), flows=("nan_grad", "nan_val_init", "nan_val_later"),
                  bases=("normal",), seeds=(0,), train=TRAIN, measure=QUIET),
        SuiteSpec(name="outlier", description="one far-out test point",
                  datasets=("far_point", "inf_point"), flows=("nice",), bases=("normal",),
                  seeds=(0,), train=TRAIN, flow_hparams={"nice": {"layers": 2, "width": 8}},
                  measure=QUIET),
    ]
