"""Where cells run and in what arithmetic: ``--device`` and ``--precision``.

``auto`` resolves once, in the process that plans a run, to ``cuda`` when CUDA is available and
``cpu`` otherwise, so every cell of a run (and its id) names the device it really used. A device
or precision the machine lacks is a :class:`DeviceError` (exit 2) before anything trains, naming
what is available.

Precisions (``TrainConfig.precision``):

- ``fp32`` — everything in float32, as written (the default, and the only choice on the CPU
  that changes nothing).
- ``tf32`` — CUDA matrix products and convolutions may round their inputs to TensorFloat-32
  (10-bit mantissa) on Ampere or newer GPUs; everything else float32. Nothing changes on a CPU.
- ``bf16`` — the conditioner networks (the MLPs and ResNets inside couplings) run under
  ``torch.autocast`` in bfloat16; their outputs are cast back to float32 before the coupling
  uses them, so scales, shifts, log-dets, base log-densities and every NLL stay float32 (sums
  of NLLs float64).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


class DeviceError(ValueError):
    """A device or precision that this machine cannot provide (the message says what can)."""


def available_devices() -> list[str]:
    """The devices this machine offers, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu"] + [f"cuda:{index}" for index in range(count)]


def resolve_device(device: str | None, here: bool = True) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for ``device`` (``auto``/``None``: CUDA when
    available); a :class:`DeviceError` naming the available devices if it does not exist here.
    With ``here=False`` (cells that run on other machines, e.g. Dask workers) a well-formed
    ``cuda``/``cuda:N`` is taken as given."""
    text = "auto" if device is None else str(device).strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    available = ", ".join(available_devices())
    if text == "cuda" or text.startswith("cuda:"):
        index = text.partition(":")[2]
        if index and not index.isdigit():
            raise DeviceError(f"device {device!r} is not valid; valid choices: "
                              f"{', '.join(DEVICE_CHOICES)} (available here: {available})")
        if not here:
            return text
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but CUDA is not available on this "
                              f"machine (torch {torch.__version__}); available here: "
                              f"{available}")
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s); available here: "
                              f"{available}")
        return text
    raise DeviceError(f"unknown device {device!r}; valid choices: {', '.join(DEVICE_CHOICES)} "
                      f"(available here: {available})")


def check_precision(precision: str, device: str, here: bool = True) -> str:
    """``precision`` if ``device`` supports it, else a :class:`DeviceError` saying which do
    (``here=False``: only that the name is valid)."""
    from .specs import PRECISIONS

    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; valid choices: "
                          f"{', '.join(PRECISIONS)}")
    if not here:
        return precision
    supported = supported_precisions(device)
    if precision not in supported:
        raise DeviceError(f"precision {precision!r} is not supported on {device} "
                          f"({describe(device)}); supported there: {', '.join(supported)}")
    return precision


def supported_precisions(device: str) -> list[str]:
    """The precisions that ``device`` can run: bf16 autocast works on every CPU torch supports
    and on CUDA devices that report bfloat16 support; tf32 is meaningful on CUDA only."""
    if device.startswith("cuda"):
        kinds = ["fp32", "tf32"]
        with torch.cuda.device(torch.device(device)):
            if torch.cuda.is_bf16_supported():
                kinds.append("bf16")
        return kinds
    return ["fp32", "bf16"]


def describe(device: str) -> str:
    """A one-line name of ``device`` for metadata and the run's first line."""
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        properties = torch.cuda.get_device_properties(index)
        return f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB"
    return "CPU"


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """TensorFloat-32 for CUDA matmuls and convolutions while training (``tf32``), restored
    afterwards; ``fp32`` turns it off explicitly, whatever the process default was."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    allow = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure: CUDA's ``OutOfMemoryError`` or the CPU
    allocator's "can't allocate memory"."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in str(error) or "out of memory" in str(error).lower())


__all__ = ["DEVICE_CHOICES", "DeviceError", "available_devices", "check_precision", "describe",
           "is_out_of_memory", "matmul_precision", "resolve_device",
           "supported_precisions"]
