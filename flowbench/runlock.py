"""One process at a time per run folder: an advisory lock on ``<folder>/.lock``.

The lock is the operating system's (``flock`` on POSIX, ``msvcrt.locking`` on Windows), so it
dies with its process: a ``kill -9`` leaves no stale lock behind, and the next run resumes at
once. While held, the file names the holder (pid, host, command, start time) so a second process
is told who owns the folder. Within one process the lock is re-entrant: every ``RunStore`` of the
same folder shares it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"


class RunLocked(Exception):
    """Another live process owns the run folder."""


def _holder_text(command: str) -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                       "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _try_lock(fd: int) -> bool:
    """Take the lock on ``fd`` without waiting; False if another process holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class RunLock:
    """``acquire()`` / ``release()`` the lock of one run folder (re-entrant in a process)."""

    _held: dict[Path, list[Any]] = {}  # folder -> [fd, count], for this process
    _guard = threading.Lock()

    def __init__(self, folder: Path, command: str = "flowbench"):
        self.folder = Path(folder).resolve()
        self.command = command

    def acquire(self) -> None:
        with self._guard:
            held = self._held.get(self.folder)
            if held is not None:
                held[1] += 1
                return
            path = self.folder / LOCK_FILE
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                locked = _try_lock(fd)
            except OSError as error:  # e.g. a network file system without lock support
                warnings.warn(f"cannot lock {path} ({error}); make sure no other flowbench "
                              "process uses this folder at the same time", stacklevel=3)
                locked = True
            if not locked:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLocked(
                    f"{self.folder} is in use by another flowbench process ({holder}); wait for "
                    "it to finish or stop it, or use another folder")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, _holder_text(self.command).encode())
            os.fsync(fd)
            self._held[self.folder] = [fd, 1]

    def release(self) -> None:
        with self._guard:
            held = self._held.get(self.folder)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del self._held[self.folder]
                os.close(held[0])  # closing the descriptor releases the lock

    @classmethod
    def holds(cls, folder: Path) -> bool:
        return Path(folder).resolve() in cls._held


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
        return (f"pid {info['pid']} on host {info['host']}, {info.get('command', '?')}, since "
                f"{info.get('since', '?')}")
    except (ValueError, KeyError, OSError):
        return "holder unknown"
