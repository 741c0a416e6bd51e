"""A suite from a TOML file, without writing a plugin: the same fields as ``SuiteSpec``.

Example (``my-suite.toml``)::

    name = "moons-study"
    description = "RealNVP against Glow on two moons, 5 seeds"
    datasets = ["two_moons"]
    flows = ["realnvp", "glow"]
    bases = ["normal", "bimodal"]
    seeds = [0, 1, 2, 3, 4]

    [train]                 # fields of TrainConfig
    steps = 1000

    [flow_hparams.realnvp]  # per flow (or [base_hparams.NAME] per base)
    layers = 4

``name`` defaults to the file's stem and ``description`` to its path. Every problem — a file that
does not parse, an unknown key, a value of the wrong type, an unknown flow, base or dataset —
raises :class:`SuiteFileError` naming the file, the key and the valid choices. The file is also
a plugin reference (``flowbench -p my-suite.toml``), so worker processes load it the same way.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

from .specs import MEASURE_DEFAULTS, PREPROCESSING_DEFAULTS, SpecError, SuiteSpec, TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SUFFIX = ".toml"
#: keys a suite file may hold: SuiteSpec's fields that are data (``train_space`` is code)
KEYS = tuple(f.name for f in fields(SuiteSpec) if f.name != "train_space")
_NAMES = {"datasets": "dataset", "flows": "flow", "bases": "base"}


class SuiteFileError(ValueError):
    """A suite file that cannot be used; the message names the file and the key."""


def is_suite_file(reference: str | Path) -> bool:
    return str(reference).endswith(SUFFIX)


def _fail(path: Path, key: str, problem: str) -> SuiteFileError:
    return SuiteFileError(f"{path}: {key}: {problem}")


def _names(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not value or \
            not all(isinstance(item, str) for item in value):
        raise _fail(path, key, f"must be a non-empty list of names, got {value!r}")
    return tuple(value)


def _table(path: Path, key: str, value: Any, valid: Mapping[str, Any] | None = None
           ) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, key, f"must be a table ([{key}]), got {value!r}")
    if valid is not None:
        unknown = sorted(set(value) - set(valid))
        if unknown:
            raise _fail(path, f"{key}.{unknown[0]}", f"unknown setting; valid: {sorted(valid)}")
    return dict(value)


def read_suite_file(path: str | Path) -> SuiteSpec:
    """The ``SuiteSpec`` a suite file describes (names are checked by :func:`check_names`)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteFileError(f"{path}: no such suite file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SuiteFileError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], KEYS, n=1)
        raise _fail(path, unknown[0], f"unknown key; valid keys: {', '.join(KEYS)}"
                    + (f"; did you mean {close[0]!r}?" if close else ""))
    options: dict[str, Any] = {"name": data.get("name", path.stem),
                               "description": data.get("description", f"suite file {path}")}
    for key in ("datasets", "flows", "bases"):
        if key not in data:
            raise _fail(path, key, "missing (a list of names is needed)")
        options[key] = _names(path, key, data[key])
    if "seeds" in data:
        seeds = data["seeds"]
        if not isinstance(seeds, list) or not seeds or \
                not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise _fail(path, "seeds", f"must be a non-empty list of integers, got {seeds!r}")
        options["seeds"] = tuple(seeds)
    if "data_seed" in data:
        if not isinstance(data["data_seed"], int):
            raise _fail(path, "data_seed", f"must be an integer, got {data['data_seed']!r}")
        options["data_seed"] = data["data_seed"]
    if "device" in data:
        if not isinstance(data["device"], str):
            raise _fail(path, "device", f"must be a string (auto, cpu, cuda or cuda:N), got "
                                        f"{data['device']!r}")
        options["device"] = data["device"]
    train_fields = {f.name: f for f in fields(TrainConfig)}
    options["train"] = _table(path, "train", data.get("train", {}), train_fields)
    try:
        TrainConfig(**options["train"])
    except (TypeError, ValueError) as error:
        raise _fail(path, "train", str(error)) from None
    options["measure"] = _table(path, "measure", data.get("measure", {}), MEASURE_DEFAULTS)
    options["preprocessing"] = _table(path, "preprocessing", data.get("preprocessing", {}),
                                      PREPROCESSING_DEFAULTS)
    for key in ("flow_hparams", "base_hparams"):
        table = _table(path, key, data.get(key, {}))
        for name, settings in table.items():
            _table(path, f"{key}.{name}", settings)
        options[key] = table
    spec = SuiteSpec(**options)
    try:
        spec.validate()
    except SpecError as error:
        raise SuiteFileError(f"{path}: {error}") from None
    return spec


def check_names(spec: SuiteSpec, path: str | Path, registry: Any) -> None:
    """Every flow, base and dataset the file names is registered, and every hyperparameter is
    one the named flow or base accepts; else :class:`SuiteFileError` with the valid choices."""
    for key, kind in _NAMES.items():
        valid = registry.names(kind)
        for name in getattr(spec, key):
            if name not in valid:
                close = difflib.get_close_matches(name, valid, n=1)
                raise _fail(Path(path), key, f"unknown {kind} {name!r}; valid choices: "
                            f"{', '.join(valid)}" + (f"; did you mean {close[0]!r}?" if close
                                                     else ""))
    for key, kind, names in (("flow_hparams", "flow", spec.flows),
                             ("base_hparams", "base", spec.bases)):
        for name, settings in spec.__getattribute__(key).items():
            if name not in names:
                raise _fail(Path(path), f"{key}.{name}", f"{name!r} is not one of the suite's "
                            f"{kind}s ({', '.join(names)})")
            accepted = registry.spec(kind, name).defaults
            unknown = sorted(set(settings) - set(accepted))
            if unknown:
                raise _fail(Path(path), f"{key}.{name}.{unknown[0]}",
                            f"{kind} {name!r} has no such hyperparameter; valid: "
                            f"{sorted(accepted)}")


def as_plugin(path: str | Path) -> Any:
    """A plugin object registering the file's suite (for the registry and worker processes)."""
    spec = read_suite_file(path)
    return SimpleNamespace(flowbench_register_suites=lambda: [spec], __file__=str(path))
