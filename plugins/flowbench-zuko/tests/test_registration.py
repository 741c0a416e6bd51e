"""What the plugin registers, through the installed entry point."""

from __future__ import annotations

import pytest

import flowbench
from flowbench.specs import defaults_of
from flowbench_zuko import FAMILIES, LEFT_OUT
from flowbench_zuko.plugin import SEARCH_SPACES, libraries_suite

EXPECTED = ["zuko-bpf", "zuko-cnf", "zuko-gf", "zuko-maf", "zuko-naf", "zuko-nice", "zuko-nsf",
            "zuko-realnvp", "zuko-sospf", "zuko-unaf"]


def test_every_family_is_registered_through_the_entry_point(registry):
    names = sorted(n for n in registry.names("flow") if n.startswith("zuko-"))
    assert names == EXPECTED
    for name in names:
        entry = registry.get("flow", name)
        assert "flowbench-zuko" in entry.source and "flowbench_zuko.plugin" in entry.source
        assert dict(entry.spec.defaults) == defaults_of(entry.spec.build)
        assert "arXiv:" in entry.spec.reference and "zuko" in entry.spec.reference
        assert entry.spec.data_kinds == ("vector",)
    assert set(LEFT_OUT) == {"NCSF", "GMM"}


def test_defaults_are_zukos():
    import inspect

    import zuko

    for family, (build, _, _) in FAMILIES.items():
        zuko_class = getattr(zuko.flows, {"realnvp": "RealNVP"}.get(family, family.upper()))
        ours = defaults_of(build)
        for name, parameter in inspect.signature(zuko_class).parameters.items():
            if name in ours:
                assert ours[name] == parameter.default, (family, name)
    assert defaults_of(FAMILIES["maf"][0])["hidden_features"] == (64, 64)  # zuko.nn.MaskedMLP's
    assert defaults_of(FAMILIES["cnf"][0])["activation"] == "elu"  # FFJTransform's ELU


def test_libraries_suite_includes_nsf_only_when_installed(registry):
    suite = registry.spec("suite", "libraries")
    assert suite.bases == ("normal",) and suite.seeds == (0, 1, 2)
    assert {"zuko-realnvp", "zuko-maf", "zuko-nsf", "zuko-naf"} <= set(suite.flows)
    assert ("nsf" in suite.flows) == ("nsf" in registry.names("flow"))
    assert "nsf" not in libraries_suite(with_nsf=False).flows
    assert "nsf" in libraries_suite(with_nsf=True).flows
    for name in suite.flows:  # every flow's matched sizes are real hyperparameters of it
        assert set(suite.flow_hparams[name]) <= set(registry.spec("flow", name).defaults)


@pytest.mark.parametrize("family", sorted(SEARCH_SPACES))
def test_search_space_builds(registry, family):
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    hparams = SEARCH_SPACES[family](trial)
    assert set(hparams) <= set(registry.spec("flow", f"zuko-{family}").defaults)
    assert trial.params == hparams  # flowbench tune reads the best trial's params back as hparams
    flow = flowbench.build_flow(f"zuko-{family}", "normal", (3,), registry=registry, **hparams)
    assert flow.log_prob(__import__("torch").randn(4, 3)).shape == (4,)


def test_bad_values_are_named(registry):
    with pytest.raises(ValueError, match=r"zuko-maf models vectors \(D,\); got event shape "
                                         r"\(1, 4, 4\)"):
        flowbench.build_flow("zuko-maf", "normal", (1, 4, 4), registry=registry)
    with pytest.raises(ValueError, match="unknown activation 'swish'; valid choices: relu, elu"):
        flowbench.build_flow("zuko-nsf", "normal", (2,), registry=registry, activation="swish")
    with pytest.raises(ValueError, match=r"hidden_features must be .* got \(64, 0\)"):
        flowbench.build_flow("zuko-realnvp", "normal", (2,), registry=registry,
                             hidden_features=(64, 0))
    with pytest.raises(ValueError, match="zuko-nsf: bins must be a positive integer, got 0"):
        flowbench.build_flow("zuko-nsf", "normal", (2,), registry=registry, bins=0)
    with pytest.raises(flowbench.HyperparameterError):
        flowbench.build_flow("zuko-maf", "normal", (2,), registry=registry, layers=3)


def test_hidden_features_string_form(registry):
    flow = flowbench.build_flow("zuko-realnvp", "normal", (4,), registry=registry,
                                hidden_features="32x16", transforms=2)
    widths = [m.out_features for m in flow.modules() if type(m).__name__ == "Linear"]
    assert widths[:3] == [32, 16, 4]  # 2 kept features -> shift and scale for the other 2
