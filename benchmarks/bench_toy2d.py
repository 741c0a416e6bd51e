"""Load and oracle cost of each toy2d dataset (pytest-benchmark; not part of the test run).

    pytest benchmarks/bench_toy2d.py --benchmark-enable --benchmark-columns=median,iqr,rounds
"""

from __future__ import annotations

import pytest

from flowbench.data import toy2d

pytestmark = pytest.mark.benchmark(group="toy2d")


@pytest.mark.parametrize("name", toy2d.TOY2D_NAMES)
def test_load(benchmark, name: str) -> None:
    benchmark(toy2d.load_toy2d, name)


@pytest.mark.parametrize("name", toy2d.TOY2D_NAMES)
def test_oracle_on_test_split(benchmark, name: str) -> None:
    data = toy2d.load_toy2d(name)
    benchmark(data.log_prob, data.test)
