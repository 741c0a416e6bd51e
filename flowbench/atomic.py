"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def write_atomic(path: Path, data: str | bytes | Callable[[BinaryIO], Any],
                 parents: bool = True) -> Path:
    """Write ``data`` to ``path`` so readers see either the old or the new file, never half: a
    hidden temporary file in the same folder (``.<name>.<random>.tmp``), fsync'ed, then renamed
    over ``path``. ``data`` is text, bytes, or a function that writes to a binary handle (e.g. a
    figure's ``savefig``); the temporary file is removed if writing fails. With
    ``parents=False`` only the file's own folder may be created, not the folders above it."""
    path = Path(path)
    path.parent.mkdir(parents=parents, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["write_atomic"]
