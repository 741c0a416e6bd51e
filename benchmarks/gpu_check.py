"""The GPU check: every image flow trains on CUDA, agrees with the CPU, and how fast it is there.

    python benchmarks/gpu_check.py                      # on a machine with a GPU
    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check-H100.md

1. Training: every flow of the ``digits`` suite (and of ``cifar10-small`` when registered, on
   random pixels of CIFAR-10's shape) trains ``--steps`` steps with ``flowbench.train.fit`` on
   the device, with the suite's settings; the status must be ``ok``.
2. Agreement: the trained weights are copied into the same architecture on the CPU and both
   evaluate ``log_prob`` of the same 512 dequantised test images in float32; the largest
   relative difference must be below ``--tolerance`` (1e-4).
3. Speed: images/s and peak memory per training step of every image flow in fp32, tf32 and bf16
   (``benchmarks/image_throughput.py``), and the toy2d argument: steps/s of a toy2d RealNVP on
   the device against one CPU process (why toy2d and tabular suites default to ``--device cpu``).

Writes a markdown report (``--out``) and exits 1 if a check fails. ``--device cpu`` runs the
same code on the CPU (the test suite does, with few steps, so the script cannot rot unseen).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import flowbench
from flowbench.api import build_cell_flow
from flowbench.data.dequantise import dequantised
from flowbench.device import describe, resolve_device, supported_precisions
from flowbench.plan import plan_run
from flowbench.report.tables import markdown_table
from flowbench.specs import TrainConfig
from flowbench.train import fit

sys.path.insert(0, str(Path(__file__).parent))
import image_throughput  # noqa: E402


def train_and_compare(suite: str, device: str, steps: int, tolerance: float) -> list[dict]:
    """Steps 1 and 2 for every flow of ``suite`` (its first dataset and base, seed 0)."""
    registry = flowbench.get_registry()
    plan = plan_run(registry, suite, seeds=[0], steps=steps, device=device)
    rows = []
    for cell in plan.cells:
        dataset = _dataset(registry, cell.dataset)
        torch.manual_seed(cell.seed)
        flow = build_cell_flow(cell.__dict__, dataset, registry)
        config = TrainConfig(**{**cell.train, "eval_every": max(1, steps // 2)})
        started = time.perf_counter()
        result = fit(flow, dataset.train, dataset.val, config, seed=0, dequantise=True)
        seconds = time.perf_counter() - started
        torch.manual_seed(cell.seed)
        on_cpu = build_cell_flow(cell.__dict__, dataset, registry)
        on_cpu.load_state_dict({k: v.cpu() for k, v in flow.state_dict().items()})
        on_cpu.eval()
        x = dequantised(dataset.test[:512].float(), 1002)
        with torch.no_grad():
            here = flow.eval().log_prob(x.to(device)).cpu().double()
            there = on_cpu.log_prob(x).double()
        relative = float(((here - there).abs() / there.abs().clamp_min(1.0)).max())
        dims = math.prod(dataset.event_shape)
        rows.append({
            "suite": suite, "flow": cell.flow, "steps": result.steps_done,
            "status": result.status, "val_bpd": result.best_val_nll / (dims * math.log(2)),
            "train_s": round(seconds, 1), "max_rel_diff_vs_cpu": relative,
            "agrees": relative <= tolerance and result.status == "ok"})
        print(rows[-1], flush=True)
    return rows


def _dataset(registry, name: str):
    """The named dataset, or random 256-level pixels of its shape when its files are absent."""
    try:
        return flowbench.load_dataset(name, registry=registry)
    except FileNotFoundError:
        from flowbench.data.dataset import Dataset

        shape = tuple(registry.spec("dataset", name).event_shape)
        generator = torch.Generator().manual_seed(0)
        pixels = torch.randint(0, 256, (3000, *shape), generator=generator).float()
        return Dataset(name=name, train=pixels[:2000], val=pixels[2000:2500],
                       test=pixels[2500:], event_shape=shape, kind="image", levels=256)


def toy2d_rates(device: str, steps: int) -> list[dict]:
    """Training steps/s of toy2d's RealNVP on ``device`` and on one CPU thread."""
    registry = flowbench.get_registry()
    rows = []
    for where in dict.fromkeys([device, "cpu"]):
        plan = plan_run(registry, "toy2d", ["two_moons"], ["realnvp"], ["normal"], [0], steps,
                        device=where)
        cell = plan.cells[0]
        dataset = flowbench.load_dataset(cell.dataset)
        torch.manual_seed(0)
        flow = build_cell_flow(cell.__dict__, dataset, registry)
        config = TrainConfig(**{**cell.train, "eval_every": steps})
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if where == "cpu" else threads)
        result = fit(flow, dataset.train, dataset.val, config, seed=0)
        torch.set_num_threads(threads)
        rows.append({"toy2d realnvp on": where, "steps_per_s": 1 / result.step_seconds[0]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-speed", action="store_true", help="skip step 3")
    parser.add_argument("--out", type=Path, help="markdown report to write")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    registry = flowbench.get_registry()
    suites = [s for s in ("digits", "cifar10-small") if s in registry.names("suite")]
    started = time.perf_counter()
    checks = pd.DataFrame([row for suite in suites
                           for row in train_and_compare(suite, device, args.steps,
                                                        args.tolerance)])
    sections = [f"# flowbench GPU check on {device} ({describe(device)})", "",
                f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
                f"{platform.platform()}, {time.strftime('%Y-%m-%d %H:%M')}", "",
                f"## Training {args.steps} steps and agreement with the CPU (tolerance "
                f"{args.tolerance:g} relative)", "", markdown_table(checks, index=False)]
    if not args.no_speed:
        precisions = ",".join(p for p in ("fp32", "tf32", "bf16")
                              if p in supported_precisions(device))
        speed = pd.concat([image_throughput.main(["--suite", suite, "--device", device,
                                                  "--precision", precisions,
                                                  "--repeats", str(args.repeats)])
                           for suite in suites])
        toy = pd.DataFrame(toy2d_rates(device, max(50, args.steps)))
        sections += ["", "## Images/s and peak memory per training step", "",
                     markdown_table(speed.round(1), index=False), "",
                     "## toy2d: why tiny models default to the CPU", "",
                     markdown_table(toy.round(1), index=False)]
    sections += ["", f"wall {time.perf_counter() - started:.0f} s"]
    report = "\n".join(sections) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0 if bool(checks["agrees"].all()) else 1


if __name__ == "__main__":
    sys.exit(main())
