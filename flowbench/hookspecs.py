"""The plugin contract: every hook a flowbench plugin may implement.

A plugin is a module (or object) with functions decorated by ``flowbench.hookimpl`` whose names
match the hooks below. It is found through the ``flowbench`` entry-point group of an installed
distribution::

    # pyproject.toml of your package
    [project.entry-points.flowbench]
    myflow = "my_package.plugin"

or, without installing, with ``flowbench -p path/to/plugin.py`` (or ``-p module.name``).
The built-in NICE, RealNVP, Glow, bases and toy2d plugins are registered the same way.

Every register-style hook returns a list of spec records (``flowbench.specs``). Names are global:
two plugins registering the same name is an error reported against the second one. A plugin that
fails to import, raises, or returns a malformed spec is reported by name and skipped; the other
plugins keep working (``--strict`` turns such problems into a fatal error).
"""

from __future__ import annotations

import pluggy

from .specs import BaseSpec, DatasetFamilySpec, DatasetSpec, FlowSpec, SuiteSpec

PROJECT = "flowbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def flowbench_register_flows() -> list[FlowSpec]:
    """Flow architectures this plugin provides.

    Each ``FlowSpec.build(event_shape, **hparams)`` returns a ``flowbench.layers.Transform``
    mapping data to latent; ``defaults`` names every hyperparameter it accepts.
    """


@hookspec
def flowbench_register_bases() -> list[BaseSpec]:
    """Base distributions this plugin provides.

    Each ``BaseSpec.build(event_shape, **hparams)`` returns a
    ``flowbench.distributions.Distribution``.
    """


@hookspec
def flowbench_register_datasets() -> list[DatasetSpec]:
    """Datasets this plugin provides.

    Each ``DatasetSpec.load(seed)`` returns a ``flowbench.data.Dataset`` whose splits are fixed by
    ``seed``; set ``log_prob``/``entropy`` on it when the true density is known.
    """


@hookspec
def flowbench_register_dataset_families() -> list[DatasetFamilySpec]:
    """Families of datasets that exist in every dimension (``<family>-<D>``).

    A registered dataset of the same name wins over a family member (so a plugin may register
    the common dimensions with their own descriptions); any other ``<family>-<D>`` a user names
    is made on demand by ``DatasetFamilySpec.make(D)``.
    """


@hookspec
def flowbench_register_suites() -> list[SuiteSpec]:
    """Benchmark suites (datasets x flows x bases x seeds + training budget) this plugin provides.

    A suite may name flows, bases and datasets from any plugin; names are checked when it runs.
    """
