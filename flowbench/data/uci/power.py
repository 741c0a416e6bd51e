"""POWER: individual household electric power consumption (UCI), 6-D.

``power/data.npy`` holds 2 049 280 rows of 8 columns. The MAF code (``datasets/power.py``):

1. ``rng = numpy.random.RandomState(42)``; ``rng.shuffle(data)`` (rows, in place);
2. delete column 3, then column 1 (of what is left), leaving 6 columns;
3. add uniform noise drawn from the same ``rng``, in this order: ``0.01 * rng.rand(N, 1)``
   (voltage), ``0.001 * rng.rand(N, 1)`` (global active power, "gap"), ``rng.rand(N, 3)`` (the
   three sub-meterings), and zeros (time), stacked as (gap, voltage, sub-meterings, time);
4. test = the last ``int(0.1 N)`` rows, validation = the last ``int(0.1 N')`` of the ``N'`` rows
   before them, train = the rest;
5. standardise every split with the mean and (numpy, ``ddof=0``) standard deviation of train
   and validation together.

Splits 1 659 917 / 184 435 / 204 928.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..files import DataFileError
from .published import published
from .readers import read_npy, standardise_on_train_val, tail_split
from .record import MAF_PAPER, Prepared, UciRecord

RECORD = UciRecord(
    name="power",
    dim=6,
    description="POWER: household electric power consumption (UCI), 6-D, the MAF paper's "
                "preprocessing and splits (1659917/184435/204928) from the archive's "
                "power/data.npy",
    reference=MAF_PAPER,
    published=published("power"),
    n_train=1_659_917, n_val=184_435, n_test=204_928,
    files=("power/data.npy",),
    source="UCI Individual household electric power consumption",
    preprocessing="rows shuffled with RandomState(42); columns 3 and 1 deleted; uniform noise "
                  "from the same generator (voltage 0.01, active power 0.001, sub-meterings 1, "
                  "time 0); test = last 10%, validation = last 10% of the rest; standardised "
                  "with train+validation mean and std (ddof=0)",
)

N_COLUMNS = 8


def prepare(paths: Mapping[str, Path]) -> Prepared:
    path = paths["data.npy"]
    data = read_npy(path)
    if data.shape[1] != N_COLUMNS:
        raise DataFileError(f"{path}: POWER's data.npy has {N_COLUMNS} columns, this one "
                            f"{data.shape[1]} ({data.shape})")
    rng = np.random.RandomState(42)
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sm_noise = rng.rand(n, 3)
    time_noise = np.zeros((n, 1))
    data = data + np.hstack((gap_noise, voltage_noise, sm_noise, time_noise))
    train, val, test = tail_split(data, path)
    splits, standardisation = standardise_on_train_val(train, val, test)
    return Prepared(*splits, {
        "n_rows": n,
        "columns_deleted": [3, 1],
        "noise_seed": 42,
        "standardisation": standardisation,
    })
