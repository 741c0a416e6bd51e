"""MINIBOONE: MiniBooNE particle identification (UCI), 43-D.

``miniboone/data.npy`` is already reduced: the MAF authors removed outliers (first feature
below -100) and features whose smallest value occurs more than 5 times *before* saving it; their
loader (``datasets/miniboone.py``) keeps that step only as a comment and, at load time, does:

1. test = the last ``int(0.1 N)`` rows, validation = the last ``int(0.1 N')`` of the ``N'`` rows
   before them, train = the rest (no shuffle);
2. standardise every split with the mean and (numpy, ``ddof=0``) standard deviation of train and
   validation together.

Splits 29 556 / 3 284 / 3 648.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping


from .published import published
from .readers import read_npy, standardise_on_train_val, tail_split
from .record import MAF_PAPER, Prepared, UciRecord

RECORD = UciRecord(
    name="miniboone",
    dim=43,
    description="MINIBOONE: MiniBooNE particle identification (UCI), 43-D, the MAF paper's "
                "preprocessing and splits (29556/3284/3648) from the archive's "
                "miniboone/data.npy",
    reference=MAF_PAPER,
    published=published("miniboone"),
    n_train=29_556, n_val=3_284, n_test=3_648,
    files=("miniboone/data.npy",),
    source="UCI MiniBooNE particle identification",
    preprocessing="data.npy as distributed (outliers and discrete features already removed); "
                  "test = last 10%, validation = last 10% of the rest; standardised with "
                  "train+validation mean and std (ddof=0)",
)


def prepare(paths: Mapping[str, Path]) -> Prepared:
    path = paths["data.npy"]
    data = read_npy(path)
    train, val, test = tail_split(data, path)
    splits, standardisation = standardise_on_train_val(train, val, test)
    return Prepared(*splits, {
        "n_rows": int(data.shape[0]),
        "standardisation": standardisation,
    })
