"""Where tasks run: in this process, in local worker processes, or on a Dask cluster.

A :class:`Task` is a picklable function call (a cell, a dataset's references, a study). Results
come back as each task finishes, in whatever order; the caller records them. Local workers are
spawned fresh (no inherited state), use one torch thread, never raise at Ctrl-C (this process
decides what an interrupt means: when interrupted it signals them, waits at most
:data:`CHECKPOINT_GRACE` seconds for the tasks that save a checkpoint then (cells, at the end of
their step), and stops them) and exit by themselves if this process dies.
"""

from __future__ import annotations

import atexit
import concurrent.futures as futures
import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlparse

BACKENDS = ("local", "dask")
#: seconds to wait for a Dask scheduler that accepts the connection but does not answer
SCHEDULER_TIMEOUT = 20.0
#: seconds an interrupted run waits for its workers to checkpoint their cells and exit
CHECKPOINT_GRACE = 60.0


class BackendError(RuntimeError):
    """The execution backend cannot be used (e.g. no Dask scheduler at that address)."""


@dataclass(frozen=True)
class Task:
    """``function(*args, **kwargs)``, labelled ``kind`` for whoever collects the results.
    ``in_process`` adds keyword arguments only when the task runs in this process (a per-step
    progress bar, which a worker could not draw). An ``interruptible`` task saves a checkpoint
    and stops when its worker gets SIGINT; an interrupted run waits for it to do so."""

    kind: str
    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    in_process: Mapping[str, Any] = field(default_factory=dict)
    interruptible: bool = False
    #: Dask worker resources the task needs, e.g. ``{"GPU": 1}`` for a cell on a GPU: such a
    #: task runs only on workers started with ``--resources "GPU=1"``, one per GPU at a time
    resources: Mapping[str, float] = field(default_factory=dict)


def default_jobs() -> int:
    """Usable CPU cores (respecting affinity masks)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_tasks(tasks: list[Task], plugins: tuple[str, ...] = (), jobs: int = 1,
              backend: str = "local", scheduler: str | None = None
              ) -> Iterator[tuple[Task, Any]]:
    """Run ``tasks`` here (``jobs`` 1), in ``jobs`` spawned local workers, or on the Dask
    cluster at ``scheduler``; yield ``(task, result)`` as each finishes. Close the iterator
    (or let an exception leave it) and unfinished work is cancelled and the workers stopped."""
    if backend == "dask":
        yield from _run_on_dask(tasks, scheduler)
        return
    if backend != "local":
        raise BackendError(f"unknown backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, task.function(*task.args, **{**task.kwargs, **task.in_process})
        return
    yield from _run_in_workers(tasks, plugins, min(jobs, len(tasks)))


def _init_worker(plugins: tuple[str, ...], parent: int) -> None:
    import torch

    from .cell import worker_registry
    from .checkpoint import worker_interrupt

    signal.signal(signal.SIGINT, worker_interrupt)  # a request to checkpoint, never a raise
    torch.set_num_threads(1)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    worker_registry(plugins)
    atexit.register(gc.freeze)  # the collector then skips the worker's objects at shutdown


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (kill -9) has no one to return its result to: stop. On Linux
    the kernel kills it at once (``PR_SET_PDEATHSIG``, set from the worker's main thread, where
    the kernel looks); elsewhere this watchdog notices within half a second."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _run_in_workers(tasks: list[Task], plugins: tuple[str, ...], workers: int
                    ) -> Iterator[tuple[Task, Any]]:
    pool = futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker, initargs=(plugins, os.getpid()),
    )
    finished = False
    pending: dict[futures.Future, Task] = {}  # known in ``finally`` even if a submit fails
    try:
        pending.update({pool.submit(task.function, *task.args, **task.kwargs): task
                        for task in tasks})
        for future in futures.as_completed(pending):
            yield pending[future], future.result()
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted or failed: stop the workers now rather than after their cells
            processes = list(getattr(pool, "_processes", {}).values())
            # started or queued for a worker; the others are cancelled (and never notify a wait)
            running = [future for future, task in pending.items()
                       if task.interruptible and future.running()]
            pool.shutdown(wait=False, cancel_futures=True)
            _let_workers_checkpoint(processes, running)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=10)


def _let_workers_checkpoint(processes: list[Any], running: list[futures.Future],
                            grace: float = CHECKPOINT_GRACE) -> None:
    """Ask every worker (SIGINT: ``flowbench.checkpoint.worker_interrupt``) to save its cell's
    checkpoint at the end of the step and start no new cell; wait for the ``running``
    interruptible tasks to end, at most ``grace`` seconds or until a second Ctrl-C."""
    alive = [process for process in processes if process.is_alive()]
    if not running or not alive:
        return
    for process in alive:
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGINT)
    sys.stderr.write(f"flowbench: letting {len(alive)} worker(s) save their cells' checkpoints "
                     f"(at most {grace:.0f} s; Ctrl-C again to stop at once)\n")
    with contextlib.suppress(KeyboardInterrupt):
        futures.wait(running, timeout=grace)


def _check_reachable(scheduler: str) -> None:
    """Fail at once, not after the client's retries, when nothing listens at a tcp:// address."""
    address = urlparse(scheduler)
    if address.scheme != "tcp" or not address.hostname or not address.port:
        return
    try:
        socket.create_connection((address.hostname, address.port), timeout=5).close()
    except OSError as error:
        raise BackendError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def _check_resources(client: Any, tasks: list[Task]) -> None:
    """Refuse, rather than wait forever, when tasks need a resource no worker offers."""
    needed = {name for task in tasks for name in task.resources}
    if not needed:
        return
    workers = client.scheduler_info().get("workers", {}).values()
    offered = {name for worker in workers for name in (worker.get("resources") or {})}
    missing = sorted(needed - offered)
    if missing:
        raise BackendError(
            f"cells need the Dask worker resource(s) {missing} (cells on a GPU need 'GPU'), "
            f"but no worker of this cluster offers them; start one worker per GPU with e.g. "
            f"CUDA_VISIBLE_DEVICES=0 dask worker SCHEDULER --nworkers 1 --resources \"GPU=1\"")


def _run_on_dask(tasks: list[Task], scheduler: str | None) -> Iterator[tuple[Task, Any]]:
    """Each task becomes a Dask task on the cluster whose scheduler is at ``scheduler``.
    Workers need flowbench (and any plugin file, at the same path) installed."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise BackendError("the dask backend needs dask.distributed: "
                           "pip install 'flowbench-nf[dask]'") from None
    if not scheduler:
        raise BackendError("the dask backend needs a scheduler address (e.g. tcp://host:8786)")
    _check_reachable(scheduler)
    try:
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError) as error:
        raise BackendError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        _check_resources(client, tasks)
        submitted = {client.submit(task.function, *task.args, **task.kwargs, pure=False,
                                   resources=dict(task.resources) or None): task
                     for task in tasks}
        for future in as_completed(submitted):
            yield submitted[future], future.result()
    finally:
        client.close()
