"""Images per second and peak memory of every image flow of a suite, on the device at hand.

    python benchmarks/image_throughput.py                          # digits' flows, CPU or GPU
    python benchmarks/image_throughput.py --suite cifar10 --device cuda --precision fp32,bf16

For each flow of the suite, built with the suite's hyperparameters on the dataset's image shape
(random pixels: no dataset files needed, and the cost does not depend on the pixel values), it
times a training step (log_prob, backward, Adam) at the suite's batch size, ``log_prob`` and
``sample`` (eval mode, no gradients) with ``flowbench.measure.time_call`` (median over rounds,
GPU work synchronised), and memory per batch: the tensors autograd saves for the backward pass
(activations; on every device) and, on CUDA, the peak torch allocates during the first
training step (activations, gradients and Adam's state). Run it before and after a
change, on the same machine, and compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pandas as pd
import torch

import flowbench
from flowbench.data.preprocessing import preprocessing_for
from flowbench.device import resolve_device
from flowbench.measure import time_call
from flowbench.specs import TrainConfig
from flowbench.train import adam, arithmetic


def suite_cells(suite: str) -> list[dict]:
    """(flow, base, shape, hyperparameters, batch) of each image flow the suite trains."""
    registry = flowbench.get_registry()
    spec = registry.spec("suite", suite)
    dataset = registry.spec("dataset", spec.datasets[0])
    train = TrainConfig(**spec.train)
    per_flow_train = getattr(spec, "flow_train", {}) or {}
    return [{"suite": suite, "dataset": dataset.name, "flow": flow, "base": spec.bases[0],
             "shape": tuple(dataset.event_shape), "hparams": dict(spec.flow_hparams.get(flow, {})),
             "batch": int({**spec.train, **per_flow_train.get(flow, {})}.get(
                 "batch_size", train.batch_size))}
            for flow in spec.flows]


class _Pixels:
    """Just enough of a ``Dataset`` for ``preprocessing_for``: 256-level images."""

    def __init__(self, shape: tuple[int, ...]):
        self.event_shape, self.levels, self.kind = shape, 256, "image"


def build(cell: dict, device: str) -> tuple[flowbench.Flow, torch.Tensor]:
    torch.manual_seed(0)
    flow = flowbench.build_flow(cell["flow"], cell["base"], cell["shape"],
                                preprocessing=preprocessing_for(_Pixels(cell["shape"]), None),
                                flow_hparams=cell["hparams"]).to(device)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (cell["batch"], *cell["shape"]), generator=generator)
    x = (pixels + torch.rand(pixels.shape, generator=generator)).to(device)
    with torch.no_grad():
        flow(x)  # data-dependent initialisation (actnorm)
    return flow, x


def measure(cell: dict, device: str, precision: str, repeats: int) -> dict:
    """Images/s of a training step, ``log_prob`` and ``sample``, and the step's peak memory."""
    flow, x = build(cell, device)
    optimiser = adam(flow, 1e-4)

    def step() -> None:
        loss = -flow.log_prob(x).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    generator = torch.Generator().manual_seed(0)
    with arithmetic(TrainConfig(device=device, precision=precision)):  # as fit trains
        flow.train()
        peak = peak_step_mib(step, device)  # the first step: activations, gradients, Adam state
        saved = saved_mib(flow, x)
        train = time_call(step, repeats=repeats, warmup=1, min_seconds=0.2)
        flow.eval()
        with torch.no_grad():
            density = time_call(lambda: flow.log_prob(x), repeats=repeats, warmup=1)
            sampling = time_call(lambda: flow.sample(cell["batch"], generator), repeats=repeats,
                                 warmup=1)
    batch = cell["batch"]
    return {"suite": cell["suite"], "flow": cell["flow"],
            "shape": "x".join(map(str, cell["shape"])), "batch": batch,
            "device": device, "precision": precision,
            "params": sum(p.numel() for p in flow.parameters()),
            "train_images_per_s": batch / train.median,
            "log_prob_images_per_s": batch / density.median,
            "sample_images_per_s": batch / sampling.median,
            "saved_for_backward_mib": saved, "peak_step_mib": peak}


def peak_step_mib(step, device: str) -> float:
    """Peak memory torch allocates during one training step on CUDA, in MiB (NaN on a CPU,
    where no allocator statistics exist: see :func:`saved_mib`)."""
    if not device.startswith("cuda"):
        return float("nan")
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def saved_mib(flow: flowbench.Flow, x: torch.Tensor) -> float:
    """MiB of the distinct tensors autograd keeps for the backward pass of one batch's loss:
    the activations that grow with the batch, the bulk of a step's memory on any device."""
    seen: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta":
            key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
            seen[key] = tensor.untyped_storage().nbytes()
        return tensor

    parameters = {p.untyped_storage().data_ptr() for p in flow.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = -flow.log_prob(x).mean()
    del loss
    return sum(size for (pointer, _), size in seen.items() if pointer not in parameters) / 2**20


def run_isolated(cell: dict, device: str, precision: str, repeats: int) -> dict:
    """``measure`` in a fresh process, so earlier flows' memory does not hide this one's peak."""
    args = json.dumps({"cell": {**cell, "shape": list(cell["shape"])}, "device": device,
                       "precision": precision, "repeats": repeats})
    done = subprocess.run([sys.executable, __file__, "--one", args], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        return {"suite": cell["suite"], "flow": cell["flow"], "device": device,
                "precision": precision, "error": done.stderr.strip().splitlines()[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", action="append", help="suite(s) whose flows to time "
                        "(default: digits)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32,tf32,bf16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        job = json.loads(args.one)
        cell = {**job["cell"], "shape": tuple(job["cell"]["shape"])}
        print(json.dumps(measure(cell, job["device"], job["precision"], job["repeats"])))
        return pd.DataFrame()
    device = resolve_device(args.device)
    rows = [run_isolated(cell, device, precision, args.repeats)
            for suite in (args.suite or ["digits"]) for cell in suite_cells(suite)
            for precision in args.precision.split(",")]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(1).to_string(index=False))
    return table


if __name__ == "__main__":
    main()

