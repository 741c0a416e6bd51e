"""The spec records plugins register: named recipes for flows, bases, datasets and suites.

A spec is data plus a builder. The invertible maths lives in ``flowbench.layers``; a flow spec only
says how to assemble layers for an event shape, its default hyperparameters, and where it comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]*$")
DATA_KINDS = ("vector", "image")


class SpecError(ValueError):
    """A plugin returned a malformed spec."""


def _check_common(spec: Any, kind: str) -> None:
    if not isinstance(spec.name, str) or not NAME_PATTERN.match(spec.name):
        raise SpecError(
            f"{kind} name {spec.name!r} is not valid: use lower-case letters, digits, '_' or '-', "
            "starting with a letter"
        )
    if not isinstance(spec.description, str) or not spec.description.strip():
        raise SpecError(f"{kind} {spec.name!r} needs a one-line description")


def _check_builder(spec: Any, kind: str, attribute: str) -> None:
    if not callable(getattr(spec, attribute)):
        raise SpecError(f"{kind} {spec.name!r}: {attribute} must be callable")
    if not isinstance(spec.defaults, Mapping):
        raise SpecError(f"{kind} {spec.name!r}: defaults must be a mapping of hyperparameters")
    if spec.search_space is not None and not callable(spec.search_space):
        raise SpecError(f"{kind} {spec.name!r}: search_space must be callable (an Optuna trial "
                        "-> dict of hyperparameters) or None")


#: ``search_space(trial) -> {hyperparameter: value}``: suggests values with an Optuna trial's
#: ``suggest_int`` / ``suggest_float`` / ``suggest_categorical``; every key must be in ``defaults``.
#: It may take a second argument, the data's ``event_shape``, to tune per data kind.
SearchSpace = Callable[[Any], Mapping[str, Any]]


@dataclass(frozen=True)
class FlowSpec:
    """An architecture recipe: ``build(event_shape, **hparams) -> Transform`` (data -> latent).

    ``defaults`` lists every hyperparameter ``build`` accepts, with its default value;
    ``search_space`` proposes values for tuning (see ``SearchSpace``); ``data_kinds`` says which
    datasets it can model ("vector", "image").
    """

    name: str
    build: Callable[..., Any]
    description: str
    reference: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    data_kinds: tuple[str, ...] = ("vector",)
    search_space: SearchSpace | None = None

    def validate(self) -> None:
        _check_common(self, "flow")
        _check_builder(self, "flow", "build")
        unknown = set(self.data_kinds) - set(DATA_KINDS)
        if not self.data_kinds or unknown:
            raise SpecError(
                f"flow {self.name!r}: data_kinds {tuple(self.data_kinds)} must be a non-empty "
                f"subset of {DATA_KINDS}"
            )


@dataclass(frozen=True)
class BaseSpec:
    """A base-distribution recipe: ``build(event_shape, **hparams) -> Distribution``, with
    ``defaults`` and an optional ``search_space`` as for flows."""

    name: str
    build: Callable[..., Any]
    description: str
    reference: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: SearchSpace | None = None

    def validate(self) -> None:
        _check_common(self, "base")
        _check_builder(self, "base", "build")


@dataclass(frozen=True)
class DatasetSpec:
    """A data source: ``load(seed) -> flowbench.data.Dataset`` with fixed train/val/test splits.

    ``event_shape`` and ``kind`` are known without loading, so a run can be checked up front.
    ``has_oracle`` says whether the loaded dataset carries its exact ``log_prob`` and ``entropy``.
    """

    name: str
    load: Callable[[int], Any]
    description: str
    event_shape: tuple[int, ...] = (2,)
    kind: str = "vector"
    has_oracle: bool = False
    reference: str = ""

    def validate(self) -> None:
        _check_common(self, "dataset")
        if not callable(self.load):
            raise SpecError(f"dataset {self.name!r}: load must be callable")
        if self.kind not in DATA_KINDS:
            raise SpecError(f"dataset {self.name!r}: kind {self.kind!r} not in {DATA_KINDS}")
        if not self.event_shape or not all(isinstance(d, int) and d > 0 for d in self.event_shape):
            raise SpecError(f"dataset {self.name!r}: bad event_shape {self.event_shape!r}")


@dataclass(frozen=True)
class SuiteSpec:
    """A named benchmark: datasets x flows x bases x seeds, and a training budget.

    ``train`` overrides fields of ``flowbench.train.TrainConfig``; ``flow_hparams`` /
    ``base_hparams`` map a flow or base name to hyperparameters that replace its defaults in this
    suite. ``data_seed`` fixes the splits; ``seeds`` vary model initialisation and minibatches.
    ``measure`` overrides what is measured besides NLL (``flowbench.runner.MEASURE_DEFAULTS``:
    speed, references, logdet_dims, logdet_batch, logdet_repeats, linear_channels).
    ``train_space`` proposes training settings (keys of ``TrainConfig``: lr, batch_size,
    weight_decay, steps, ...) when tuning, like a flow's ``search_space``. ``preprocessing``
    overrides how discrete (image) data enter the flows (``flowbench.runner.
    PREPROCESSING_DEFAULTS``: ``logit``, ``alpha``); continuous data are always standardised.
    """

    name: str
    description: str
    datasets: tuple[str, ...]
    flows: tuple[str, ...]
    bases: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    train: Mapping[str, Any] = field(default_factory=dict)
    flow_hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    base_hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data_seed: int = 0
    measure: Mapping[str, Any] = field(default_factory=dict)
    train_space: SearchSpace | None = None
    preprocessing: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from .train import TrainConfig  # local: specs stay importable without torch set-up cost

        _check_common(self, "suite")
        for attribute in ("datasets", "flows", "bases", "seeds"):
            value = getattr(self, attribute)
            if isinstance(value, str) or not value:
                raise SpecError(
                    f"suite {self.name!r}: {attribute} must be a non-empty sequence, got {value!r}"
                )
        valid = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(self.train) - valid)
        if unknown:
            raise SpecError(
                f"suite {self.name!r}: unknown training settings {unknown}; valid: {sorted(valid)}"
            )
        if self.train_space is not None and not callable(self.train_space):
            raise SpecError(f"suite {self.name!r}: train_space must be callable or None")
        from .runner import MEASURE_DEFAULTS

        unknown = sorted(set(self.measure) - set(MEASURE_DEFAULTS))
        if unknown:
            raise SpecError(f"suite {self.name!r}: unknown measure settings {unknown}; "
                            f"valid: {sorted(MEASURE_DEFAULTS)}")


SPEC_TYPES = {"flow": FlowSpec, "base": BaseSpec, "dataset": DatasetSpec, "suite": SuiteSpec}
