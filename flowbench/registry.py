"""Find plugins (entry points, ``-p`` modules and suite files), collect their specs, and look
names up.

Every register hook is called through pluggy's hook caller, so ``tryfirst`` / ``trylast`` order
the results and a hook wrapper (``@hookimpl(wrapper=True)``) sees — and may change — the lists
the other plugins returned, as pluggy users expect. Loading never lets one broken plugin take the
others down: an import error, an exception in a hook, a malformed spec or a duplicate name becomes
a ``PluginProblem`` naming the plugin and where it came from, and the rest of the registry is
built as usual. ``strict=True`` raises instead.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Sequence

import pluggy

from . import hookspecs
from .specs import SPEC_TYPES, SpecError
from .suitefile import as_plugin, is_suite_file

ENTRY_POINT_GROUP = "flowbench"
DISTRIBUTION = "flowbench-nf"
KINDS = ("flow", "base", "dataset", "suite", "family")
_HOOKS = {"flow": "flowbench_register_flows", "base": "flowbench_register_bases",
          "dataset": "flowbench_register_datasets", "suite": "flowbench_register_suites",
          "family": "flowbench_register_dataset_families"}
#: how ``flowbench list`` titles each kind
KIND_TITLES = {"flow": "flows", "base": "bases", "dataset": "datasets", "suite": "suites",
               "family": "dataset families (any dimension D)"}


@dataclass(frozen=True)
class PluginProblem:
    plugin: str
    source: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.source}): {self.message}"


class PluginError(RuntimeError):
    """Raised in strict mode when any plugin could not be loaded cleanly."""

    def __init__(self, problems: Sequence[PluginProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PluginWarning(UserWarning):
    """A plugin was skipped (in whole or in part) because it is broken."""


class UnknownNameError(LookupError):
    """A flow/base/dataset/suite name that no plugin registered."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], hint: str = ""):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        close = difflib.get_close_matches(name, self.choices, n=1, cutoff=0.5)
        message = f"unknown {kind} {name!r}; valid choices: {', '.join(self.choices) or '(none)'}"
        if close:
            message += f"; did you mean {close[0]!r}?"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Registered:
    """A spec together with the plugin that registered it."""

    kind: str
    spec: Any
    plugin: str
    source: str

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    entries: dict[str, dict[str, Registered]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    plugins: dict[str, str] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)
    #: the ``-p`` references this registry was loaded with (worker processes reload them)
    extra_plugins: tuple[str, ...] = ()

    @property
    def flows(self) -> dict[str, Registered]:
        return self.entries["flow"]

    @property
    def bases(self) -> dict[str, Registered]:
        return self.entries["base"]

    @property
    def datasets(self) -> dict[str, Registered]:
        return self.entries["dataset"]

    @property
    def suites(self) -> dict[str, Registered]:
        return self.entries["suite"]

    @property
    def families(self) -> dict[str, Registered]:
        return self.entries["family"]

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Registered:
        try:
            return self.entries[kind][name]
        except KeyError:
            pass
        if kind == "dataset" and isinstance(name, str):
            made = self._family_member(name)
            if made is not None:
                return made
        hints = [f"{len(self.problems)} plugin problem(s) reported above"] if self.problems else []
        choices = list(self.entries[kind])
        if kind == "dataset" and self.families:
            choices += [entry.spec.pattern for entry in self.families.values()]
        raise UnknownNameError(kind, name, choices, "; ".join(hints)) from None

    def _family_member(self, name: str) -> Registered | None:
        """The dataset ``<family>-<D>`` made by its family (and kept), or None when no family
        claims the name; a D outside the family's range is an error naming the range."""
        for entry in self.families.values():
            family = entry.spec
            dim = family.member(name)
            if dim is None:
                continue
            if not family.accepts(dim):
                raise UnknownNameError("dataset", name, [family.pattern],
                                       f"dataset family {family.name!r} has no D = {dim}")
            try:
                spec = family.make(dim)
            except Exception as error:  # noqa: BLE001 - a plugin failure, named as such
                raise PluginError([PluginProblem(entry.plugin, entry.source,
                                                 f"dataset family {family.name!r} could not "
                                                 f"make {name!r}: {error!r}")]) from error
            problem = None
            if not isinstance(spec, SPEC_TYPES["dataset"]):
                problem = f"make({dim}) returned {spec!r}, not a DatasetSpec"
            elif spec.name != name or tuple(spec.event_shape) != (dim,):
                problem = (f"make({dim}) returned dataset {spec.name!r} of shape "
                           f"{tuple(spec.event_shape)}, not {name!r} of shape ({dim},)")
            else:
                try:
                    spec.validate()
                except SpecError as error:
                    problem = f"make({dim}) returned a malformed spec: {error}"
            if problem:
                raise PluginError([PluginProblem(entry.plugin, entry.source,
                                                 f"dataset family {family.name!r}: {problem}")])
            made = Registered("dataset", spec, entry.plugin, entry.source)
            self.entries["dataset"][name] = made
            return made
        return None

    def spec(self, kind: str, name: str) -> Any:
        return self.get(kind, name).spec

    def as_records(self) -> list[dict[str, Any]]:
        """One plain dict per registered item (for ``flowbench list``)."""
        records = []
        for kind in KINDS:
            for name in self.names(kind):
                entry = self.entries[kind][name]
                records.append({
                    "kind": kind, "name": name, "plugin": entry.plugin, "source": entry.source,
                    "description": entry.spec.description + (
                        f" [{entry.spec.pattern}]" if kind == "family" else ""),
                    "reference": getattr(entry.spec, "reference", ""),
                    **({"notes": entry.spec.notes} if getattr(entry.spec, "notes", "") else {}),
                })
        return records


class _PluginManager(pluggy.PluginManager):
    """Also accepts ``flowbench_*`` functions without the ``@hookimpl`` marker (as pytest does
    for ``pytest_*``), so a forgotten decorator does not silently drop a plugin's specs."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in _HOOKS.values() and callable(getattr(plugin, name, None)):
            opts = dict(wrapper=False, hookwrapper=False, optionalhook=False, tryfirst=False,
                        trylast=False, specname=None)
        return opts


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    # built-ins first, so a third-party duplicate is the one reported and skipped
    def order(ep: importlib.metadata.EntryPoint) -> tuple[int, str]:
        dist = getattr(ep, "dist", None)
        name = dist.metadata["Name"] if dist is not None else ""
        return (0 if name == DISTRIBUTION else 1, ep.name)
    return sorted(points, key=order)


def _describe(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    where = f" in {dist.metadata['Name']} {dist.version}" if dist is not None else ""
    return f"entry point '{ep.name} = {ep.value}'{where}"


def _is_path(reference: str) -> bool:
    return reference.endswith(".py") or is_suite_file(reference) or Path(reference).exists()


def _plugin_name(reference: str) -> str:
    """A ``-p`` plugin's name: the file's stem, or the module name."""
    return Path(reference).stem if _is_path(reference) else reference


def _import_plugin(reference: str) -> tuple[str, ModuleType]:
    """Import ``-p`` argument: a path to a ``.py`` file or a suite file (``.toml``), or an
    importable module name."""
    path = Path(reference)
    if is_suite_file(reference):
        return path.stem, as_plugin(path)
    if _is_path(reference):
        if not path.is_file():
            raise FileNotFoundError(f"no such plugin file: {reference}")
        name = f"flowbench_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {reference} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return path.stem, module
    return reference, importlib.import_module(reference)


def _collect(pm: pluggy.PluginManager, registry: Registry) -> None:
    """Call every register hook through pluggy and admit each spec it returns, attributed to the
    plugin whose implementation returned it (or, for a spec a wrapper made, to the wrapper)."""
    for kind in KINDS:
        hook_name, spec_type = _HOOKS[kind], SPEC_TYPES[kind]
        caller = getattr(pm.hook, hook_name)
        origin: dict[int, str] = {}
        for impl in caller.get_hookimpls():
            if not (impl.wrapper or impl.hookwrapper):
                impl.function = _guarded(impl.function, impl.plugin_name, hook_name, spec_type,
                                         registry, origin)
        wrappers = [impl.plugin_name for impl in caller.get_hookimpls()
                    if impl.wrapper or impl.hookwrapper]
        try:
            results = caller()
        except Exception as error:  # noqa: BLE001 - only wrappers can raise here
            plugin = ", ".join(wrappers) or "?"
            registry.problems.append(PluginProblem(
                plugin, registry.plugins.get(plugin, plugin),
                f"hook wrapper of {hook_name}() raised {error!r}; no {kind} was registered"))
            continue
        made: list[tuple[str, Any]] = []
        for specs in results:
            if not isinstance(specs, (list, tuple)):
                plugin = ", ".join(wrappers) or "?"
                registry.problems.append(PluginProblem(
                    plugin, registry.plugins.get(plugin, plugin), f"{hook_name}() results must "
                    f"be lists of {spec_type.__name__}, got {type(specs).__name__}"))
                continue
            made += [(origin.get(id(spec), ", ".join(wrappers) or "?"), spec) for spec in specs]
        # a name registered twice is kept for the plugin loaded first (built-ins before
        # third parties), whatever order the hooks ran in
        loaded = list(registry.plugins)
        made.sort(key=lambda item: loaded.index(item[0]) if item[0] in loaded else len(loaded))
        for plugin, spec in made:
            source = registry.plugins.get(plugin, plugin)
            problem = _admit(registry, kind, spec, spec_type, plugin, source)
            if problem:
                registry.problems.append(PluginProblem(plugin, source, problem))


def _guarded(function: Any, plugin: str, hook_name: str, spec_type: type, registry: Registry,
             origin: dict[int, str]) -> Any:
    """``function`` as pluggy will call it, but a failure becomes the plugin's problem (not
    everyone's), and each spec it returns remembers which plugin made it."""
    source = registry.plugins.get(plugin, plugin)

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            specs = function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any plugin failure is reported, not raised
            registry.problems.append(
                PluginProblem(plugin, source, f"{hook_name}() raised {error!r}"))
            return None
        if not isinstance(specs, (list, tuple)):
            registry.problems.append(PluginProblem(
                plugin, source, f"{hook_name}() must return a list of {spec_type.__name__}, got "
                f"{type(specs).__name__}"))
            return None
        for spec in specs:
            origin[id(spec)] = plugin
        return list(specs)

    return call


def _admit(registry: Registry, kind: str, spec: Any, spec_type: type, plugin: str,
           source: str) -> str | None:
    """Add one spec, or say why not."""
    if not isinstance(spec, spec_type):
        return f"{_HOOKS[kind]}() returned {spec!r}, which is not a {spec_type.__name__}"
    try:
        spec.validate()
    except SpecError as error:
        return f"malformed {kind} spec: {error}"
    existing = registry.entries[kind].get(spec.name)
    if existing is not None:
        return (f"duplicate {kind} name {spec.name!r}: already registered by plugin "
                f"{existing.plugin!r} ({existing.source}); this one is skipped")
    registry.entries[kind][spec.name] = Registered(kind, spec, plugin, source)
    return None


def _register(pm: pluggy.PluginManager, registry: Registry, name: str, module: Any,
              source: str) -> None:
    if name in registry.plugins:
        registry.problems.append(PluginProblem(
            name, source, f"a plugin named {name!r} is already loaded from "
            f"{registry.plugins[name]}; this one is skipped"))
        return
    try:
        pm.register(module, name=name)
    except Exception as error:  # noqa: BLE001
        registry.problems.append(PluginProblem(name, source, f"cannot be registered: {error}"))
        return
    registry.plugins[name] = source
    known = set(_HOOKS.values())
    for attribute in dir(module):
        if attribute.startswith("flowbench_") and attribute not in known and callable(
            getattr(module, attribute, None)
        ):
            close = difflib.get_close_matches(attribute, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            registry.problems.append(
                PluginProblem(name, source, f"defines unknown hook {attribute!r}{hint}"))


ENV_PLUGINS, ENV_DISABLE = "FLOWBENCH_PLUGINS", "FLOWBENCH_DISABLE_PLUGINS"


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def load_registry(plugins: Sequence[str] = (), strict: bool = False,
                  warn: bool = True) -> Registry:
    """Build a registry from the ``flowbench`` entry points and the extra ``plugins``.

    ``plugins`` are paths to ``.py`` files or suite files (``.toml``), or importable module
    names (the CLI's ``-p``); the environment variable ``FLOWBENCH_PLUGINS`` (comma-separated)
    adds more. Plugins named in ``FLOWBENCH_DISABLE_PLUGINS`` (entry-point or plugin names) are
    not loaded at all. Problems are collected in ``registry.problems``; with ``strict`` they
    raise ``PluginError``, otherwise each is issued as a ``PluginWarning`` (unless ``warn=False``).
    """
    pm = _PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    env_plugins = tuple(_env_list(ENV_PLUGINS))
    disabled = set(_env_list(ENV_DISABLE))
    registry = Registry(extra_plugins=tuple(plugins))
    skipped: list[str] = []
    for ep in _entry_points():
        if ep.name in disabled:
            skipped.append(ep.name)
            continue
        source = _describe(ep)
        try:
            module = ep.load()
        except Exception as error:  # noqa: BLE001
            registry.problems.append(
                PluginProblem(ep.name, source, f"failed to import: {error!r}"))
            continue
        _register(pm, registry, ep.name, module, source)
    for reference, origin in [(p, "-p") for p in plugins] + [(p, ENV_PLUGINS) for p in env_plugins]:
        if _plugin_name(reference) in disabled:
            skipped.append(_plugin_name(reference))
            continue
        try:
            name, module = _import_plugin(reference)
        except Exception as error:  # noqa: BLE001
            registry.problems.append(PluginProblem(
                _plugin_name(reference), f"{origin} {reference}", f"failed to import: {error!r}"))
            continue
        _register(pm, registry, name, module, f"{origin} {reference}")
    for name in sorted(disabled - set(skipped)):
        registry.problems.append(PluginProblem(
            name, ENV_DISABLE, "asked to be disabled, but no plugin has this name; loaded: "
            + ", ".join(sorted(registry.plugins))))
    _collect(pm, registry)
    if registry.problems:
        if strict:
            raise PluginError(registry.problems)
        if warn:
            for problem in registry.problems:
                warnings.warn(f"{problem}; skipped (strict mode makes this fatal)",
                              PluginWarning, stacklevel=2)
    return registry


_default: dict[tuple, Registry] = {}


def get_registry(plugins: Sequence[str] = ()) -> Registry:
    """The registry of installed plugins (plus ``plugins``), loaded once per process (and again
    when the plugin environment variables change)."""
    key = (tuple(plugins), os.environ.get(ENV_PLUGINS), os.environ.get(ENV_DISABLE))
    if key not in _default:
        _default[key] = load_registry(plugins)
    return _default[key]
