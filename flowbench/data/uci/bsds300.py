"""BSDS300: 8x8 patches of the Berkeley segmentation images, 63-D.

``BSDS300/BSDS300.hdf5`` holds the datasets ``train``, ``validation`` and ``test``, already
preprocessed by the MAF authors (monochrome patches, each with its mean subtracted and its
bottom-right pixel dropped, so 63 values: the MAF code's display restores that pixel as minus
the sum of the others); their loader (``datasets/bsds300.py``) reads the three as they are. The
HDF5 reader, h5py, is the optional extra ``flowbench-nf[tabular]``.

Splits 1 000 000 / 50 000 / 250 000.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..files import DataFileError
from .published import published
from .readers import read_hdf5
from .record import MAF_PAPER, Prepared, UciRecord

RECORD = UciRecord(
    name="bsds300",
    dim=63,
    description="BSDS300: 8x8 natural image patches (63 values, one pixel dropped), the MAF "
                "paper's splits (1000000/50000/250000) from the archive's BSDS300/BSDS300.hdf5",
    reference=MAF_PAPER,
    published=published("bsds300"),
    n_train=1_000_000, n_val=50_000, n_test=250_000,
    files=("BSDS300/BSDS300.hdf5",),
    source="Berkeley Segmentation Dataset BSDS300 (Martin et al. 2001)",
    preprocessing="none: the HDF5 datasets train/validation/test as distributed",
)

NAMES = ("train", "validation", "test")


def prepare(paths: Mapping[str, Path]) -> Prepared:
    path = paths["BSDS300.hdf5"]
    arrays = read_hdf5(path, NAMES)
    for name, array in arrays.items():
        if array.ndim != 2:
            raise DataFileError(f"{path}: dataset {name!r} has shape {array.shape}, not "
                                "(rows, values)")
    return Prepared(arrays["train"], arrays["validation"], arrays["test"], {
        "stored_dtype": {name: str(array.dtype) for name, array in arrays.items()},
    })
