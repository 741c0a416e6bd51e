"""Cost of the log-determinant: analytic vs brute-force Jacobian, and Glow's LU 1x1 convolution.

    python benchmarks/bench_logdet.py              # one torch thread (the default)
    python benchmarks/bench_logdet.py --threads 2

Prints, as markdown (plain text without ``tabulate``): the log-det cost table of NICE, RealNVP
and Glow with the standard-normal base for D = 2..512, the fitted complexity exponents, and the
LU-vs-plain table for c = 4..1024 channels, each with the seconds it took to measure.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import pandas as pd
import torch

from flowbench.measure import exponents, linear_cost, logdet_cost

FLOWS = ("nice", "realnvp", "glow")


def show(title: str, frame: pd.DataFrame) -> None:
    print(f"\n## {title}\n")
    if importlib.util.find_spec("tabulate") is not None:
        print(frame.to_markdown(index=False, floatfmt=".4g"))
    else:
        print(frame.to_string(index=False, float_format=lambda value: f"{value:.4g}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    start = time.perf_counter()
    logdet = pd.concat([logdet_cost(flow, "normal") for flow in FLOWS], ignore_index=True)
    logdet_seconds = time.perf_counter() - start
    start = time.perf_counter()
    linear = linear_cost()
    linear_seconds = time.perf_counter() - start

    show(f"log-det cost per batch ({logdet_seconds:.1f} s to measure)", logdet)
    show("empirical exponents (seconds ~ dim^k)", exponents(logdet))
    linear_wide = linear.pivot_table(index=["channels", "operation"], columns="layer",
                                     values="seconds_median").reset_index()
    linear_wide["plain/lu"] = linear_wide["plain"] / linear_wide["lu"]
    show(f"invertible 1x1 convolution, seconds per call ({linear_seconds:.1f} s to measure)",
         linear_wide)
    print(f"\ntotal: logdet_cost {logdet_seconds:.1f} s + linear_cost {linear_seconds:.1f} s "
          f"= {logdet_seconds + linear_seconds:.1f} s")


if __name__ == "__main__":
    main()
