"""What a checkpoint inside a cell costs: file size and the seconds to save (atomically, fsync'ed)
and to load it, for the digits suite's architectures and for RealNVP and Glow at their defaults
on CIFAR-10's (3, 32, 32).

    python benchmarks/checkpoint_cost.py [--repeats 5] [--folder DIR]

Each model trains one real step through ``flowbench.train.fit`` with a checkpoint policy that
saves after every step, so the file is exactly what a cell writes (model, best model, Adam,
schedule, generators, permutation, curve). Digits use the real data and the suite's settings;
CIFAR-10 (RealNVP and Glow at their defaults, and at the ``cifar10`` suite's papers' sizes) uses
random normal images (the state does not depend on the pixels) and a permutation of CIFAR-10's
50,000 training images. ``--folder`` picks the disk (default: a temporary folder).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import flowbench
from flowbench.checkpoint import CheckpointPolicy
from flowbench.specs import TrainConfig
from flowbench.train import fit

CIFAR_SHAPE, CIFAR_TRAIN = (3, 32, 32), 50_000


def _models(registry: flowbench.Registry):
    """``(label, flow, hparams, shape, train, val, config, dequantise)`` for every model."""
    suite = registry.spec("suite", "digits")
    digits = flowbench.load_dataset("digits", 0, registry=registry)
    config = TrainConfig(**{**suite.train, "steps": 1, "eval_every": 1})
    for flow in suite.flows:
        yield (f"digits {flow}", flow, dict(suite.flow_hparams.get(flow, {})), digits.event_shape,
               digits.train, digits.val, config, digits.levels is not None)
    generator = torch.Generator().manual_seed(0)
    train = torch.randn(64, *CIFAR_SHAPE, generator=generator)
    val = torch.randn(32, *CIFAR_SHAPE, generator=generator)
    small = TrainConfig(steps=1, eval_every=1, batch_size=16, eval_batch_size=32,
                        init_batch_size=64)
    for flow in ("realnvp", "glow"):
        yield f"CIFAR-10 {flow}", flow, {}, CIFAR_SHAPE, train, val, small, False
    papers = registry.spec("suite", "cifar10")  # the papers' sizes: a tiny batch keeps it quick
    # a small learning rate: one step of a big model on noise must not diverge (no checkpoint)
    tiny = TrainConfig(steps=1, eval_every=1, batch_size=4, eval_batch_size=8, init_batch_size=8,
                       lr=1e-6, schedule="constant")
    for flow in papers.flows:
        yield (f"CIFAR-10 {flow}, cifar10 suite", flow, dict(papers.flow_hparams.get(flow, {})),
               CIFAR_SHAPE, train[:8], val[:8], tiny, False)


def measure(label: str, flow_name: str, hparams: dict, shape: tuple[int, ...], train, val,
            config: TrainConfig, dequantise: bool, folder: Path, repeats: int) -> dict:
    """Train one step with a checkpoint after it; time ``repeats`` saves and loads of it."""
    torch.manual_seed(0)
    flow = flowbench.build_flow(flow_name, "normal", shape, **hparams)
    path = folder / f"{label.replace(' ', '-')}.pt"
    policy = CheckpointPolicy(path, 1e-9, label)
    fit(flow, train, val, config, seed=0, dequantise=dequantise, checkpoint=policy)
    state = policy.load()
    assert state is not None, f"{label}: no checkpoint was written"
    if label.startswith("CIFAR"):
        state["order"] = torch.randperm(CIFAR_TRAIN)
    saves, loads = [], []
    for _ in range(repeats):
        saves.append(policy.save(state))
        started = time.perf_counter()
        policy.load()
        loads.append(time.perf_counter() - started)
    return {"model": label, "parameters": sum(p.numel() for p in flow.parameters()),
            "MiB": path.stat().st_size / 2**20, "save": statistics.median(saves),
            "load": statistics.median(loads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folder", type=Path, help="where to write (default: a temp folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = flowbench.get_registry()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; median of "
          f"{args.repeats} saves (temporary file + fsync + rename) and loads (weights_only)\n")
    print("| model | parameters | checkpoint MiB | save s | load s |")
    print("|---|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        for model in _models(registry):
            row = measure(*model, folder=Path(folder), repeats=args.repeats)
            print(f"| {row['model']} | {row['parameters']:,} | {row['MiB']:.1f} | "
                  f"{row['save']:.3f} | {row['load']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
