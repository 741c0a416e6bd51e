"""GAS: gas sensor array under dynamic gas mixtures (UCI, ethylene and CO), 8-D.

``gas/ethylene_CO.pickle`` is a pickled pandas DataFrame (a random quarter of the UCI file's rows,
in random order) with the columns ``Time``, ``Meth``, ``Eth`` and the 16 sensor readings. It is
read by :mod:`.frame_pickle` (pandas >= 2.0 cannot unpickle a DataFrame of that era). The MAF
code (``datasets/gas.py``):

1. drop the columns ``Meth``, ``Eth`` and ``Time``;
2. while some column has more than one entry above 0.98 in its row of the Pearson correlation
   matrix (``DataFrame.corr() > 0.98``: the diagonal counts, and the correlation is *not* taken
   in absolute value), drop the first such column and recompute;
3. standardise with the mean and (pandas, ``ddof=1``) standard deviation of all rows;
4. test = the last ``int(0.1 N)`` rows, validation = the last ``int(0.1 N')`` of the ``N'`` rows
   before them, train = the rest (no shuffle).

Splits 852 174 / 94 685 / 105 206.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..files import DataFileError
from .frame_pickle import read_frame_pickle
from .published import published
from .readers import tail_split
from .record import MAF_PAPER, Prepared, UciRecord

RECORD = UciRecord(
    name="gas",
    dim=8,
    description="GAS: gas sensor array, ethylene and CO (UCI), 8-D, the MAF paper's "
                "preprocessing and splits (852174/94685/105206) from the archive's "
                "gas/ethylene_CO.pickle",
    reference=MAF_PAPER,
    published=published("gas"),
    n_train=852_174, n_val=94_685, n_test=105_206,
    files=("gas/ethylene_CO.pickle",),
    source="UCI Gas sensor array under dynamic gas mixtures (ethylene_CO)",
    preprocessing="columns Meth, Eth, Time dropped; then repeatedly the first column with more "
                  "than one correlation > 0.98 (diagonal included, not absolute) dropped; "
                  "standardised with all rows' mean and std (ddof=1); test = last 10%, "
                  "validation = last 10% of the rest",
)

DROPPED = ("Meth", "Eth", "Time")
THRESHOLD = 0.98


def drop_correlated(frame):
    """Step 2: ``(frame without the columns, the columns dropped in order)``."""
    removed = []
    while True:
        counts = (frame.corr() > THRESHOLD).to_numpy().sum(axis=1)
        over = np.flatnonzero(counts > 1)
        if over.size == 0:
            return frame, removed
        label = frame.columns[over[0]]
        removed.append(label)
        frame = frame.drop(label, axis=1)


def prepare(paths: Mapping[str, Path]) -> Prepared:
    import pandas as pd

    path = paths["ethylene_CO.pickle"]
    columns, values = read_frame_pickle(path)
    frame = pd.DataFrame(values, columns=pd.Index(columns, dtype=object))
    absent = [name for name in DROPPED if name not in frame.columns]
    if absent:
        raise DataFileError(f"{path}: no column {absent[0]!r} in the DataFrame (columns: "
                            f"{list(frame.columns)})")
    frame = frame.drop(list(DROPPED), axis=1)
    missing = frame.columns[frame.isna().any().to_numpy()]
    if len(missing):
        raise DataFileError(f"{path}: column {missing[0]!r} has missing values (NaN)")
    frame, removed = drop_correlated(frame)
    mean, std = frame.mean(), frame.std()
    constant = [label for label, value in std.items() if not value > 0]
    if constant:
        raise DataFileError(f"{path}: column {constant[0]!r} is constant, which the MAF "
                            "standardisation turns into NaN")
    data = ((frame - mean) / std).to_numpy(dtype=np.float64)
    train, val, test = tail_split(data, path)
    return Prepared(train, val, test, {
        "n_rows": int(data.shape[0]),
        "columns_dropped": list(DROPPED),
        "columns_removed_for_correlation": [str(label) for label in removed],
        "columns": [str(label) for label in frame.columns],
        "standardisation": {"mean": mean.tolist(), "std": std.tolist(),
                            "from": "all rows, ddof=1"},
    })
