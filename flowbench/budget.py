"""A study's trial budget, exact with any number of workers: one lock per study, held from
"how many trials are taken?" until the next trial exists, so two workers can never both take
the last one.

The lock lives where the storage does, so every process that can reach the storage takes the
same one: a lock file beside a journal or SQLite file (``flock``: every process on the machine,
and machines sharing that disk where its file system supports locks), a PostgreSQL advisory lock,
a MySQL named lock. Other databases get no lock (a study may then end one trial over its budget
when two workers ask for the last one at the same instant), and say so.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .storage import is_database

#: seconds a worker waits for another to take its next trial before giving up
LOCK_TIMEOUT = 600


def _key(study_name: str) -> int:
    """A signed 64-bit key per study (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True)


class BudgetLock:
    """``with lock:`` around taking a study's next trial (reentrant use is not supported)."""

    def __init__(self, storage: str, study_name: str):
        self.storage, self.study_name = storage, study_name
        self._release: Any = None
        self._engine: Any = None

    def __enter__(self) -> "BudgetLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @property
    def exclusive(self) -> bool:
        """Whether holding this lock shuts out every other worker of the study (false for
        databases with no lock, where it does nothing)."""
        return not is_database(self.storage) or \
            self.storage.startswith(("sqlite", "postgresql", "mysql"))

    def acquire(self) -> None:
        if not is_database(self.storage) or self.storage.startswith("sqlite"):
            self._release = _file_lock(self._lock_path())
        elif self.storage.startswith("postgresql"):
            self._release = self._database_lock(
                "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)",
                {"key": _key(self.study_name)})
        elif self.storage.startswith("mysql"):
            self._release = self._database_lock(
                "SELECT GET_LOCK(:name, :timeout)", "SELECT RELEASE_LOCK(:name)",
                {"name": f"flowbench:{self.study_name}"[:64], "timeout": LOCK_TIMEOUT})
        else:
            warnings.warn(f"no trial-budget lock for {self.storage.split('://')[0]} storages: "
                          "a study may end one trial over its budget", stacklevel=2)
            self._release = lambda: None

    def release(self) -> None:
        """Idempotent: the objective releases as soon as its trial exists, ``finally`` again."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def close(self) -> None:
        self.release()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _lock_path(self) -> Path:
        path = Path(self.storage.replace("sqlite:///", "")) if is_database(self.storage) \
            else Path(self.storage)
        safe = hashlib.sha1(self.study_name.encode()).hexdigest()[:16]
        return path.with_name(f".{path.name}.budget-{safe}.lock")

    def _database_lock(self, take: str, give: str, parameters: dict[str, Any]) -> Any:
        from sqlalchemy import create_engine, text

        if self._engine is None:
            self._engine = create_engine(self.storage, pool_size=1, max_overflow=0)
        connection = self._engine.connect()  # the lock belongs to this session
        connection.execute(text(take), parameters)
        connection.commit()

        def release() -> None:
            try:
                connection.execute(text(give), parameters)
                connection.commit()
            finally:
                connection.close()

        return release


def _file_lock(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
    except ImportError:  # pragma: no cover - Windows: msvcrt locks one byte, blocking
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
    return lambda: os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def budget_lock(storage: str, study_name: str) -> Iterator[BudgetLock]:
    """A :class:`BudgetLock` for one worker's whole stay on a study, closed afterwards."""
    lock = BudgetLock(storage, study_name)
    try:
        yield lock
    finally:
        lock.close()
