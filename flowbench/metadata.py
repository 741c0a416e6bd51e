"""Machine and package facts recorded with every run, so numbers can be traced and compared."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import sys
import time
from typing import Any

import torch

PACKAGES = ("flowbench-nf", "torch", "numpy", "scipy", "pandas", "scikit-learn", "optuna",
            "pluggy", "seaborn", "matplotlib")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Host, CPU, Python, torch threading and package versions, with a timestamp."""
    plugin_dists = sorted({
        f"{ep.dist.metadata['Name']}=={ep.dist.version}"
        for ep in importlib.metadata.entry_points(group="flowbench") if ep.dist is not None
    })
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "packages": {name: _version(name) for name in PACKAGES},
        "plugin_distributions": plugin_dists,
        "argv": sys.argv,
        **(extra or {}),
    }
