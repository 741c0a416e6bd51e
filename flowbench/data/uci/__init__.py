"""The five tabular benchmarks of the MAF paper, from files you already have: ``power``, ``gas``,
``hepmass``, ``miniboone`` and ``bsds300``.

Each is read from the archive the MAF authors distribute (Papamakarios, Pavlakou & Murray 2017;
https://zenodo.org/record/1161203, ``data.tar.gz``), in its own format, and preprocessed and split
exactly as their code does (github.com/gpapamak/maf, ``datasets/*.py``; each module here states
the steps):

============  ==================================================  ===  =============================
dataset       file(s) under the data directory                    D    train / validation / test
============  ==================================================  ===  =============================
power         ``power/data.npy``                                  6    1 659 917 / 184 435 / 204 928
gas           ``gas/ethylene_CO.pickle``                          8    852 174 / 94 685 / 105 206
hepmass       ``hepmass/1000_train.csv``, ``1000_test.csv``       21   315 123 / 35 013 / 174 987
miniboone     ``miniboone/data.npy``                              43   29 556 / 3 284 / 3 648
bsds300       ``BSDS300/BSDS300.hdf5``                            63   1 000 000 / 50 000 / 250 000
============  ==================================================  ===  =============================

The data directory is ``data_dir`` or, when that is ``None``, ``FLOWBENCH_DATA_DIR`` (the CLI's
``--data-dir``); the files are looked for in ``<dir>/<folder>/`` and ``<dir>/data/<folder>/``
(the archive unpacked in ``<dir>``). Nothing is downloaded. A missing file raises
:class:`FileNotFoundError` naming every path tried; a truncated or corrupted one,
:class:`~flowbench.data.files.DataFileError` naming it and what is wrong; BSDS300 without h5py,
:class:`~flowbench.data.files.MissingReader` (``pip install 'flowbench-nf[tabular]'``).

The splits are fixed by the paper: :func:`load_uci`'s ``seed`` does not change them (it is
recorded in ``info``). The splits are float32 tensors, as in the MAF code, which casts its
float64 preprocessing to float32 at the end. The preprocessed splits are kept per process (keyed
by each file's path, size and modification time), so the cells of one worker read a file once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from types import ModuleType

import numpy as np
import torch

from ..dataset import Dataset
from ..files import DataFileError, MissingReader, file_identity, find_files
from . import bsds300, gas, hepmass, miniboone, power
from .record import ARCHIVE, UciRecord

__all__ = ["UCI", "UciRecord", "DataFileError", "MissingReader", "clear_cache", "load_uci"]

_MODULES: dict[str, ModuleType] = {
    module.RECORD.name: module for module in (power, gas, hepmass, miniboone, bsds300)
}

#: every dataset's record, by name
UCI: dict[str, UciRecord] = {name: module.RECORD for name, module in _MODULES.items()}

SPLIT_METHOD = ("fixed by the MAF paper's code (by position: test = the last 10% of rows, "
                "validation = the last 10% of the rest, or of the train file for hepmass; "
                "bsds300's are the file's own; power's rows are first shuffled with "
                "RandomState(42)); the seed does not change them")

#: how many preprocessed datasets a process keeps (one per dataset)
CACHE_SIZE = len(UCI)
_CACHE: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]] = OrderedDict()


def clear_cache() -> None:
    """Forget the preprocessed splits kept by this process."""
    _CACHE.clear()


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _prepare(record: UciRecord, paths: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                      dict]:
    train, val, test, info = _MODULES[record.name].prepare(paths)
    where = ", ".join(str(path) for path in paths.values())
    for split, array in (("train", train), ("val", val), ("test", test)):
        if array.ndim != 2 or array.shape[1] != record.dim:
            raise DataFileError(
                f"{where}: {record.name}'s preprocessing leaves {split} examples of shape "
                f"{array.shape[1:]}, but the MAF archive's files give ({record.dim},); is this "
                f"the distributed file?")
        finite = np.isfinite(array).all(axis=1)
        if not finite.all():
            raise DataFileError(f"{where}: {record.name}'s {split} split has non-finite values "
                                f"(row {int(np.flatnonzero(~finite)[0])})")
    return _tensor(train), _tensor(val), _tensor(test), info


def load_uci(name: str, seed: int = 0, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The dataset ``name`` (a key of :data:`UCI`) from the MAF archive's files under
    ``data_dir`` (default: ``FLOWBENCH_DATA_DIR``), preprocessed and split as in the MAF paper.

    ``seed`` is accepted like every dataset loader's but changes nothing: the splits are fixed.
    ``info`` records the files read, the split sizes (and those the real files give), and what
    the preprocessing removed or computed.
    """
    try:
        record = UCI[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown UCI dataset {name!r}; valid choices: {', '.join(UCI)}"
                         ) from None
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    subdirs = (record.folder, f"data/{record.folder}")
    folder, paths = find_files(name, data_dir, subdirs, record.file_names, list_paths=True,
                               hint=f". The files come from {ARCHIVE}")
    key = (name, tuple(file_identity(path) for path in paths.values()))
    if key in _CACHE:
        _CACHE.move_to_end(key)
    else:
        _CACHE[key] = _prepare(record, paths)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    train, val, test, info = _CACHE[key]
    sizes = {"train": len(train), "val": len(val), "test": len(test)}
    return Dataset(
        name=name,
        train=train,
        val=val,
        test=test,
        event_shape=(record.dim,),
        kind="vector",
        description=record.description,
        info={
            "seed": int(seed),
            "folder": str(folder),
            "files": {file: str(path) for file, path in paths.items()},
            "split": sizes,
            "split_of_the_real_files": record.split,
            "split_method": SPLIT_METHOD,
            "source": record.source,
            "reference": record.reference,
            "preprocessing": record.preprocessing,
            **info,
        },
    )
