"""What each of the five datasets promises, known without reading its files."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ...specs import PublishedResult

#: where the files come from, for error messages
ARCHIVE = ("the data archive of the MAF paper (Papamakarios, Pavlakou & Murray 2017), "
           "https://zenodo.org/record/1161203 (data.tar.gz, unpacked to data/<dataset>/...)")

#: the MAF paper's citation, shared by every record
MAF_PAPER = ("Papamakarios, Pavlakou & Murray 2017, Masked Autoregressive Flow for Density "
             "Estimation (NeurIPS); data and preprocessing of github.com/gpapamak/maf")


@dataclass(frozen=True)
class UciRecord:
    """One dataset: its dimension after preprocessing, the split sizes the real files give, the
    files it reads (relative to the data directory, as in the MAF archive), the original data
    set it was made from, and published test results."""

    name: str
    dim: int
    description: str
    reference: str
    published: tuple[PublishedResult, ...]
    n_train: int
    n_val: int
    n_test: int
    files: tuple[str, ...]
    source: str
    preprocessing: str

    @property
    def folder(self) -> str:
        """The folder holding the files, e.g. ``power`` (``BSDS300`` for bsds300)."""
        return posixpath.dirname(self.files[0])

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(posixpath.basename(path) for path in self.files)

    @property
    def split(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


class Prepared(NamedTuple):
    """A dataset module's output: float64 (or float32) splits and what the preprocessing did."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    info: dict
