"""A run folder on disk: resolved config, metadata, an append-only record of finished cells.

Layout of ``results/<suite>-<timestamp>/`` (or any folder you choose)::

    config.json     the resolved run configuration (what the command asked for, fully spelled out)
    metadata.json   machine and package versions, one entry per session that worked on the run
    cells.jsonl     one JSON line per finished cell, appended and fsync'ed as each cell ends
    results.csv     one row per finished cell (rewritten atomically after each cell)
    models/         the trained state dict of each ok cell, ``<cell_id>.pt``
    checkpoints/    the training state of unfinished cells, ``<cell_id>.pt`` (written by whoever
                    trains the cell, removed with its record written; ``flowbench.checkpoint``)
    references.*    baseline NLLs per dataset (``.jsonl`` appended, ``.csv`` rewritten)
    published.json  papers' numbers for the run's datasets (``DatasetSpec.published``), if any
    logdet_cost.*   log-det cost per flow and dimension; linear_cost.*: LU vs plain 1x1 conv
    report.md, report.html, figures/, tables/   written by the report
    .lock           who owns the folder while a process writes it (see ``flowbench.runlock``)

What is guaranteed: every file is either appended and fsync'ed (``*.jsonl``) or replaced atomically
(everything else), so a kill at any moment leaves each file whole, except possibly a torn last line
of a ``*.jsonl`` file. That fragment is set aside (``<name>.torn``) and cut off when the folder is
next opened for writing, and skipped when it is only read. Anything else that does not parse is a
damaged file: :class:`DamagedFile` names it and the line, and nothing is rewritten. A folder that
holds ``REFERENCE-RUN.md`` is a committed reference run: it can be read, never written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from .atomic import write_atomic
from .runlock import RunLock

CONFIG, METADATA, RECORDS, TABLE, MODELS, REPORT = (
    "config.json", "metadata.json", "cells.jsonl", "results.csv", "models", "report.html",
)
#: training state of unfinished cells (see ``flowbench.checkpoint``)
CHECKPOINTS = "checkpoints"
#: papers' numbers on the run's datasets, as the plugins gave them when the run (re)started
PUBLISHED = "published.json"
#: the file that marks a committed, read-only reference run
REFERENCE_MARKER = "REFERENCE-RUN.md"


class StoreError(Exception):
    """A run folder that cannot be used as asked (damaged, read-only, or owned by another
    process). ``str()`` says which file and what to do."""


class DamagedFile(StoreError):
    """A file of the run folder that does not parse as what flowbench wrote."""

    def __init__(self, path: Path, line: int | None, problem: str, remedy: str):
        self.path, self.line, self.problem, self.remedy = Path(path), line, problem, remedy
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}; {remedy}. Nothing was overwritten")


class ReadOnlyRun(StoreError):
    """A committed reference run: it is never resumed nor written into."""


def _json_default(value: Any) -> Any:
    if isinstance(value, set):
        return sorted(value)
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN/inf)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """JSON text of ``value`` as flowbench writes it (NaN as null, sets sorted)."""
    return json.dumps(jsonable(value), default=_json_default, allow_nan=False, **options)


def read_json(path: Path, what: str, remedy: str) -> Any:
    """Parse a JSON file written by flowbench, or raise :class:`DamagedFile` naming the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DamagedFile(path, None, f"{what} is not UTF-8 text ({error.reason})",
                          remedy) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DamagedFile(path, error.lineno, f"{what} is not valid JSON ({error.msg}, column "
                          f"{error.colno})", remedy) from None


def _append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append whole lines durably (flush + fsync before returning)."""
    with open(path, "a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _read_jsonl(path: Path, check: Any = None) -> list[dict[str, Any]]:
    """Every record of a ``*.jsonl`` file. A last line without its newline is an append still
    in progress (or torn by a crash): skipped with a warning. Any other line that is not a JSON
    object (or fails ``check(record) -> problem | None``) is damage: :class:`DamagedFile`."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail_is_open = not data.endswith(b"\n")
    records = []
    remedy = (f"repair or delete line(s) of {path.name} that are not flowbench records (a deleted "
              "cell record is trained again), or start a new run folder")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        last = number == len(lines) and tail_is_open
        try:
            record = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            if last:
                warnings.warn(f"{path}, line {number}: unreadable record skipped: an "
                              "unfinished last line (interrupted or in-progress write)",
                              stacklevel=3)
                continue
            raise DamagedFile(path, number, f"not a JSON record ({error})", remedy) from None
        problem = "not a JSON object" if not isinstance(record, dict) else (
            check(record) if check else None)
        if problem:
            raise DamagedFile(path, number, problem, remedy)
        records.append(record)
    return records


def _check_cell_record(record: dict[str, Any]) -> str | None:
    if not isinstance(record.get("cell_id"), str):
        return "a JSON object without a 'cell_id': not a flowbench cell record"
    return None


def repair_torn_tail(path: Path) -> str | None:
    """Make ``path`` (a ``*.jsonl`` file) end with a newline before anything is appended, so a
    fragment left by a crash mid-append can never swallow the next record. A fragment that is
    a whole record only lacking its newline gets the newline; any other fragment is moved to
    ``<name>.torn`` and cut off. Returns what was done, or ``None`` when nothing was needed."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return None
        handle.seek(0)
        data = handle.read()
        start = data.rfind(b"\n") + 1
        fragment = data[start:]
        line = data.count(b"\n") + 1
        try:
            complete = isinstance(json.loads(fragment.decode("utf-8")), dict)
        except (json.JSONDecodeError, UnicodeDecodeError):
            complete = False
        if complete:
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
            return f"{path}, line {line}: a whole record lacked its newline; newline added"
        _append_lines_bytes(path.with_name(path.name + ".torn"), fragment)
        handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())
    return (f"{path}, line {line}: an unfinished record ({len(fragment)} bytes, from an "
            f"interrupted write) was moved to {path.name}.torn; what it recorded is redone")


def _append_lines_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


class RunStore:
    """Reads and writes one run folder. Reading takes no lock; every write happens under the
    folder's lock (:meth:`writing`, re-entrant) and is refused for a reference run."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def models(self) -> Path:
        return self.path / MODELS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def exists(self) -> bool:
        return (self.path / CONFIG).is_file()

    @property
    def is_reference(self) -> bool:
        """A committed reference run (``REFERENCE-RUN.md``): read-only."""
        return (self.path / REFERENCE_MARKER).is_file()

    # --- ownership ---------------------------------------------------------------------------

    @contextmanager
    def writing(self, command: str = "flowbench") -> Iterator["RunStore"]:
        """Own the folder for the block: refuse a reference run, take the lock (another live
        process holding it raises :class:`~flowbench.runlock.RunLocked`; a stale lock of a dead
        process does not block), and, when first taken, repair torn last lines before anything
        is appended. Every write method takes it too; hold it around a whole run so no other
        process can slip in between two writes."""
        if self.is_reference:
            raise ReadOnlyRun(
                f"{self.path} is a committed reference run ({REFERENCE_MARKER}): it is never "
                "resumed or written into; write to another folder")
        self.path.mkdir(parents=True, exist_ok=True)
        first = not RunLock.holds(self.path)
        lock = RunLock(self.path, command)
        lock.acquire()
        try:
            if first:
                for path in sorted(self.path.glob("*.jsonl")):
                    done = repair_torn_tail(path)
                    if done:
                        warnings.warn(done, stacklevel=3)
            yield self
        finally:
            lock.release()

    def check(self) -> None:
        """Read every file of the folder once: :class:`DamagedFile` for the first that does not
        parse, before anything is written."""
        if self.exists():
            self.read_config()
        self.read_metadata()
        self.records()
        for path in sorted(self.path.glob("*.jsonl")):
            _read_jsonl(path)

    def report_is_current(self) -> bool:
        """The report was written after the last change to what it shows (the configuration,
        the cell records, the measurements), so writing it again would give the same pages."""
        report = self.path / REPORT
        if not report.is_file():
            return False
        inputs = [self.path / CONFIG, self.path / PUBLISHED, *self.path.glob("*.jsonl")]
        return report.stat().st_mtime >= max(p.stat().st_mtime for p in inputs if p.is_file())

    # --- config and metadata -----------------------------------------------------------------

    def read_config(self) -> dict[str, Any]:
        config = read_json(self.path / CONFIG, "the run configuration",
                           "restore it (e.g. from version control) or start a new run folder")
        if not isinstance(config, dict) or "config_hash" not in config:
            raise DamagedFile(self.path / CONFIG, None,
                              "not a flowbench run configuration (no 'config_hash')",
                              "use a folder written by flowbench, or start a new run folder")
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        with self.writing():
            write_atomic(self.path / CONFIG, dumps(config, indent=2))

    def read_metadata(self) -> list[dict[str, Any]]:
        path = self.path / METADATA
        if not path.is_file():
            return []
        data = read_json(path, "the session metadata",
                         f"repair it or move it aside (a new {METADATA} is then started)")
        sessions = data.get("sessions") if isinstance(data, dict) else None
        if not isinstance(sessions, list) or not all(isinstance(s, dict) for s in sessions):
            raise DamagedFile(path, None, "expected {\"sessions\": [ {...}, ... ]}",
                              f"repair it or move it aside (a new {METADATA} is then started)")
        return sessions

    def add_session_metadata(self, metadata: dict[str, Any]) -> None:
        with self.writing():
            sessions = self.read_metadata() + [metadata]
            write_atomic(self.path / METADATA, dumps({"sessions": sessions}, indent=2))

    def update_session_metadata(self, extra: dict[str, Any]) -> None:
        """Merge ``extra`` into this session's (the last) metadata entry."""
        with self.writing():
            sessions = self.read_metadata() or [{}]
            sessions[-1].update(extra)
            write_atomic(self.path / METADATA, dumps({"sessions": sessions}, indent=2))

    # --- published results ------------------------------------------------------------------

    def read_published(self) -> list[dict[str, Any]]:
        """The published rows (dataset, method, nll, unit, source) stored for this run; ``[]``
        when there are none."""
        path = self.path / PUBLISHED
        if not path.is_file():
            return []
        remedy = "restore it, or delete it (the next `flowbench run` writes it again)"
        data = read_json(path, "the published results", remedy)
        rows = data.get("published") if isinstance(data, dict) else None
        keys = {"dataset", "method", "nll", "unit", "source"}
        if not isinstance(rows, list) or not all(isinstance(r, dict) and keys <= r.keys()
                                                 for r in rows):
            raise DamagedFile(path, None, "expected {\"published\": [{" + ", ".join(
                f'"{k}": ...' for k in sorted(keys)) + "}, ...]}", remedy)
        return rows

    def write_published(self, rows: list[dict[str, Any]]) -> None:
        """Store the published rows (atomically), unless they are already what is stored; no
        file while there are none."""
        if rows == self.read_published():
            return
        with self.writing():
            write_atomic(self.path / PUBLISHED, dumps({"published": rows}, indent=2))

    # --- cell records --------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Append one finished cell durably (flush + fsync before returning)."""
        with self.writing():
            _append_lines(self.path / RECORDS, [dumps(record)])

    def records(self) -> list[dict[str, Any]]:
        """Every finished cell, the latest record per cell id."""
        latest: dict[str, dict[str, Any]] = {}
        for record in _read_jsonl(self.path / RECORDS, _check_cell_record):
            latest[record["cell_id"]] = record
        return list(latest.values())

    def save_model(self, cell_id: str, state: bytes) -> None:
        """A cell's serialised state dict, atomically (a record on disk implies its model)."""
        with self.writing():
            write_atomic(self.models / f"{cell_id}.pt", state)

    def drop_checkpoint(self, cell_id: str) -> None:
        """Remove a cell's checkpoint, and any temporary file a killed save left of it (once
        its record is written: they are of no further use)."""
        with self.writing():
            (self.checkpoints / f"{cell_id}.pt").unlink(missing_ok=True)
            for leftover in self.checkpoints.glob(f".{cell_id}.pt.*.tmp"):
                leftover.unlink(missing_ok=True)

    def tidy_checkpoints(self) -> None:
        """Remove the checkpoint folder if nothing is left in it (call when no cell trains)."""
        with self.writing(), contextlib.suppress(OSError):
            self.checkpoints.rmdir()

    # --- measurement tables --------------------------------------------------------------------

    def append_rows(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        """Append measurement rows to ``<table>.jsonl`` durably and rewrite ``<table>.csv``."""
        with self.writing():
            _append_lines(self.path / f"{table}.jsonl", [dumps(row) for row in rows])
            write_atomic(self.path / f"{table}.csv",
                         pd.DataFrame(self.rows(table)).to_csv(index=False))

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``<table>.jsonl``."""
        return _read_jsonl(self.path / f"{table}.jsonl")

    def write_table(self, records: Iterable[dict[str, Any]]) -> pd.DataFrame:
        with self.writing():
            frame = records_frame(records)
            write_atomic(self.path / TABLE, frame.to_csv(index=False))
            return frame


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell; nested fields (hyperparameters, train config) as JSON text, no history."""
    rows = []
    for record in records:
        row = {key: value for key, value in record.items() if key != "history"}
        for key in ("flow_hparams", "base_hparams", "train", "test_nll_top"):
            if key in row:
                row[key] = json.dumps(row[key], sort_keys=True)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["dataset", "flow", "base", "seed"], kind="stable")
    return frame.reset_index(drop=True)
