"""Opt-in ``torch.compile`` of a flow's ``log_prob`` for training (``flowbench run --compile``).

The flows flowbench compares are stacks of small layers, so eager training spends much of each
step launching tiny element-wise operations; TorchInductor fuses them (forward and backward) into
a few generated kernels. Compiling costs about 10 s per architecture and process up front (later
models of the same architecture recompile in about half a second), so it pays off on long cells,
not on a few hundred steps.

Compiled arithmetic is not bitwise that of eager mode, so a compiled run is a separate run: the
training settings carry ``compile: True`` and therefore the cell ids differ. Where compilation is
unavailable (no C++ compiler, a Python that TorchDynamo does not support, a layer it cannot trace)
training continues eagerly and says why, once.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from typing import Callable

import torch
from torch import Tensor

from .flow import Flow


class CompileUnavailable(RuntimeWarning):
    """Compilation was requested but could not be used; training ran eagerly."""


def compile_unavailable_reason() -> str | None:
    """Why ``torch.compile`` cannot work in this environment, or ``None`` when it should."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        import torch._dynamo as dynamo
    except Exception as error:  # noqa: BLE001 - any import problem means no compilation
        return f"TorchDynamo cannot be imported ({type(error).__name__}: {error})"
    if not dynamo.is_dynamo_supported():
        return (f"torch.compile does not support Python {sys.version_info.major}."
                f"{sys.version_info.minor} with torch {torch.__version__}")
    if not torch.cuda.is_available():  # Inductor's CPU backend builds C++ at run time
        compiler = os.environ.get("CXX", "g++")
        if shutil.which(compiler) is None and shutil.which("clang++") is None:
            return f"no C++ compiler found ({compiler!r} is not on PATH; install g++ or set CXX)"
    return None


def compile_log_prob(flow: Flow) -> tuple[Callable[[Tensor], Tensor], str | None]:
    """``(log_prob, message)``: the compiled ``flow.log_prob`` and ``None``, or the eager one and
    the reason compilation is unavailable. Compilation itself happens on the first call."""
    reason = compile_unavailable_reason()
    if reason is not None:
        return flow.log_prob, reason
    try:
        return torch.compile(flow.log_prob, dynamic=False), None
    except Exception as error:  # noqa: BLE001 - e.g. a backend that refuses this platform
        return flow.log_prob, f"torch.compile failed ({type(error).__name__}: {error})"


def warn_eager(reason: str) -> None:
    warnings.warn(f"compilation unavailable: {reason}; training eagerly instead",
                  CompileUnavailable, stacklevel=3)


__all__ = ["CompileUnavailable", "compile_log_prob", "compile_unavailable_reason", "warn_eager"]
