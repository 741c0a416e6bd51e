"""HEPMASS: signal events of the UCI "1000" HEPMASS files, 21-D.

``hepmass/1000_train.csv`` and ``hepmass/1000_test.csv`` (the first 10% of UCI's files) have a
header line; the first column is the class label. Read as below, the test file gives one column
more than the train file, at its end ("the data set is messed up", says the MAF code, which drops
it; the archive's header lines could not be inspected when this was written, so flowbench checks
that the two files' remaining column names agree instead of assuming a layout). The MAF code
(``datasets/hepmass.py``):

1. read both with ``pandas.read_csv(path, index_col=False)`` (rows with more fields than the
   header names lose the extra ones at their end; pandas' warning is kept in
   ``info["csv_warnings"]``);
2. keep the rows whose label is 1 (signal) and drop the label column; drop the test file's last
   column; the two files then have the same columns (flowbench checks the names agree);
3. standardise both with the train rows' mean and (pandas, ``ddof=1``) standard deviation;
4. drop every feature whose smallest standardised train value occurs more than 5 times
   (``Counter`` over the column, the count of its first key in sorted order): the discrete ones;
5. validation = the last ``int(0.1 N)`` train rows, train = the rest; test = the test file.

A train feature that is constant gets standard deviation 0 in step 3. In the MAF code it then
either has a tiny non-zero deviation from rounding in the mean (every standardised value equal:
removed in step 4) or is 0/0 = NaN everywhere (each NaN counted apart: kept, and every later
number NaN). flowbench removes it in both cases, the only outcome with finite data, and records
it in ``info["constant_features"]``.

Splits 315 123 / 35 013 / 174 987.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..files import DataFileError
from .published import published
from .readers import check_complete, read_csv
from .record import MAF_PAPER, Prepared, UciRecord

RECORD = UciRecord(
    name="hepmass",
    dim=21,
    description="HEPMASS: particle-physics signal events (UCI, mass 1000), 21-D, the MAF "
                "paper's preprocessing and splits (315123/35013/174987) from the archive's "
                "hepmass/1000_train.csv and 1000_test.csv",
    reference=MAF_PAPER,
    published=published("hepmass"),
    n_train=315_123, n_val=35_013, n_test=174_987,
    files=("hepmass/1000_train.csv", "hepmass/1000_test.csv"),
    source="UCI HEPMASS (the '1000' files, first 10%)",
    preprocessing="label-1 rows only, label column dropped, the test file's extra last column "
                  "dropped; standardised with the train rows' mean and std (ddof=1); features "
                  "whose smallest value occurs more than 5 times in train dropped; validation = "
                  "last 10% of train",
)

MAX_REPEATS = 5


def _signal(path: Path, frame):
    """The label-1 rows without the label column (step 2)."""
    label = frame.columns[0]
    check_complete(path, frame, [label])
    labels = frame[label].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(labels, (0, 1)))[0])
        raise DataFileError(f"{path}: line {row + 2}: the label (first column) is "
                            f"{labels[row].item()!r}, not 0 or 1")
    frame = frame[frame[label] == 1]
    return frame.drop(label, axis=1)


def discrete_features(train: np.ndarray) -> list[int]:
    """Step 4: the columns whose smallest value occurs more than MAX_REPEATS times."""
    return [j for j in range(train.shape[1])
            if np.count_nonzero(train[:, j] == train[:, j].min()) > MAX_REPEATS]


def prepare(paths: Mapping[str, Path]) -> Prepared:
    train_path, test_path = paths["1000_train.csv"], paths["1000_test.csv"]
    train, train_notes = read_csv(train_path)
    test, test_notes = read_csv(test_path)
    train, test = _signal(train_path, train), _signal(test_path, test)
    extra = test.columns[-1]
    test = test.drop(extra, axis=1)
    if list(test.columns) != list(train.columns):
        raise DataFileError(
            f"{test_path}: without its label and last column it has the columns "
            f"{list(test.columns)}, but {train_path} has {list(train.columns)}")
    check_complete(train_path, train)
    check_complete(test_path, test)
    for path, frame in ((train_path, train), (test_path, test)):
        if len(frame) == 0:
            raise DataFileError(f"{path}: no rows with label 1")
    mean, std = train.mean(), train.std()
    constant = [j for j, value in enumerate(std.to_numpy()) if not value > 0]
    varying = [j for j in range(train.shape[1]) if j not in constant]
    train_values = ((train - mean) / std).to_numpy(dtype=np.float64)
    test_values = ((test - mean) / std).to_numpy(dtype=np.float64)
    discrete = [varying[j] for j in discrete_features(train_values[:, varying])]
    removed = sorted(constant + discrete)
    keep = [j for j in range(train.shape[1]) if j not in removed]
    train_values, test_values = train_values[:, keep], test_values[:, keep]
    n_val = int(0.1 * train_values.shape[0])
    if n_val == 0:
        raise DataFileError(f"{train_path}: {train_values.shape[0]} label-1 rows are too few "
                            "for the 10% validation split")
    names = [str(label) for label in train.columns]
    return Prepared(train_values[:-n_val], train_values[-n_val:], test_values, {
        "n_signal_rows": {"train_file": int(len(train)), "test_file": int(len(test))},
        "test_file_last_column_dropped": str(extra),
        "csv_warnings": {name: notes for name, notes in (("1000_train.csv", train_notes),
                                                          ("1000_test.csv", test_notes)) if notes},
        "constant_features": [names[j] for j in constant],
        "discrete_features": [names[j] for j in discrete],
        "columns": [names[j] for j in keep],
        "standardisation": {"mean": mean.tolist(), "std": std.tolist(),
                            "from": "train file's label-1 rows, ddof=1"},
    })
