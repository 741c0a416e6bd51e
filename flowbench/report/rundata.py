"""Read a run folder back: records, resolved config, metadata, measurements, trained models."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..api import build_cell_flow, load_dataset
from ..data.dataset import Dataset
from ..flow import Flow
from ..registry import Registry, load_registry
from ..store import RunStore, records_frame

#: measurement tables a run folder may hold, by attribute name
TABLES = {"references": "references.csv", "logdet_cost": "logdet_cost.csv",
          "linear_cost": "linear_cost.csv"}
NUMERIC = ("train_nll", "val_nll", "test_nll", "oracle_test_nll", "entropy", "gap", "n_params",
           "train_seconds", "train_examples_per_second", "log_prob_examples_per_second",
           "sample_examples_per_second", "wall_seconds", "best_val_nll", "steps_done")


@dataclass
class RunData:
    """Everything a report needs from one run folder."""

    path: Path
    config: dict[str, Any]
    metadata: list[dict[str, Any]]
    records: list[dict[str, Any]]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: papers' numbers on the run's datasets (``published.json``): shown, never measured
    published: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> "RunData":
        store = RunStore(path)
        if not store.exists():
            raise FileNotFoundError(f"{path} is not a flowbench run folder (no config.json)")
        tables = {}
        for name, filename in TABLES.items():
            file = store.path / filename
            tables[name] = pd.read_csv(file) if file.is_file() else pd.DataFrame()
        wanted = set(store.read_config().get("cells", []))
        records = [r for r in store.records() if not wanted or r["cell_id"] in wanted]
        return cls(store.path, store.read_config(), store.read_metadata(), records, tables,
                   store.read_published())

    @property
    def name(self) -> str:
        return self.path.name

    def frame(self) -> pd.DataFrame:
        """One row per cell (no learning curves), numeric columns as floats (null -> NaN)."""
        frame = records_frame(self.records)
        for column in NUMERIC:
            if column in frame:
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
        return frame

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    @functools.cached_property
    def registry(self) -> Registry:
        return load_registry(self.config.get("plugins", ()), warn=False)

    @functools.cached_property
    def _datasets(self) -> dict[str, Dataset]:
        """The datasets :meth:`dataset` has loaded, by name (this run's own cache)."""
        return {}

    def dataset(self, name: str) -> Dataset:
        """The dataset ``name`` as this run loaded it, each loaded once per ``RunData``."""
        if name not in self._datasets:
            self._datasets[name] = load_dataset(name, int(self.config.get("data_seed", 0)),
                                                registry=self.registry)
        return self._datasets[name]

    def model_path(self, record: dict[str, Any]) -> Path:
        return self.path / "models" / f"{record['cell_id']}.pt"

    def load_flow(self, record: dict[str, Any]) -> Flow | None:
        """The trained flow of an ok cell (eval mode), or ``None`` when its model is missing."""
        path = self.model_path(record)
        if record.get("status") != "ok" or not path.is_file():
            return None
        flow = build_cell_flow(record, self.dataset(record["dataset"]), self.registry)
        flow.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return flow.eval()

    def __hash__(self) -> int:  # by identity: the fields hold lists and dicts
        return id(self)
