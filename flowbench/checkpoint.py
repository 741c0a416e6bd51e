"""Checkpoints inside a cell: a training's full state saved now and then, so a cell that dies
(kill -9, a lost machine) or is stopped (Ctrl-C) continues where it was when rerun.

``fit`` saves, through a :class:`CheckpointPolicy`, every ``every`` seconds and when an interrupt
is requested, always at the end of a whole optimisation step, so a resumed fit ends with exactly
the numbers of an uninterrupted one. Files are written atomically (temporary file, fsync,
rename) and read with ``torch.load(weights_only=True)``: the state is tensors, numbers,
strings, lists and dicts only. A file that cannot be read, or that belongs to other settings,
is reported by name and the training starts over — never silently wrong.

Ctrl-C: in the main thread of a process whose Ctrl-C raises ``KeyboardInterrupt`` (``flowbench
run -j 1``), :meth:`CheckpointPolicy.begin` makes a first Ctrl-C request a checkpoint at the end
of the step (then ``KeyboardInterrupt``); a second one stops at once. Local worker processes
install :func:`worker_interrupt` instead: their parent signals them when it is interrupted.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .atomic import write_atomic

#: bumped when the saved state's layout changes; another version is not resumed
FORMAT = 1

_stop = threading.Event()


def request_stop() -> None:
    """Ask the training in this process to checkpoint at the end of its step, then stop."""
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def worker_interrupt(signum: int, frame: Any) -> None:
    """SIGINT handler of a worker process: never raises, only requests a checkpoint-and-stop
    (what Ctrl-C means is the parent's decision; it signals its workers when interrupted)."""
    request_stop()


class CheckpointWarning(UserWarning):
    """A checkpoint could not be used or written; the cell goes on without it."""


@dataclass
class CheckpointPolicy:
    """Where a fit keeps its checkpoint, how often it saves it (``every`` seconds; 0: never
    periodically), and the ``identity`` (e.g. a cell's id and settings, as a string) that a
    checkpoint must carry to be resumed."""

    path: Path
    every: float
    identity: str
    #: save when interrupted (Ctrl-C); False with checkpoints switched off altogether
    on_interrupt: bool = True
    _last: float = field(default=0.0, init=False, repr=False)
    _writable: bool = field(default=True, init=False, repr=False)
    _previous: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    # --- reading --------------------------------------------------------------------------------

    def load(self) -> dict[str, Any] | None:
        """The saved state, or ``None`` when there is none or it cannot be used (then a
        :class:`CheckpointWarning` names the file and says why)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported, not fatal
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            return self._unusable(f"cannot be read ({type(error).__name__}: {first_line})")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            return self._unusable("is not a flowbench checkpoint of this version")
        if state.get("identity") != self.identity:
            return self._unusable("belongs to other settings than this cell's")
        return state

    def _unusable(self, why: str) -> None:
        warnings.warn(f"checkpoint {self.path} {why}; the cell starts over (the file is "
                      "replaced by its next checkpoint, removed with its record)",
                      CheckpointWarning, stacklevel=3)
        return None

    # --- writing --------------------------------------------------------------------------------

    def begin(self) -> None:
        """Start the clock for periodic saves and, where Ctrl-C would raise here, defer it to
        the end of the step (see the module's docstring). Pair with :meth:`end`."""
        self._last = time.perf_counter()
        self._previous = None
        if (self.on_interrupt and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, _deferred_interrupt)

    def end(self) -> None:
        """Undo :meth:`begin`: Ctrl-C raises again, and a stop request is forgotten — except
        in a worker process, which must start no further cell once asked to stop."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if signal.getsignal(signal.SIGINT) is not worker_interrupt:
            _stop.clear()

    def after_step(self, state: Callable[[], dict[str, Any]]) -> float:
        """At the end of a whole step: save ``state()`` if it is time or an interrupt asked for
        it; then, if one did, raise ``KeyboardInterrupt``. Returns the seconds spent saving."""
        stopping = self.on_interrupt and stop_requested()
        due = self.every > 0 and time.perf_counter() - self._last >= self.every
        spent = self.save(state()) if stopping or due else 0.0
        if stopping:
            raise KeyboardInterrupt(f"interrupted; checkpoint saved to {self.path}")
        return spent

    def save(self, state: dict[str, Any]) -> float:
        """Write ``state`` (with this policy's identity) atomically; return the seconds it took.
        A failure (e.g. the run folder is not on this machine) warns once and turns saving off."""
        started = time.perf_counter()
        if self._writable:
            try:
                _write_atomic(self.path, {**state, "format": FORMAT, "identity": self.identity})
            except OSError as error:
                self._writable = False
                warnings.warn(f"cannot write checkpoint {self.path} ({error}); the cell trains "
                              "on without checkpoints", CheckpointWarning, stacklevel=2)
        self._last = time.perf_counter()
        return self._last - started


def _deferred_interrupt(signum: int, frame: Any) -> None:
    """First Ctrl-C: checkpoint at the end of this step, then stop. Second: stop now."""
    if stop_requested():
        raise KeyboardInterrupt
    request_stop()
    sys.stderr.write("\nflowbench: saving a checkpoint at the end of this step "
                     "(Ctrl-C again to stop at once)\n")


def _write_atomic(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` atomically (``flowbench.atomic``). Only the checkpoint folder is
    created, never the run folder above it (which must exist here)."""
    write_atomic(path, lambda handle: torch.save(state, handle), parents=False)


def rng_state() -> dict[str, Any]:
    """torch's global CPU generator and, where CUDA is in use, every CUDA generator (python's
    ``random`` and numpy are not drawn from while training)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`rng_state`'s capture."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def minutes(value: float | None) -> float:
    """Seconds between checkpoints for ``value`` minutes (``None``: none); a clear error for a
    negative or non-finite value."""
    if value is None:
        return 0.0
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"checkpoint_every must be >= 0 minutes (0: no checkpoints), got {value}")
    return 60.0 * value


__all__ = ["FORMAT", "CheckpointPolicy", "CheckpointWarning", "minutes", "request_stop",
           "rng_state", "set_rng_state", "stop_requested", "worker_interrupt"]
