"""Where Optuna keeps the studies: a journal file (one machine, or a disk all machines share) or a
database URL (many machines), checked and prepared once by the process that starts tuning.

- :func:`check_storage` turns what the user typed into the form every process uses, or raises
  :class:`StorageError` naming the accepted forms: a URL whose scheme SQLAlchemy cannot load, or
  whose driver is not installed, never silently becomes a local file.
- :func:`prepare_storage` creates (or upgrades) Optuna's schema and the studies before any worker
  starts, retrying while another process on another machine does the same, and fails every trial
  left ``RUNNING`` by a process that died (``kill -9``, a lost machine), so a study always ends
  with exactly the trials asked for.
- :func:`open_storage` is what workers call: it never creates tables.

Optuna and SQLAlchemy are imported where used, so the command line starts without them.
"""

from __future__ import annotations

import os
import random
import socket
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

#: what a storage may be, for messages
ACCEPTED = ("a journal file path (e.g. results/toy2d-tuning/optuna.journal), or an SQLAlchemy "
            "database URL such as sqlite:///studies.db, postgresql://user:password@host/db or "
            "mysql+pymysql://user:password@host/db")
#: the install hint for a missing database driver, by SQLAlchemy backend name
DRIVER_HINTS = {
    "postgresql": "pip install 'flowbench-nf[postgres]' (psycopg 3; or name another installed "
                  "driver in the URL, e.g. postgresql+psycopg2://...)",
    "mysql": "pip install pymysql, and name it in the URL: mysql+pymysql://...",
}
#: a worker's heartbeat on database storages; a RUNNING trial silent for GRACE_SECONDS has lost
#: its process and is failed (Optuna's own stale-trial mechanism)
HEARTBEAT_SECONDS, GRACE_SECONDS = 20, 120
#: how long a second process waits for a schema or study that another is creating
PREPARE_PATIENCE = 60.0
CONNECT_TIMEOUT = 10
#: the trial attribute that names the process running it, ``host:pid``
WORKER_ATTR = "worker"


class StorageError(ValueError):
    """A storage that cannot be used: bad form, unknown scheme, missing driver, unreachable."""


def is_database(storage: str) -> bool:
    return "://" in storage


def _redacted(url: Any) -> str:
    return url.render_as_string(hide_password=True)


def shown(storage: str) -> str:
    """``storage`` as it may be printed or recorded: a database URL's password masked."""
    if not is_database(storage):
        return storage
    from sqlalchemy.engine import make_url

    return _redacted(make_url(storage))


def check_storage(storage: str) -> str:
    """The storage every process should open: a journal path made absolute, or a database URL
    (``postgres://`` accepted as an alias of ``postgresql://``) whose scheme and driver load."""
    if not is_database(storage):
        return str(Path(storage).expanduser().resolve())
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme, rest = storage.split("://", 1)
    if scheme.split("+", 1)[0] == "postgres":
        storage = "postgresql" + scheme[len("postgres"):] + "://" + rest
        scheme = storage.split("://", 1)[0]
    try:
        url = make_url(storage)
    except ArgumentError as error:
        raise StorageError(f"cannot read the storage URL {storage.split('@')[-1]!r} ({error}); "
                           f"a storage is {ACCEPTED}") from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise StorageError(f"unknown database scheme {scheme!r} in storage "
                           f"{_redacted(url)!r}; a storage is {ACCEPTED}") from None
    try:
        dialect.import_dbapi()
    except ImportError as error:
        hint = DRIVER_HINTS.get(url.get_backend_name(), "install the driver it names")
        raise StorageError(f"the database driver for {url.drivername!r} is not installed "
                           f"({error}); {hint}") from None
    return url.render_as_string(hide_password=False)


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": PREPARE_PATIENCE}}  # wait for a locked database
    return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}


def open_storage(storage: str, create: bool = False) -> Any:
    """An Optuna storage for ``storage`` (as returned by :func:`check_storage`); tables are
    created only with ``create`` (the preparing process)."""
    import optuna

    if not is_database(storage):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(storage)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; we rely on them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            storage, engine_kwargs=_engine_kwargs(storage), heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS, skip_table_creation=not create)


def _check_connection(storage: str) -> None:
    """Fail within seconds, before any training, when the database cannot be used at all."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = make_url(storage)
    engine = create_engine(storage, **_engine_kwargs(storage))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        where = f"host {url.host}" + (f":{url.port}" if url.port else "") if url.host \
            else f"database {url.database}"
        raise StorageError(f"cannot use the storage {_redacted(url)!r} ({where}): "
                           f"{reason}") from None
    finally:
        engine.dispose()


def _patiently(action: Any, what: str) -> Any:
    """``action()``, retried while another process races us to create the same schema or study
    (its half-made state raises); gives up after :data:`PREPARE_PATIENCE` seconds."""
    deadline = time.monotonic() + PREPARE_PATIENCE
    while True:
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - any race symptom: retry, then report
            if time.monotonic() > deadline:
                raise StorageError(f"could not {what}: {error}") from None
            time.sleep(random.uniform(0.2, 1.0))


def prepare_storage(storage: str, study_names: Sequence[str]) -> Any:
    """Create the schema and every study (``minimize``) before workers start, and fail the
    trials that dead processes left running; returns the opened storage."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" lines
    if is_database(storage):
        _check_connection(storage)
    opened = _patiently(lambda: open_storage(storage, create=True), "create the tables")
    for name in study_names:
        study = _patiently(lambda name=name: optuna.create_study(
            storage=opened, study_name=name, direction="minimize", load_if_exists=True),
            f"create study {name!r}")
        fail_abandoned_trials(study, opened)
    return opened


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def fail_abandoned_trials(study: Any, storage: Any, wait: float = 3.0,
                          budget_locked: bool = False) -> list[int]:
    """Mark ``FAIL`` every trial still ``RUNNING`` whose process is gone: a process of this
    machine that no longer exists (after waiting up to ``wait`` seconds for one that is still
    exiting), or one that never said who runs it a minute after it started. On database
    storages, Optuna's heartbeat also fails those of other machines after the grace period.

    ``budget_locked``: the caller holds the study's :class:`~flowbench.budget.BudgetLock`, under
    which every trial is both created and named, so a nameless trial cannot belong to a live
    process (it was killed in between) and is failed at once, not after a minute.
    Returns the numbers of the trials failed."""
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    abandoned = []
    deadline = time.monotonic() + wait
    for trial in running:
        worker = trial.user_attrs.get(WORKER_ATTR, "")
        where, _, pid = worker.rpartition(":")
        if worker and where == host and pid.isdigit():
            while _alive(int(pid)) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(int(pid)):
                continue
        elif worker or (not budget_locked and (
                trial.datetime_start is None or
                datetime.now() - trial.datetime_start < timedelta(minutes=1))):
            continue
        abandoned.append(trial)
    for trial in abandoned:
        storage.set_trial_user_attr(trial._trial_id, "failed_because",
                                    "its process ended before the trial finished")
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    if getattr(storage, "is_heartbeat_enabled", lambda: False)():
        optuna.storages.fail_stale_trials(study)
    return [trial.number for trial in abandoned]
