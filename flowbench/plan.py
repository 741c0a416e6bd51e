"""A run's plan: a suite resolved against the registry and the user's overrides into cells.

A *cell* is one (dataset, flow, base, seed, hyperparameters, training config). Its id is a hash of
exactly those, so a re-run of the same command recognises what is already done and skips it. A
plan checks every name and setting before anything trains.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from .device import check_precision, resolve_device
from .registry import Registry
from .specs import MEASURE_DEFAULTS, TrainConfig


class PlanError(ValueError):
    """A run that cannot start (bad names, incompatible data kinds, bad settings)."""


@dataclass(frozen=True)
class Cell:
    """One training + evaluation job."""

    suite: str
    dataset: str
    flow: str
    base: str
    seed: int
    data_seed: int
    flow_hparams: Mapping[str, Any]
    base_hparams: Mapping[str, Any]
    train: Mapping[str, Any]
    preprocessing: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cell_id(self) -> str:
        # an empty preprocessing (the default) is left out, so ids of earlier runs still match
        identity = {k: v for k, v in asdict(self).items()
                    if k != "suite" and not (k == "preprocessing" and not v)}
        digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.dataset}-{self.flow}-{self.base}-s{self.seed}-{digest}"

    def label(self) -> str:
        return f"{self.dataset} {self.flow}/{self.base} seed {self.seed}"


@dataclass(frozen=True)
class RunPlan:
    """A suite resolved against the registry and the command-line overrides."""

    suite: str
    datasets: tuple[str, ...]
    flows: tuple[str, ...]
    bases: tuple[str, ...]
    seeds: tuple[int, ...]
    data_seed: int
    train: Mapping[str, Any]
    flow_hparams: Mapping[str, Mapping[str, Any]]
    base_hparams: Mapping[str, Mapping[str, Any]]
    plugins: tuple[str, ...] = ()
    measure: Mapping[str, Any] = field(default_factory=dict)
    dataset_kinds: Mapping[str, str] = field(default_factory=dict)
    #: for ``run --tuned``: the storage and the summary of each study whose settings were used
    tuning: Mapping[str, Any] = field(default_factory=dict)
    cells: tuple[Cell, ...] = field(default=(), compare=False)

    def config(self) -> dict[str, Any]:
        """The resolved configuration as plain JSON data (``config.json``)."""
        data = asdict(self)
        data.pop("cells")
        data["cells"] = [cell.cell_id for cell in self.cells]
        return data

    def config_hash(self) -> str:
        """Identifies the run: what is trained. Measurement settings are left out, so skipping
        them once (``--no-measure``) and adding them later continues the same run."""
        identity = {k: v for k, v in self.config().items()
                    if k not in ("plugins", "measure", "dataset_kinds", "tuning")}
        return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _pick(registry: Registry, kind: str, names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        registry.get(kind, name)  # raises UnknownNameError with choices and closest match
    if len(set(names)) != len(names):
        raise PlanError(f"{kind} names are repeated: {list(names)}")
    return tuple(names)


def _train_settings(train: Mapping[str, Any], label: str, steps: int | None,
                    compile: bool) -> dict[str, Any]:
    """A suite's (or one of its flows') training settings with the command-line overrides."""
    train = dict(train)
    if steps is not None:
        train["steps"] = int(steps)
    if compile:
        train["compile"] = True
    try:
        return TrainConfig(**train).as_dict()
    except (TypeError, ValueError) as error:
        raise PlanError(f"training settings of suite {label!r}: {error}") from None


def _paired(spec: Any, flow: str, bases: Sequence[str]) -> tuple[str, ...]:
    """The bases ``flow`` is paired with: the suite's ``flow_bases`` among ``bases``; where none
    of them is among ``bases`` (the user chose others), every one of ``bases``."""
    allowed = spec.flow_bases.get(flow)
    if allowed is None:
        return tuple(bases)
    return tuple(b for b in bases if b in allowed) or tuple(bases)


def plan_run(
    registry: Registry,
    suite: str,
    datasets: Sequence[str] | None = None,
    flows: Sequence[str] | None = None,
    bases: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    steps: int | None = None,
    measure: bool = True,
    tuned: Mapping[tuple[str, str, str], Mapping[str, Any]] | None = None,
    compile: bool = False,
    device: str | None = None,
    precision: str | None = None,
    device_here: bool = True,
) -> RunPlan:
    """Resolve ``suite`` and the overrides; every name is checked before anything trains.

    ``tuned`` maps (dataset, flow, base) to a study's best settings (``flow_hparams``,
    ``base_hparams``, ``train``), which then replace the suite's for those cells. ``compile``
    trains every cell through ``torch.compile`` (a separate run: the cells' ids change).
    ``device`` (default: the suite's, usually ``auto``) is resolved here, once, so every cell
    names the device it trains on; with ``precision`` it enters the cells' settings (and ids)
    when not ``cpu`` / ``fp32``. A device or precision this machine lacks is a ``DeviceError``
    (``device_here=False``, for cells run elsewhere: only malformed names are).
    """
    spec = registry.spec("suite", suite)
    datasets = _pick(registry, "dataset", list(datasets or spec.datasets))
    flows = _pick(registry, "flow", list(flows or spec.flows))
    bases = _pick(registry, "base", list(bases or spec.bases))
    seeds = tuple(int(s) for s in (seeds if seeds is not None else spec.seeds))
    if not seeds:
        raise PlanError("at least one seed is needed")
    device_name = resolve_device(device or spec.device, here=device_here)

    def settings_of(train: Mapping[str, Any], label: str) -> dict[str, Any]:
        chosen = precision or train.get("precision", "fp32")
        return _train_settings({**train, "device": device_name,
                                "precision": check_precision(chosen, device_name,
                                                             here=device_here)},
                               label, steps, compile)

    train = settings_of(spec.train, suite)
    flow_train = {f: settings_of({**spec.train, **spec.flow_train[f]}, f"{suite}/{f}")
                  for f in flows if f in spec.flow_train}
    for flow in flows:
        kinds = registry.spec("flow", flow).data_kinds
        for dataset in datasets:
            kind = registry.spec("dataset", dataset).kind
            if kind not in kinds:
                raise PlanError(
                    f"flow {flow!r} does not support {kind} data (dataset {dataset!r}); "
                    f"it supports {', '.join(kinds)}"
                )
    flow_hparams = {f: dict(spec.flow_hparams.get(f, {})) for f in flows}
    base_hparams = {b: dict(spec.base_hparams.get(b, {})) for b in bases}

    def settings(d: str, f: str, b: str) -> tuple[dict, dict, dict]:
        best = (tuned or {}).get((d, f, b))
        if best is None:
            return flow_hparams[f], base_hparams[b], flow_train.get(f, train)
        own = flow_train.get(f, train)
        forced = {"device": own.get("device", "cpu"), "precision": own.get("precision", "fp32"),
                  **({"compile": True} if compile else {})}
        tuned_train = TrainConfig(**{**own, **best["train"], **forced}).as_dict()
        if steps is not None:
            tuned_train["steps"] = int(steps)
        return ({**flow_hparams[f], **best["flow_hparams"]},
                {**base_hparams[b], **best["base_hparams"]}, tuned_train)

    # checked against PREPROCESSING_DEFAULTS by the spec
    preprocessing = {f: {**spec.preprocessing, **spec.flow_preprocessing.get(f, {})}
                     for f in flows}
    cells = tuple(
        Cell(suite, d, f, b, s, spec.data_seed, *settings(d, f, b), preprocessing[f])
        for d in datasets for f in flows for b in _paired(spec, f, bases) for s in seeds
    )
    measure_settings = {**MEASURE_DEFAULTS, **dict(spec.measure)}
    if not measure:
        measure_settings.update(references=False, logdet_dims=(), linear_channels=())
    kinds = {d: registry.spec("dataset", d).kind for d in datasets}
    return RunPlan(suite, datasets, flows, bases, seeds, spec.data_seed, train, flow_hparams,
                   base_hparams, registry.extra_plugins, measure_settings, kinds, {}, cells)
