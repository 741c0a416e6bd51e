"""Shared fixtures: float64 checks, a fresh registry, and plugin files written on the fly."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import flowbench

# One torch thread, like the runner's cells: these models are tiny, and OpenMP threads that
# spin while competing for 2 cores slowed training 50x here.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def registry() -> flowbench.Registry:
    registry = flowbench.load_registry(strict=True)
    return registry


@pytest.fixture
def write_plugin(tmp_path: Path):
    """``write_plugin(name, source) -> path`` of a plugin module file."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def float64():
    """float64 as torch's default dtype for one test (exact log-det comparisons)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


PYTHON = sys.executable
