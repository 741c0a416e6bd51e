"""MAF's trade-off: density in one pass, sampling in D sequential passes (RealNVP: one each way).

    python benchmarks/density_vs_sampling.py              # one torch thread (the default)
    python benchmarks/density_vs_sampling.py --threads 2 --dims 8,32,64

Times ``log_prob`` and ``sample`` of MAF and RealNVP (registered defaults, standard-normal base,
float32, eval mode, ``torch.no_grad``) on batches of 4096 with ``flowbench.measure.time_call``
(median over rounds), and prints a markdown table (plain text without ``tabulate``).
The weights are perturbed away from the identity initialisation; the cost does not depend on
them, but an identity flow is not what anyone samples from.
"""

from __future__ import annotations

import argparse
import importlib.util

import pandas as pd
import torch

import flowbench
from flowbench.measure import time_call
from flowbench.testing import perturb

FLOWS = ("maf", "realnvp")


def measure(flow_name: str, dim: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    flow = perturb(flowbench.build_flow(flow_name, "normal", (dim,)), 0.1).eval()
    x = torch.randn(batch, dim)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        density = time_call(lambda: flow.log_prob(x), repeats=repeats)
        sampling = time_call(lambda: flow.sample(batch, generator), repeats=repeats)
    return {"flow": flow_name, "D": dim, "batch": batch,
            "log_prob_ms": 1e3 * density.median, "sample_ms": 1e3 * sampling.median,
            "sample/log_prob": sampling.median / density.median,
            "log_prob_per_s": batch / density.median, "sample_per_s": batch / sampling.median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--dims", default="8,32", help="comma-separated D (default 8,32)")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
          f"median of {args.repeats} rounds\n")
    dims = [int(d) for d in args.dims.split(",")]
    table = pd.DataFrame([measure(flow, dim, args.batch, args.repeats)
                          for dim in dims for flow in FLOWS])
    if importlib.util.find_spec("tabulate") is not None:
        print(table.to_markdown(index=False, floatfmt=".3g"))
    else:
        print(table.to_string(index=False, float_format=lambda value: f"{value:.3g}"))


if __name__ == "__main__":
    main()
