"""The three file formats of the MAF archive besides GAS's pickle (``frame_pickle``): ``.npy``,
CSV and HDF5, each read with checks that turn a truncated or corrupted file into a
:class:`~flowbench.data.files.DataFileError` naming the file and what is wrong, and the splits
the MAF code cuts by position."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..files import DataFileError, MissingReader

#: what to install for the HDF5 reader (h5py is an optional dependency)
TABULAR_EXTRA = "pip install 'flowbench-nf[tabular]'"


def read_npy(path: Path, ndim: int = 2) -> np.ndarray:
    """A ``.npy`` array of numbers with ``ndim`` dimensions, loaded whole. The header is checked
    against the file's size first, so a cut file names both sizes."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
    except (ValueError, EOFError) as error:
        raise DataFileError(f"{path}: not a .npy file ({error})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DataFileError(f"{path}: holds {dtype} values, not numbers")
    if len(shape) != ndim:
        raise DataFileError(f"{path}: holds a {len(shape)}-D array {shape}, expected {ndim}-D")
    expected = offset + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise DataFileError(
            f"{path}: the .npy header says {dtype} {shape}, {expected} bytes in all, but the "
            f"file holds {size} bytes ({'truncated' if size < expected else 'trailing data'})")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise DataFileError(f"{path}: cannot read the .npy array ({error})") from None


def read_csv(path: Path):
    """``(frame, warnings)``: a CSV file with a header line, as the MAF code reads it
    (``pandas.read_csv(path, index_col=False)``), and pandas' parser warnings as text.

    With ``index_col=False``, rows holding more fields than the header names lose the extra ones
    at their end (pandas warns; the MAF code relies on pandas doing so, whatever its files hold),
    so that is a warning here, not an error. Malformed lines, an empty file and values that are
    not numbers raise DataFileError naming the line; a line cut short (missing values) is caught
    by :func:`check_complete`."""
    import pandas as pd

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError) as error:
        raise DataFileError(f"{path}: not a readable CSV file ({str(error).strip()})") from None
    notes = [str(w.message) for w in caught if issubclass(w.category, pd.errors.ParserWarning)]
    if frame.shape[1] == 0:
        raise DataFileError(f"{path}: the CSV file has no columns")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) and len(frame):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            row = int(np.flatnonzero(numbers.isna() & frame[column].notna())[0])
            raise DataFileError(f"{path}: line {row + 2}: column {column!r} holds "
                                f"{frame[column].iloc[row]!r}, not a number")
    return frame, notes


def check_complete(path: Path, frame, columns: Sequence | None = None) -> None:
    """DataFileError naming the first line of ``path`` with a missing value in ``columns`` (all
    by default): a line cut short, as at the end of a truncated file."""
    part = frame if columns is None else frame[list(columns)]
    missing = part.isna().to_numpy().any(axis=1)
    if missing.any():
        row = int(frame.index[np.flatnonzero(missing)[0]])  # read_csv's row number
        raise DataFileError(f"{path}: line {row + 2} has missing values (a line cut short, or a "
                            "truncated file?)")


def import_h5py():
    try:
        import h5py
    except ImportError:
        raise MissingReader(f"reading HDF5 files (BSDS300.hdf5) needs the h5py package: "
                            f"{TABULAR_EXTRA}") from None
    return h5py


def read_hdf5(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named datasets of an HDF5 file, each read whole."""
    h5py = import_h5py()
    try:
        with h5py.File(path, "r") as handle:
            absent = [name for name in names if name not in handle]
            if absent:
                raise DataFileError(f"{path}: no dataset {absent[0]!r} in the HDF5 file (it "
                                    f"holds {sorted(handle)})")
            arrays = {}
            for name in names:
                node = handle[name]
                if not isinstance(node, h5py.Dataset):
                    raise DataFileError(f"{path}: {name!r} is an HDF5 group, not a dataset")
                arrays[name] = node[()]
    except OSError as error:
        raise DataFileError(f"{path}: not a readable HDF5 file ({error})") from None
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise DataFileError(f"{path}: dataset {name!r} holds {array.dtype}, not numbers")
    return arrays


def tail_split(data: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MAF code's split by position: test = the last ``int(0.1 N)`` rows, validation = the
    last ``int(0.1 N')`` of the ``N'`` rows before them, train = the rest."""
    n_test = int(0.1 * data.shape[0])
    rest = data[:-n_test] if n_test else data
    n_val = int(0.1 * rest.shape[0])
    if n_test == 0 or n_val == 0:
        raise DataFileError(f"{path}: {data.shape[0]} rows are too few for the 10% test and "
                            "validation splits")
    return rest[:-n_val], rest[-n_val:], data[-n_test:]


def standardise_on_train_val(train: np.ndarray, val: np.ndarray, test: np.ndarray
                             ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict]:
    """Every split standardised with the mean and (numpy, ``ddof=0``) standard deviation of
    train and validation together, as the MAF code does for POWER and MINIBOONE; the
    statistics come back as the info entry that records them."""
    both = np.vstack((train, val))
    mean, std = both.mean(axis=0), both.std(axis=0)
    splits = ((train - mean) / std, (val - mean) / std, (test - mean) / std)
    return splits, {"mean": mean.tolist(), "std": std.tolist(), "from": "train+val, ddof=0"}
