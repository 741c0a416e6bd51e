"""Plugin discovery: entry points, -p files and modules, and broken plugins reported by name."""

from __future__ import annotations

import re
import sys

import pytest

import flowbench
from flowbench.registry import PluginError, PluginWarning, UnknownNameError, load_registry
from flowbench.specs import SpecError, defaults_of

GOOD = """
from flowbench import FlowSpec, hookimpl
import flowbench_realnvp

@hookimpl
def flowbench_register_flows():
    return [FlowSpec(name="tinyflow", build=flowbench_realnvp.build,
                     description="a realnvp with other defaults", defaults={"layers": 2})]
"""


def test_builtins_come_from_entry_points() -> None:
    registry = load_registry(strict=True)
    assert registry.problems == []
    for kind, name, plugin in [("flow", "nice", "nice"), ("flow", "realnvp", "realnvp"),
                               ("flow", "glow", "glow"), ("flow", "maf", "maf"),
                               ("base", "bimodal", "bases"),
                               ("dataset", "two_moons", "toy2d"), ("suite", "toy2d", "toy2d"),
                               ("suite", "smoke", "toy2d")]:
        entry = registry.get(kind, name)
        assert entry.plugin == plugin
        assert "entry point" in entry.source and "flowbench-nf" in entry.source


def test_plugin_from_file(write_plugin) -> None:
    path = write_plugin("tiny_plugin", GOOD)
    registry = load_registry([str(path)], strict=True)
    entry = registry.get("flow", "tinyflow")
    assert entry.plugin == "tiny_plugin" and entry.source == f"-p {path}"
    model = flowbench.build_flow("tinyflow", "normal", (2,), registry=registry)
    assert len(model.layers()) == 2


def test_plugin_from_module_name(write_plugin, monkeypatch) -> None:
    path = write_plugin("my_module_plugin", GOOD)
    monkeypatch.syspath_prepend(str(path.parent))
    registry = load_registry(["my_module_plugin"], strict=True)
    assert registry.get("flow", "tinyflow").plugin == "my_module_plugin"
    sys.modules.pop("my_module_plugin", None)


def test_unmarked_hook_functions_are_still_found(write_plugin) -> None:
    path = write_plugin("unmarked", GOOD.replace("@hookimpl\n", ""))
    assert "tinyflow" in load_registry([str(path)], strict=True).flows


BROKEN = {
    "import_error": ("import no_such_module_anywhere\n", "failed to import"),
    "hook_raises": ("""
        from flowbench import hookimpl
        @hookimpl
        def flowbench_register_flows():
            raise RuntimeError("boom")
        """, "raised RuntimeError('boom')"),
    "not_a_list": ("""
        from flowbench import hookimpl
        @hookimpl
        def flowbench_register_bases():
            return "normal"
        """, "must return a list of BaseSpec"),
    "wrong_type": ("""
        from flowbench import hookimpl
        @hookimpl
        def flowbench_register_flows():
            return [{"name": "x"}]
        """, "is not a FlowSpec"),
    "bad_name": ("""
        from flowbench import FlowSpec, hookimpl
        @hookimpl
        def flowbench_register_flows():
            return [FlowSpec(name="Bad Name", build=lambda s: None, description="x")]
        """, "flow name 'Bad Name' is not valid"),
    "no_description": ("""
        from flowbench import BaseSpec, hookimpl
        @hookimpl
        def flowbench_register_bases():
            return [BaseSpec(name="nodesc", build=lambda s: None, description="")]
        """, "needs a one-line description"),
    "duplicate": ("""
        from flowbench import FlowSpec, hookimpl
        @hookimpl
        def flowbench_register_flows():
            return [FlowSpec(name="realnvp", build=lambda s: None, description="impostor")]
        """, "duplicate flow name 'realnvp': already registered by plugin 'realnvp'"),
    "bad_suite": ("""
        from flowbench import SuiteSpec, hookimpl
        @hookimpl
        def flowbench_register_suites():
            return [SuiteSpec(name="s", description="d", datasets=("two_moons",),
                              flows=("nice",), bases=("normal",), train={"stepz": 3})]
        """, "unknown training settings ['stepz']"),
    "typo_hook": ("""
        def flowbench_register_flow():
            return []
        """, "unknown hook 'flowbench_register_flow'; did you mean 'flowbench_register_flows'"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_plugin_is_reported_by_name_and_others_keep_working(case, write_plugin) -> None:
    source, expected = BROKEN[case]
    good = write_plugin("good_plugin", GOOD)
    broken = write_plugin(f"broken_{case}", source)
    with pytest.warns(PluginWarning) as caught:
        registry = load_registry([str(broken), str(good)])
    messages = [str(p) for p in registry.problems]
    assert len(messages) == 1, messages
    assert f"plugin 'broken_{case}' (-p {broken})" in messages[0]
    assert expected in messages[0]
    assert expected in str(caught[0].message)
    # everyone else is intact
    assert {"nice", "realnvp", "glow", "tinyflow"} <= set(registry.flows)
    assert registry.get("flow", "realnvp").plugin == "realnvp"
    assert "toy2d" in registry.suites
    with pytest.raises(PluginError, match=f"broken_{case}"):
        load_registry([str(broken), str(good)], strict=True)


def test_missing_plugin_file_is_a_problem_not_a_crash() -> None:
    with pytest.warns(PluginWarning, match="no such plugin file"):
        registry = load_registry(["does/not/exist.py"])
    assert "realnvp" in registry.flows


def test_unknown_name_lists_choices_and_closest_match() -> None:
    registry = load_registry(strict=True)
    with pytest.raises(UnknownNameError) as error:
        registry.get("flow", "realnpv")
    message = str(error.value)
    assert "unknown flow 'realnpv'" in message
    assert f"valid choices: {', '.join(sorted(registry.flows))}" in message
    assert {"glow", "nice", "realnvp"} <= set(registry.flows)
    assert "did you mean 'realnvp'?" in message


def test_build_flow_routes_and_checks_hyperparameters() -> None:
    registry = load_registry(strict=True)
    model = flowbench.build_flow("realnvp", "gmm", (2,), registry=registry, layers=3,
                                 components=4)
    assert len(model.layers()) == 3 and model.base.components == 4
    with pytest.raises(flowbench.HyperparameterError, match="unknown hyperparameter 'layerz'"):
        flowbench.build_flow("realnvp", "gmm", (2,), registry=registry, layerz=3)
    with pytest.raises(flowbench.HyperparameterError, match="does not accept"):
        flowbench.build_flow("nice", "normal", (2,), registry=registry,
                             base_hparams={"components": 3})


def test_list_records_name_their_plugin() -> None:
    records = load_registry(strict=True).as_records()
    flows = {r["name"]: r for r in records if r["kind"] == "flow"}
    assert flows["glow"]["plugin"] == "glow"
    assert "1807.03039" in flows["glow"]["reference"]


def _defaults_disagreeing(registry, source: str) -> list[tuple[str, str]]:
    """(kind, name) of every flow and base from ``source`` whose spec defaults are not exactly
    its builder's keyword defaults (names and values)."""
    entries = [registry.get(kind, name)
               for kind in ("flow", "base") for name in registry.names(kind)]
    return [(entry.kind, entry.spec.name) for entry in entries if source in entry.source
            and dict(entry.spec.defaults) != defaults_of(entry.spec.build)]


def test_builtin_defaults_are_stated_once_in_the_builders(write_plugin) -> None:
    registry = load_registry(strict=True)
    assert _defaults_disagreeing(registry, "flowbench-nf") == []
    assert defaults_of(registry.spec("flow", "realnvp").build)["layers"] == 8
    assert defaults_of(registry.spec("base", "gmm").build) == {"components": 8, "init_spread": 1.0}
    assert defaults_of(registry.spec("base", "normal").build) == {}
    # The check catches a spec whose defaults are not its builder's (GOOD's tinyflow: layers=2).
    path = write_plugin("tiny_plugin", GOOD)
    assert _defaults_disagreeing(load_registry([str(path)], strict=True), str(path)) == [
        ("flow", "tinyflow")]


def test_defaults_of_reads_keyword_defaults_and_refuses_what_it_cannot_read() -> None:
    def build(event_shape, layers=3, *, width=16, name="x"):
        return None

    assert defaults_of(build) == {"layers": 3, "width": 16, "name": "x"}
    with pytest.raises(SpecError, match="'width' has no default"):
        defaults_of(lambda event_shape, layers=2, *, width: None)
    with pytest.raises(SpecError, match=r"\*\*kwargs"):
        defaults_of(lambda event_shape, **hparams: None)
    with pytest.raises(SpecError, match="event shape"):
        defaults_of(lambda *, layers=2: None)


SCALED = """
from flowbench import FlowSpec, hookimpl
from flowbench.layers import Compose, DiagonalScaling

@hookimpl
def flowbench_register_flows():
    return [FlowSpec(name="scaled", build=lambda shape: Compose([DiagonalScaling(shape)]),
                     description="a diagonal scaling")]
"""

WRAPPER = """
from flowbench import hookimpl

@hookimpl(wrapper=True)
def flowbench_register_flows():
    results = yield
    # a wrapper sees every plugin's list and may change it: here it drops glow
    return [[spec for spec in specs if spec.name != "glow"] for specs in results]
"""


def test_hooks_go_through_pluggy_so_wrappers_work(write_plugin) -> None:
    paths = [write_plugin("scaled_flows", SCALED), write_plugin("wrapping", WRAPPER)]
    registry = load_registry([str(path) for path in paths], strict=True)
    assert "glow" not in registry.flows and {"nice", "realnvp"} <= set(registry.flows)
    assert registry.flows["scaled"].plugin == "scaled_flows"  # each spec keeps its plugin
    assert registry.flows["nice"].plugin == "nice"


def test_a_raising_hook_is_its_plugins_problem_only(write_plugin) -> None:
    path = write_plugin("raises", """
from flowbench import hookimpl

@hookimpl(tryfirst=True)
def flowbench_register_flows():
    raise RuntimeError("boom")
""")
    with pytest.warns(PluginWarning, match="boom"):
        registry = load_registry([str(path)])
    assert {"nice", "realnvp", "glow"} <= set(registry.flows)
    (problem,) = registry.problems
    assert problem.plugin == "raises" and "flowbench_register_flows() raised" in problem.message


FAMILY = """
import numpy as np
import torch
from flowbench import DatasetSpec, hookimpl
from flowbench.data import Dataset
from flowbench.specs import DatasetFamilySpec


def load(dim, seed):
    data = torch.as_tensor(np.random.default_rng(seed).normal(size=(30, dim)), dtype=torch.float32)
    return Dataset(name=f"cube-{dim}", train=data[:10], val=data[10:20], test=data[20:],
                   event_shape=(dim,))


def make(dim):
    return DatasetSpec(name=f"cube-{dim}", load=lambda seed: load(dim, seed),
                       description=f"a {dim}-D Gaussian", event_shape=(dim,))


def make_wrong(dim):
    return DatasetSpec(name="cube", load=lambda seed: load(dim, seed), description="x",
                       event_shape=(dim,))


@hookimpl
def flowbench_register_dataset_families():
    return [DatasetFamilySpec(name="cube", make=make, description="Gaussians", min_dim=2,
                              max_dim=100),
            DatasetFamilySpec(name="wrong", make=make_wrong, description="misnamed")]


@hookimpl
def flowbench_register_datasets():
    return [DatasetSpec(name="cube-3", load=lambda seed: load(3, seed),
                        description="registered by name", event_shape=(3,))]
"""


def test_a_dataset_family_makes_any_dimension_on_demand(write_plugin) -> None:
    registry = load_registry([str(write_plugin("family_plugin", FAMILY))], strict=True)
    assert registry.spec("dataset", "cube-3").description == "registered by name"  # names win
    made = registry.get("dataset", "cube-48")
    assert (made.plugin, made.spec.event_shape) == ("family_plugin", (48,))
    assert registry.get("dataset", "cube-48") is made  # made once, then kept
    data = flowbench.load_dataset("cube-48", seed=1, registry=registry)
    assert tuple(data.train.shape) == (10, 48)
    for name, words in [("cube-1", "has no D = 1"), ("cube-101", "has no D = 101"),
                        ("cube-07", "cube-<D> (2 <= D <= 100)"), ("cub-8", "did you mean")]:
        with pytest.raises(UnknownNameError, match=re.escape(words)):
            registry.get("dataset", name)
    with pytest.raises(PluginError, match=r"'wrong'.*returned dataset 'cube' of shape \(5,\), "
                                          r"not 'wrong-5'"):
        registry.get("dataset", "wrong-5")
    listed = {r["name"]: r for r in registry.as_records() if r["kind"] == "family"}
    assert "cube-<D> (2 <= D <= 100)" in listed["cube"]["description"]


def test_a_dataset_family_spec_is_validated(write_plugin) -> None:
    bad = FAMILY.replace("min_dim=2,", "min_dim=0,")
    registry = load_registry([str(write_plugin("bad_family", bad))], warn=False)
    assert any("min_dim must be an integer >= 1" in p.message for p in registry.problems)
