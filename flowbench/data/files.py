"""Datasets read from files the user already has: where they are looked for, and the errors that
stop a run before training when they are absent or unusable.

Files are never downloaded. They are read from a directory given as ``data_dir`` or, when that is
``None``, named by the environment variable ``FLOWBENCH_DATA_DIR`` (the CLI's ``--data-dir``
sets it, so worker processes inherit it). :func:`find_files` looks for a dataset's files in a
list of sub-folders of that directory and raises :class:`FileNotFoundError` naming the dataset,
every folder searched, the exact file names and how to set the directory.

A file that is present but cannot be used (truncated, corrupted, another format) raises
:class:`DataFileError`; an optional package needed to read it that is not installed raises
:class:`MissingReader`. The runner turns both, like a missing file, into a one-line error and
exit code 2 before anything trains.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

DATA_DIR_ENV = "FLOWBENCH_DATA_DIR"


class DataFileError(ValueError):
    """A dataset file that is present but cannot be used: truncated, corrupted, or not in the
    expected format. The message names the file and what is wrong with it."""


class MissingReader(ImportError):
    """An optional package that reading a dataset's files needs is not installed; the message
    names the package and the ``pip install`` that provides it."""


def data_root(data_dir: str | os.PathLike | None, dataset: str, expected: str, subdir: str,
              hint: str = "") -> Path:
    """``data_dir``, else the directory of ``FLOWBENCH_DATA_DIR``, else FileNotFoundError saying
    where to put ``expected`` (``DIR/<subdir>/``) and how to name the directory."""
    if data_dir is None:
        env = os.environ.get(DATA_DIR_ENV, "")
        if not env:
            raise FileNotFoundError(
                f"dataset {dataset!r}: no data directory given, and flowbench never downloads "
                f"data. Put {expected} in DIR/{subdir}/ and pass --data-dir DIR (data_dir=DIR in "
                f"Python) or set the environment variable {DATA_DIR_ENV}=DIR{hint}"
            )
        data_dir = env
    return Path(data_dir).expanduser()


def find_files(
    dataset: str, data_dir: str | os.PathLike | None, subdirs: Sequence[str],
    names: Sequence[str], allow_gz: bool = False, hint: str = "", list_paths: bool = False,
) -> tuple[Path, dict[str, Path]]:
    """The first of ``<root>/<subdir>`` holding every file of ``names`` (each also as ``.gz``
    when ``allow_gz``), as ``(folder, {name: path})``; FileNotFoundError with everything the user
    needs otherwise. ``hint`` is appended to the message (e.g. where the files come from);
    ``list_paths`` also lists every file path tried."""
    variants = (lambda name: (name, name + ".gz")) if allow_gz else (lambda name: (name,))
    expected = ", ".join(f"{name}[.gz]" if allow_gz else name for name in names)
    root = data_root(data_dir, dataset, expected, subdirs[0], hint)
    searched: list[Path] = []
    tried: list[Path] = []
    for sub in subdirs:
        folder = root / sub if sub else root
        searched.append(folder)
        found: dict[str, Path] = {}
        for name in names:
            for candidate in variants(name):
                tried.append(folder / candidate)
                if (folder / candidate).is_file():
                    found[name] = folder / candidate
                    break
        if len(found) == len(names):
            return folder, found
    where = "; ".join(str(folder) for folder in searched)
    source = ("given as data_dir/--data-dir" if data_dir is not None
              else f"from the environment variable {DATA_DIR_ENV}")
    paths = (f" (paths tried: {', '.join(str(path) for path in tried)})" if list_paths else "")
    raise FileNotFoundError(
        f"dataset {dataset!r}: could not find {expected} in any of: {where}{paths} (data "
        f"directory {str(root)!r}, {source}). flowbench never downloads data: put the files in "
        f"one of those folders, or point --data-dir DIR (data_dir=... in Python) or "
        f"{DATA_DIR_ENV}=DIR at the folder that holds them{hint}"
    )


def file_identity(path: Path) -> tuple[str, int, int]:
    """``(resolved path, size, mtime in ns)``: a cache key that changes when the file does."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


#: the globals a pickle of plain numpy arrays may name (numpy 1 and 2 module paths); safe
#: unpicklers allow these and nothing that could run code
NUMPY_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
})
