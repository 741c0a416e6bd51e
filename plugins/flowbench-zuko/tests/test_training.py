"""A short real training run through flowbench's CLI, and through its API."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

import flowbench


def test_api_training_beats_a_gaussian_on_two_moons(registry):
    from flowbench.layers import FixedAffine
    from flowbench.train import TrainConfig, evaluate_nll, fit

    data = flowbench.load_dataset("two_moons", registry=registry)
    train = data.train.double()
    gaussian = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    gaussian_nll = float(-gaussian.log_prob(data.test.double()).mean())

    torch.manual_seed(0)
    flow = flowbench.build_flow("zuko-nsf", "normal", data.event_shape, registry=registry,
                                preprocessing=FixedAffine.standardize(data.train))
    result = fit(flow, data.train, data.val,
                 TrainConfig(steps=300, batch_size=256, lr=2e-3, eval_every=100), seed=0)
    assert result.status == "ok"
    nll = evaluate_nll(flow, data.test)
    assert nll < gaussian_nll - 1.0, (nll, gaussian_nll)


def test_cli_run_trains_zuko_flows_with_flowbench_bases(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "flowbench.cli", "run", "--suite", "libraries",
               "--datasets", "two_moons", "--flows", "zuko-maf,zuko-realnvp",
               "--bases", "normal", "--seeds", "0", "--steps", "60", "--no-measure",
               "--no-report", "-j", "1", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    cells = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    finished = {(c["flow"], c["status"]) for c in cells if "status" in c}
    assert finished == {("zuko-maf", "ok"), ("zuko-realnvp", "ok")}, cells
