"""What a run holds, as the figures need it: datasets, cells and (flow, base) pairs in the order
of the run's config, and :func:`trained` -- the one preamble of every figure that draws trained
models: load the dataset, pick its records, load one trained flow per (flow, base)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch

from ...data.dataset import Dataset
from ..rundata import RunData
from .style import palette

SAMPLE_SEED = 0         # generator seed of every sampled picture


def ordered(values: Sequence[Any], preferred: Sequence[Any]) -> list[Any]:
    """Unique ``values``, in the order of ``preferred`` first, then of appearance."""
    seen = list(dict.fromkeys(values))
    rank = {name: i for i, name in enumerate(preferred)}
    return sorted(seen, key=lambda v: (rank.get(v, len(rank)), seen.index(v)))


def datasets(run: RunData) -> list[str]:
    names = [r["dataset"] for r in run.records if "dataset" in r]
    return ordered(list(run.config.get("datasets", [])) + names, run.config.get("datasets", []))


def flows_bases(run: RunData, records: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    flows = ordered([r["flow"] for r in records], run.config.get("flows", []))
    bases = ordered([r["base"] for r in records], run.config.get("bases", []))
    return flows, bases


def pairs(run: RunData, records: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(flow, base) combinations present in ``records``: flows outer, bases inner, config order."""
    flows, bases = flows_bases(run, records)
    present = {(r["flow"], r["base"]) for r in records}
    return [(f, b) for f in flows for b in bases if (f, b) in present]


def run_palette(run: RunData) -> dict[tuple[str, str], tuple]:
    return palette(*flows_bases(run, [r for r in run.records if "flow" in r and "base" in r]))


def finite(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if math.isfinite(value) else float("nan")


def is_ok(record: dict[str, Any]) -> bool:
    return record.get("status") == "ok" and math.isfinite(finite(record.get("test_nll")))


def records(run: RunData, dataset: str | None = None) -> list[dict[str, Any]]:
    return [r for r in run.records
            if {"dataset", "flow", "base"} <= r.keys()
            and (dataset is None or r["dataset"] == dataset)]


def load_data(run: RunData, name: str) -> Dataset | None:
    try:
        return run.dataset(name)
    except Exception:  # noqa: BLE001 - e.g. the plugin that defined it is not installed
        return None


def is_2d(data: Dataset | None) -> bool:
    return data is not None and data.kind == "vector" and tuple(data.event_shape) == (2,)


def is_image(data: Dataset | None) -> bool:
    return data is not None and len(data.event_shape) == 3 and bool(data.levels)


def extent(data: Dataset) -> tuple[float, float, float, float]:
    given = data.info.get("extent") if isinstance(data.info, dict) else None
    if given is not None and len(given) == 4:
        return tuple(float(v) for v in given)
    points = data.test.double().numpy()
    low, high = np.nanquantile(points, [0.005, 0.995], axis=0)
    margin = 0.1 * (high - low) + 1e-6
    return (low[0] - margin[0], high[0] + margin[0], low[1] - margin[1], high[1] + margin[1])


class Model(NamedTuple):
    """One (flow, base)'s cell and trained flow, or ``None`` for both and why not."""

    record: dict[str, Any] | None
    flow: Any
    why: str


def _load_model(run: RunData, cells: Sequence[dict[str, Any]], seed: int | None) -> Model:
    """The lowest ok seed with a saved model among ``cells`` (one pair's), or exactly ``seed``."""
    cells = sorted(cells, key=lambda r: r.get("seed", 0))
    if seed is not None:
        cells = [r for r in cells if r.get("seed") == seed]
    for record in cells:
        if not is_ok(record):
            continue
        try:
            flow = run.load_flow(record)
        except Exception:  # noqa: BLE001 - an unloadable model is a missing model
            flow = None
        if flow is not None:
            return Model(record, flow, "")
    statuses = sorted({str(r.get("status")) for r in cells})
    if not cells:
        why = f"no seed {seed}" if seed is not None else "no cell"
    elif statuses == ["ok"]:
        why = "no saved model"
    else:
        why = ", ".join(s for s in statuses if s != "ok") or "no saved model"
    return Model(None, None, why)


@dataclass
class Trained:
    """A dataset of a run, its cells, and one trained model (or why not) per (flow, base)."""

    data: Dataset
    records: list[dict[str, Any]]
    models: dict[tuple[str, str], Model]
    flows: list[str]
    bases: list[str]

    def seed_text(self) -> str:
        seeds = sorted({m.record.get("seed") for m in self.models.values() if m.record})
        return f"seed {seeds[0]}" if len(seeds) == 1 else "lowest ok seed per cell"


def trained(run: RunData, dataset: str, accept: Callable[[Dataset | None], bool],
            seed: int | None = None,
            only: Callable[[list[tuple[str, str]]], list[tuple[str, str]]] | None = None
            ) -> Trained | None:
    """Load ``dataset`` and a trained flow per (flow, base) of its cells (the lowest ok seed with
    a saved model, or exactly ``seed``; ``only`` narrows the pairs loaded). ``None`` when
    ``accept(data)`` is false, the dataset has no cells, or no pair has a model."""
    data = load_data(run, dataset)
    cells = records(run, dataset)
    if not accept(data) or not cells:
        return None
    wanted = pairs(run, cells)
    if only is not None:
        wanted = only(wanted)
    models = {pair: _load_model(run, [r for r in cells if (r["flow"], r["base"]) == pair], seed)
              for pair in wanted}
    if not any(m.flow is not None for m in models.values()):
        return None
    flows, bases = flows_bases(run, cells)
    return Trained(data, cells, models, flows, bases)


def generator(seed: int = SAMPLE_SEED) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
