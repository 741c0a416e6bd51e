"""The stable Python entry points: build a flow by name, load a dataset by name."""

from __future__ import annotations

import difflib
from typing import Any, Mapping

from .data.dataset import Dataset
from .data.preprocessing import preprocessing_for
from .flow import Flow
from .layers.base import Transform
from .registry import Registry, get_registry
from .specs import SpecError


class HyperparameterError(ValueError):
    """A hyperparameter that the chosen flow or base does not accept."""


def split_hparams(
    flow_defaults: Mapping[str, Any], base_defaults: Mapping[str, Any], hparams: Mapping[str, Any],
    flow: str = "flow", base: str = "base",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route each keyword to the flow or the base by the names their specs declare."""
    flow_kwargs, base_kwargs = {}, {}
    for key, value in hparams.items():
        in_flow, in_base = key in flow_defaults, key in base_defaults
        if in_flow and in_base:
            raise HyperparameterError(
                f"hyperparameter {key!r} is accepted by both flow {flow!r} and base {base!r}; "
                "pass it via flow_hparams= or base_hparams="
            )
        if not (in_flow or in_base):
            close = difflib.get_close_matches(key, [*flow_defaults, *base_defaults], n=1)
            raise HyperparameterError(
                f"unknown hyperparameter {key!r}; flow {flow!r} accepts "
                f"{sorted(flow_defaults) or 'none'}, base {base!r} accepts "
                f"{sorted(base_defaults) or 'none'}"
                + (f"; did you mean {close[0]!r}?" if close else "")
            )
        (flow_kwargs if in_flow else base_kwargs)[key] = value
    return flow_kwargs, base_kwargs


def _check_known(kind: str, name: str, defaults: Mapping[str, Any], given: Mapping[str, Any]):
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise HyperparameterError(
            f"{kind} {name!r} does not accept {unknown}; valid: {sorted(defaults) or 'none'}"
        )


def build_flow(
    flow: str,
    base: str,
    event_shape: tuple[int, ...] | list[int],
    *,
    preprocessing: Transform | None = None,
    flow_hparams: Mapping[str, Any] | None = None,
    base_hparams: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    **hparams: Any,
) -> Flow:
    """An untrained ``Flow`` of the named architecture and base for events of ``event_shape``.

    Keyword hyperparameters go to whichever of the two specs declares them (see
    ``flowbench list``); ``flow_hparams`` / ``base_hparams`` pass them explicitly. Model
    initialisation draws from torch's global RNG: call ``torch.manual_seed`` first to fix it.
    """
    registry = registry or get_registry()
    flow_spec, base_spec = registry.spec("flow", flow), registry.spec("base", base)
    routed_flow, routed_base = split_hparams(
        flow_spec.defaults, base_spec.defaults, hparams, flow, base
    )
    flow_kwargs = {**flow_spec.defaults, **(flow_hparams or {}), **routed_flow}
    base_kwargs = {**base_spec.defaults, **(base_hparams or {}), **routed_base}
    _check_known("flow", flow, flow_spec.defaults, flow_kwargs)
    _check_known("base", base, base_spec.defaults, base_kwargs)
    event_shape = tuple(int(d) for d in event_shape)
    transform = flow_spec.build(event_shape, **flow_kwargs)
    latent_shape = transform.output_shape(event_shape)
    distribution = base_spec.build(latent_shape, **base_kwargs)
    return Flow(transform, distribution, preprocessing, event_shape=event_shape)


def load_dataset(name: str, seed: int = 0, registry: Registry | None = None) -> Dataset:
    """The named dataset's fixed train/val/test splits (and oracle ``log_prob``/``entropy``),
    checked against what its spec promised (``event_shape``, ``kind``) before anything uses it."""
    registry = registry or get_registry()
    entry = registry.get("dataset", name)
    dataset = entry.spec.load(seed)
    where = f"dataset {name!r} of plugin {entry.plugin!r} ({entry.source})"
    if not isinstance(dataset, Dataset):
        raise SpecError(f"{where}: load returned {type(dataset).__name__}, not Dataset")
    promised = (tuple(entry.spec.event_shape), entry.spec.kind)
    loaded = (tuple(dataset.event_shape), dataset.kind)
    if loaded != promised:
        raise SpecError(f"{where}: loaded event_shape {loaded[0]} and kind {loaded[1]!r}, but "
                        f"its spec declares {promised[0]} and {promised[1]!r}")
    for split, data in (("train", dataset.train), ("val", dataset.val)):  # test stays unread
        if tuple(data.shape[1:]) != loaded[0]:
            raise SpecError(f"{where}: the {split} split has examples of shape "
                            f"{tuple(data.shape[1:])}, not the event_shape {loaded[0]}")
    return dataset


def build_cell_flow(cell: Mapping[str, Any], dataset: Dataset, registry: Registry) -> Flow:
    """The (untrained) flow of a run's cell, given as a ``Cell`` mapping or its record: the flow
    and base with the cell's hyperparameters, behind the dataset's preprocessing."""
    return build_flow(
        cell["flow"], cell["base"], dataset.event_shape,
        preprocessing=preprocessing_for(dataset, cell.get("preprocessing")),
        flow_hparams=cell["flow_hparams"], base_hparams=cell["base_hparams"], registry=registry,
    )
