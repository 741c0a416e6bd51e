"""Sampling vs log_prob time of every zuko-<family> at its defaults, D = 2 and 8, batch 1024
(median of 3, no gradients, one thread): ``python plugins/flowbench-zuko/sampling_cost.py``."""

from __future__ import annotations

import statistics
import time

import torch

import flowbench
from flowbench_zuko import FAMILIES


def seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    print("| flow | D | log_prob ms | sample ms | sample / log_prob |")
    print("|---|---|---|---|---|")
    import sys
    for family in sys.argv[1:] or FAMILIES:
        for features in (2, 8):
            torch.manual_seed(0)
            flow = flowbench.build_flow(f"zuko-{family}", "normal", (features,)).eval()
            x = torch.randn(1024, features)
            with torch.no_grad():
                density = seconds(lambda flow=flow, x=x: flow.log_prob(x))
                sample = seconds(lambda flow=flow: flow.sample(1024))
            print(f"| zuko-{family} | {features} | {1e3 * density:.1f} | {1e3 * sample:.1f} "
                  f"| {sample / density:.1f} |", flush=True)


if __name__ == "__main__":
    main()
