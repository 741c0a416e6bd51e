"""Every file a report writes appears whole or not at all.

Text (``report.md``, ``report.html``, ``tables/*.csv``) goes through
:func:`flowbench.store.write_atomic`; binary output (figures) through :func:`write_bytes_atomic`.
Both write a hidden temporary file (``.<name>.<random>``) in the target's folder and rename it
onto the final name, so a process killed at any moment leaves either the previous file or the
new one under that name, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ..store import write_atomic

__all__ = ["write_atomic", "write_bytes_atomic"]


def write_bytes_atomic(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a hidden temporary file beside ``path``, then rename it onto
    ``path``. The temporary file is removed if ``write`` raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # as store.write_atomic: mkstemp's 0600 would hide the file
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
