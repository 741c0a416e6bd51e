"""flowbench: benchmark normalizing-flow architectures against each other.

Public API (stable names): ``get_registry``, ``build_flow``, ``load_dataset``, ``hookimpl``,
``Flow``, ``flowbench.testing.check_flow``.
"""

from importlib.metadata import PackageNotFoundError, version

from .api import HyperparameterError, build_flow, load_dataset
from .data.dataset import Dataset
from .distributions import Distribution
from .flow import Flow
from .hookspecs import hookimpl
from .registry import (
    PluginError, PluginProblem, Registry, UnknownNameError, get_registry, load_registry,
)
from .specs import BaseSpec, DatasetSpec, FlowSpec, SuiteSpec
from .train import TrainConfig, fit

try:
    __version__ = version("flowbench-nf")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BaseSpec", "Dataset", "DatasetSpec", "Distribution", "Flow", "FlowSpec",
    "HyperparameterError", "PluginError", "PluginProblem", "Registry", "SuiteSpec", "TrainConfig",
    "UnknownNameError", "build_flow", "fit", "get_registry", "hookimpl", "load_dataset",
    "load_registry", "__version__",
]
