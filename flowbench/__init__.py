"""flowbench: benchmark normalizing-flow architectures against each other.

Public API (stable names): ``get_registry``, ``build_flow``, ``load_dataset``, ``run_suite``,
``tune_suite``, ``write_report``, ``hookimpl``, the spec records (``FlowSpec``, ``BaseSpec``,
``DatasetSpec``, ``SuiteSpec``), ``Flow``, ``TrainConfig``, ``fit``, and
``flowbench.testing.check_flow``.

Names load on first use (PEP 562), so ``import flowbench.specs`` or a plugin's
``from flowbench import FlowSpec, hookimpl`` does not import torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("flowbench-nf")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: public name -> the module that defines it
_EXPORTS = {
    "BaseSpec": "specs", "DatasetSpec": "specs", "FlowSpec": "specs", "SuiteSpec": "specs",
    "PublishedResult": "specs", "TrainConfig": "specs", "hookimpl": "hookspecs",
    "PluginError": "registry", "PluginProblem": "registry", "Registry": "registry",
    "UnknownNameError": "registry", "get_registry": "registry", "load_registry": "registry",
    "HyperparameterError": "api", "build_flow": "api", "load_dataset": "api",
    "Dataset": "data.dataset", "Distribution": "distributions", "Flow": "flow", "fit": "train",
    "Run": "runs", "Tuning": "runs", "run_suite": "runs", "tune_suite": "runs",
    "write_report": "runs",
}
_SUBMODULES = {
    "api", "backends", "cell", "cli", "compile", "data", "distributions", "flat", "flow",
    "hookspecs", "layers", "measure", "metadata", "plan", "pruners", "references", "registry",
    "report", "runlock", "runner", "runs", "search_spaces", "specs", "storage", "store",
    "suitefile", "testing", "train", "tune",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'flowbench' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
