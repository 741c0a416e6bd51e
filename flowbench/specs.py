"""The spec records plugins register: named recipes for flows, bases, datasets and suites.

A spec is data plus a builder. The invertible maths lives in ``flowbench.layers``; a flow spec
only says how to assemble layers for an event shape, its default hyperparameters, and where it
comes from.
The defaults that are part of a suite's contract live here too: :class:`TrainConfig` (what a
suite's ``train`` overrides), :data:`MEASURE_DEFAULTS` and :data:`PREPROCESSING_DEFAULTS`.
This module imports only the standard library.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]*$")
DATA_KINDS = ("vector", "image")

#: what ``flowbench run`` measures besides NLL unless the suite says otherwise
#: (``SuiteSpec.measure``)
MEASURE_DEFAULTS: dict[str, Any] = {
    "speed": True,                              # per-cell density / sampling throughput
    "speed_batch": 4096,                        # examples per timed log_prob / sample call
    "speed_repeats": 5,                         # timed rounds (median and IQR over them)
    "references": True,                         # Gaussian, GMM, KDE baselines per dataset
    "logdet_dims": (2, 8, 32, 128, 512),        # log-det cost study per flow
    "logdet_batch": 16,
    "logdet_repeats": 5,
    "logdet_call_budget": 1.0,                  # s per brute-force call before D stops growing
    "linear_channels": (4, 16, 64, 256, 1024),  # 1x1 conv: LU vs plain (flows that ask for it)
}

#: extra cost studies a flow spec may ask for (``FlowSpec.measures``)
FLOW_MEASURES = ("linear_cost",)

#: how discrete (image) data enter the flows unless the suite says otherwise
#: (``SuiteSpec.preprocessing``): rescaled to [0, 1), then RealNVP's logit with this ``alpha``
PREPROCESSING_DEFAULTS: dict[str, Any] = {"logit": True, "alpha": 0.05}

SCHEDULES = ("cosine", "constant")
#: arithmetic of the conditioner networks (``flowbench.device``): fp32 as written; tf32 lets
#: CUDA matmuls/convolutions round inputs to TensorFloat-32; bf16 autocasts the conditioners
PRECISIONS = ("fp32", "tf32", "bf16")
#: per-minibatch data augmentation of image cells: none, or a random horizontal flip
AUGMENTATIONS = ("none", "hflip")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one cell. Suites override these; the CLI's ``--steps`` overrides ``steps``."""

    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    grad_clip: float = 50.0
    schedule: str = "cosine"
    eval_every: int = 100
    patience: int = 0
    eval_batch_size: int = 8192
    init_batch_size: int = 2048
    #: train through ``torch.compile`` (``flowbench.compile``); a compiled run is a separate run
    compile: bool = False
    #: where the cell trains: "cpu", "cuda" or "cuda:N" (resolved; never "auto" here)
    device: str = "cpu"
    #: conditioner arithmetic, one of :data:`PRECISIONS`; log-dets and NLLs stay float32+
    precision: str = "fp32"
    #: steps of linear learning-rate warm-up from 0 (Glow, RealNVP image recipes)
    warmup_steps: int = 0
    #: per-minibatch augmentation, one of :data:`AUGMENTATIONS`
    augment: str = "none"

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "eval_every", "eval_batch_size", "init_batch_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {self.schedule!r}; valid choices: {', '.join(SCHEDULES)}"
            )
        for name in ("patience", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0, got {self.grad_clip}")
        for name, valid in (("precision", PRECISIONS), ("augment", AUGMENTATIONS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid choices: "
                                 f"{', '.join(valid)}")
        if not DEVICE_PATTERN.match(str(self.device)):
            raise ValueError(f"TrainConfig.device must be 'cpu', 'cuda' or 'cuda:N' (resolved, "
                             f"not 'auto'), got {self.device!r}")
        if int(self.warmup_steps) < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")

    def as_dict(self) -> dict[str, Any]:
        """Plain data; the options added after the first runs (compile, device, precision,
        warm-up, augmentation) only when set away from their defaults, so earlier cells keep
        the ids they always had."""
        data = asdict(self)
        for name, default in OPTIONAL_DEFAULTS.items():
            if data[name] == default:
                del data[name]
        return data


#: TrainConfig fields that enter a cell's settings (and id) only when not at these defaults
OPTIONAL_DEFAULTS: dict[str, Any] = {"compile": False, "device": "cpu", "precision": "fp32",
                                     "warmup_steps": 0, "augment": "none"}
DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+|meta)$")


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


def defaults_of(build: Callable[..., Any]) -> dict[str, Any]:
    """The hyperparameters of a flow or base builder and their defaults, read from its signature,
    so that each default is stated once, in ``build``: ``FlowSpec(build=build,
    defaults=defaults_of(build), ...)``.

    The first parameter is the event shape; every other one needs a default, and ``*args`` /
    ``**kwargs`` are refused (their names could not be listed), so a builder whose defaults
    cannot all be read raises :class:`SpecError` rather than yielding a partial dict.
    """
    parameters = list(inspect.signature(build).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or parameters[0].kind not in positional:
        raise SpecError(f"{build!r} must take the event shape as its first parameter")
    defaults: dict[str, Any] = {}
    for parameter in parameters[1:]:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise SpecError(f"{build!r}: *args / **kwargs hide hyperparameter names; list them "
                            "with defaults, or give the spec its defaults explicitly")
        if parameter.default is inspect.Parameter.empty:
            raise SpecError(f"{build!r}: hyperparameter {parameter.name!r} has no default")
        defaults[parameter.name] = parameter.default
    return defaults


#: ``search_space(trial) -> {hyperparameter: value}``: suggests values with an Optuna trial's
#: ``suggest_int`` / ``suggest_float`` / ``suggest_categorical``; every key must be in ``defaults``.
#: It may take a second argument, the data's ``event_shape``, to tune per data kind.
SearchSpace = Callable[[Any], Mapping[str, Any]]


@dataclass(frozen=True)
class FlowSpec:
    """An architecture recipe: ``build(event_shape, **hparams) -> Transform`` (data -> latent).

    ``defaults`` lists every hyperparameter ``build`` accepts, with its default value;
    ``search_space`` proposes values for tuning (see ``SearchSpace``); ``data_kinds`` says which
    datasets it can model ("vector", "image"); ``measures`` names extra cost studies that apply
    to the architecture (:data:`FLOW_MEASURES`: ``"linear_cost"``, LU-parameterised against
    plain invertible 1x1 convolutions, for flows built on them).
    """

    name: str
    build: Callable[..., Any]
    description: str
    reference: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    data_kinds: tuple[str, ...] = ("vector",)
    search_space: SearchSpace | None = None
    measures: tuple[str, ...] = ()

    def validate(self) -> None:
        _check_common(self, "flow")
        _check_builder(self, "flow", "build")
        unknown = sorted(set(self.measures) - set(FLOW_MEASURES))
        if unknown or isinstance(self.measures, str):
            raise SpecError(f"flow {self.name!r}: unknown measures {unknown or self.measures!r}; "
                            f"valid: {list(FLOW_MEASURES)}")
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
class PublishedResult:
    """A number taken from a paper, shown only as a labelled ``published:`` row of a report,
    never mixed with measured ones.

    ``nll`` is in flowbench's units and sign for the dataset (nats per example for vectors, bits
    per dimension for images; lower is better): a paper's test log-likelihood L is stored as -L.
    ``source`` names paper and table, e.g. ``"Papamakarios et al. 2017 (MAF), Table 2"``.
    """

    method: str
    nll: float
    source: str

    def validate(self, dataset: str) -> None:
        if not (isinstance(self.method, str) and self.method.strip()
                and isinstance(self.source, str) and self.source.strip()):
            raise SpecError(f"dataset {dataset!r}: a published result needs a method and a source")
        if not isinstance(self.nll, (int, float)) or self.nll != self.nll:
            raise SpecError(f"dataset {dataset!r}: published nll of {self.method!r} must be a "
                            f"number, got {self.nll!r}")


@dataclass(frozen=True)
class DatasetSpec:
    """A data source: ``load(seed) -> flowbench.data.Dataset`` with fixed train/val/test splits.

    ``event_shape`` and ``kind`` are known without loading, so a run can be checked up front.
    ``has_oracle`` says whether the loaded dataset carries its exact ``log_prob`` and ``entropy``.
    ``published`` lists results from papers on this exact dataset (:class:`PublishedResult`).
    """

    name: str
    load: Callable[[int], Any]
    description: str
    event_shape: tuple[int, ...] = (2,)
    kind: str = "vector"
    has_oracle: bool = False
    reference: str = ""
    published: tuple[PublishedResult, ...] = ()

    def validate(self) -> None:
        _check_common(self, "dataset")
        if isinstance(self.published, (str, PublishedResult)):
            raise SpecError(f"dataset {self.name!r}: published must be a sequence of "
                            "PublishedResult")
        for result in self.published:
            if not isinstance(result, PublishedResult):
                raise SpecError(f"dataset {self.name!r}: published entries must be "
                                f"PublishedResult, got {result!r}")
            result.validate(self.name)
        if not callable(self.load):
            raise SpecError(f"dataset {self.name!r}: load must be callable")
        if self.kind not in DATA_KINDS:
            raise SpecError(f"dataset {self.name!r}: kind {self.kind!r} not in {DATA_KINDS}")
        if not self.event_shape or not all(isinstance(d, int) and d > 0 for d in self.event_shape):
            raise SpecError(f"dataset {self.name!r}: bad event_shape {self.event_shape!r}")


@dataclass(frozen=True)
class DatasetFamilySpec:
    """Datasets of any dimension: the dataset ``<name>-<D>`` is ``make(D)`` for every
    ``min_dim <= D <= max_dim`` (``max_dim=None``: no upper limit).

    A family's members need not be listed one by one: asking for ``funnel-48`` anywhere a
    dataset name is taken builds it (``Registry.get``). ``make(D)`` must return a
    :class:`DatasetSpec` named ``<name>-<D>`` with ``event_shape == (D,)``.
    """

    name: str
    make: Callable[[int], DatasetSpec]
    description: str
    reference: str = ""
    min_dim: int = 2
    max_dim: int | None = None

    def validate(self) -> None:
        _check_common(self, "dataset family")
        if not callable(self.make):
            raise SpecError(f"dataset family {self.name!r}: make must be callable")
        if not isinstance(self.min_dim, int) or self.min_dim < 1:
            raise SpecError(f"dataset family {self.name!r}: min_dim must be an integer >= 1, "
                            f"got {self.min_dim!r}")
        if self.max_dim is not None and (not isinstance(self.max_dim, int)
                                         or self.max_dim < self.min_dim):
            raise SpecError(f"dataset family {self.name!r}: max_dim must be None or an integer "
                            f">= min_dim, got {self.max_dim!r}")

    @property
    def pattern(self) -> str:
        """How a member is named, e.g. ``funnel-<D>, D >= 2``."""
        upper = f" <= {self.max_dim}" if self.max_dim is not None else ""
        return f"{self.name}-<D> ({self.min_dim} <= D{upper})"

    def member(self, name: str) -> int | None:
        """D when ``name`` is ``<family>-<D>`` (any D), else None."""
        prefix, _, digits = name.rpartition("-")
        if prefix != self.name or not digits.isdigit() or digits != str(int(digits)):
            return None
        return int(digits)

    def accepts(self, dim: int) -> bool:
        return dim >= self.min_dim and (self.max_dim is None or dim <= self.max_dim)


@dataclass(frozen=True)
class SuiteSpec:
    """A named benchmark: datasets x flows x bases x seeds, and a training budget.

    ``train`` overrides fields of ``flowbench.train.TrainConfig``; ``flow_hparams`` /
    ``base_hparams`` map a flow or base name to hyperparameters that replace its defaults in this
    suite. ``data_seed`` fixes the splits; ``seeds`` vary model initialisation and minibatches.
    ``measure`` overrides what is measured besides NLL (:data:`MEASURE_DEFAULTS`:
    speed, references, logdet_dims, logdet_batch, logdet_repeats, linear_channels).
    ``train_space`` proposes training settings (keys of ``TrainConfig``: lr, batch_size,
    weight_decay, steps, ...) when tuning, like a flow's ``search_space``. ``preprocessing``
    overrides how discrete (image) data enter the flows (:data:`PREPROCESSING_DEFAULTS`:
    ``logit``, ``alpha``); continuous data are always standardised.

    Per-flow recipes (a suite that follows several papers): ``flow_train`` maps a flow to
    training settings that replace ``train``'s for that flow's cells; ``flow_preprocessing`` does
    the same for ``preprocessing``; ``flow_bases`` maps a flow to the bases it is paired with (a
    subset of ``bases``; flows not named are paired with every base). ``notes`` is free text
    shown by ``flowbench list``: e.g. where a suite departs from the papers it follows.
    ``device`` is where the suite's cells train unless ``--device`` says otherwise: ``auto`` (a
    GPU when there is one) for models big enough to gain from it, ``cpu`` for tiny ones that
    train faster as one CPU process per core than as many processes sharing one GPU.
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
    flow_train: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    flow_preprocessing: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    flow_bases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    notes: str = ""
    device: str = "auto"

    def validate(self) -> None:
        _check_common(self, "suite")
        if self.device != "auto" and not DEVICE_PATTERN.match(str(self.device)):
            raise SpecError(f"suite {self.name!r}: device {self.device!r} is not valid; valid "
                            "choices: auto, cpu, cuda, cuda:N")
        if "device" in self.train or any("device" in t for t in self.flow_train.values()):
            raise SpecError(f"suite {self.name!r}: set the device with SuiteSpec.device (or "
                            "`device = ...` in a suite file), not in train")
        if not isinstance(self.notes, str):
            raise SpecError(f"suite {self.name!r}: notes must be a string")
        for attribute in ("flow_train", "flow_preprocessing", "flow_bases"):
            unknown = sorted(set(getattr(self, attribute)) - set(self.flows))
            if unknown:
                raise SpecError(f"suite {self.name!r}: {attribute} names flows not in the suite: "
                                f"{unknown}; its flows: {list(self.flows)}")
        for flow, bases in self.flow_bases.items():
            if isinstance(bases, str) or not bases or not set(bases) <= set(self.bases):
                raise SpecError(f"suite {self.name!r}: flow_bases[{flow!r}] must be a non-empty "
                                f"subset of the suite's bases {list(self.bases)}, got {bases!r}")
        for attribute in ("datasets", "flows", "bases", "seeds"):
            value = getattr(self, attribute)
            if isinstance(value, str) or not value:
                raise SpecError(
                    f"suite {self.name!r}: {attribute} must be a non-empty sequence, got {value!r}"
                )
        valid = {f.name for f in fields(TrainConfig)}
        for label, train in (("", self.train),
                             *((f" (flow_train[{f!r}])", t) for f, t in self.flow_train.items())):
            unknown = sorted(set(train) - valid)
            if unknown:
                raise SpecError(f"suite {self.name!r}: unknown training settings{label} "
                                f"{unknown}; valid: {sorted(valid)}")
        if self.train_space is not None and not callable(self.train_space):
            raise SpecError(f"suite {self.name!r}: train_space must be callable or None")
        checked = [("measure", self.measure, MEASURE_DEFAULTS),
                   ("preprocessing", self.preprocessing, PREPROCESSING_DEFAULTS)]
        checked += [(f"flow_preprocessing[{f!r}]", options, PREPROCESSING_DEFAULTS)
                    for f, options in self.flow_preprocessing.items()]
        for attribute, options, defaults in checked:
            unknown = sorted(set(options) - set(defaults))
            if unknown:
                raise SpecError(f"suite {self.name!r}: unknown {attribute} settings {unknown}; "
                                f"valid: {sorted(defaults)}")


SPEC_TYPES = {"flow": FlowSpec, "base": BaseSpec, "dataset": DatasetSpec, "suite": SuiteSpec,
              "family": DatasetFamilySpec}
