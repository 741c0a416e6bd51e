"""A run folder on disk: resolved config, metadata, an append-only record of finished cells.

Layout of ``results/<suite>-<timestamp>/`` (or ``--out DIR``)::

    config.json     the resolved run configuration (what the command asked for, fully spelled out)
    metadata.json   machine and package versions, one entry per session that worked on the run
    cells.jsonl     one JSON line per finished cell, appended and fsync'ed as each cell ends
    results.csv     one row per finished cell (rewritten atomically after each cell)
    models/         the trained state dict of each ok cell, ``<cell_id>.pt``
    references.*    baseline NLLs per dataset (``.jsonl`` appended, ``.csv`` rewritten)
    logdet_cost.*   log-det cost per flow/base and dimension; linear_cost.*: LU vs plain 1x1 conv
    report.md, report.html, figures/, tables/   written by ``flowbench report``

Killing the process loses nothing that finished: every record is on disk before the next cell
is reported, a torn last line (crash mid-write) is ignored on reading, and the table is always
rebuilt from ``cells.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

CONFIG, METADATA, RECORDS, TABLE, MODELS = (
    "config.json", "metadata.json", "cells.jsonl", "results.csv", "models",
)
FINISHED = ("ok", "diverged", "failed", "timeout")


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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see either the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def models(self) -> Path:
        return self.path / MODELS

    def exists(self) -> bool:
        return (self.path / CONFIG).is_file()

    def read_config(self) -> dict[str, Any]:
        return json.loads((self.path / CONFIG).read_text(encoding="utf-8"))

    def write_config(self, config: dict[str, Any]) -> None:
        write_atomic(self.path / CONFIG,
                     json.dumps(jsonable(config), indent=2, default=_json_default))

    def add_session_metadata(self, metadata: dict[str, Any]) -> None:
        path = self.path / METADATA
        sessions = json.loads(path.read_text(encoding="utf-8"))["sessions"] if path.is_file() else []
        sessions.append(metadata)
        write_atomic(path, json.dumps({"sessions": sessions}, indent=2, default=_json_default))

    def update_session_metadata(self, extra: dict[str, Any]) -> None:
        """Merge ``extra`` into this session's (the last) metadata entry."""
        sessions = self.read_metadata()
        if not sessions:
            sessions = [{}]
        sessions[-1].update(extra)
        write_atomic(self.path / METADATA,
                     json.dumps({"sessions": sessions}, indent=2, default=_json_default))

    def read_metadata(self) -> list[dict[str, Any]]:
        path = self.path / METADATA
        return json.loads(path.read_text(encoding="utf-8"))["sessions"] if path.is_file() else []

    def append(self, record: dict[str, Any]) -> None:
        """Append one finished cell durably (flush + fsync before returning)."""
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(jsonable(record), default=_json_default, allow_nan=False)
        with open(self.path / RECORDS, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, the latest per cell id; a torn line is skipped with a warning."""
        path = self.path / RECORDS
        if not path.is_file():
            return []
        latest: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: unreadable record skipped (interrupted write?)")
                continue
            latest[record["cell_id"]] = record
        return list(latest.values())

    def append_rows(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        """Append measurement rows to ``<table>.jsonl`` durably and rewrite ``<table>.csv``."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / f"{table}.jsonl", "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(jsonable(row), default=_json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        write_atomic(self.path / f"{table}.csv", pd.DataFrame(self.rows(table)).to_csv(index=False))

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every readable row of ``<table>.jsonl`` (a torn last line is skipped)."""
        path = self.path / f"{table}.jsonl"
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{path}: unreadable row skipped (interrupted write?)")
        return rows

    def write_table(self, records: Iterable[dict[str, Any]]) -> pd.DataFrame:
        frame = records_frame(records)
        write_atomic(self.path / TABLE, frame.to_csv(index=False))
        return frame


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell; nested fields (hyperparameters, train config) as JSON text, no history."""
    rows = []
    for record in records:
        row = {key: value for key, value in record.items() if key != "history"}
        for key in ("flow_hparams", "base_hparams", "train"):
            if key in row:
                row[key] = json.dumps(row[key], sort_keys=True)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["dataset", "flow", "base", "seed"], kind="stable")
    return frame.reset_index(drop=True)
