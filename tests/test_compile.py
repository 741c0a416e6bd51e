"""The opt-in compiled training mode: it compiles for real, and falls back cleanly otherwise."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import make_moons

import flowbench
import flowbench.compile as compile_module
from flowbench.compile import CompileUnavailable, compile_unavailable_reason
from flowbench.layers import FixedAffine
from flowbench.plan import plan_run
from flowbench.train import TrainConfig, evaluate_nll, fit


@pytest.fixture(scope="module")
def moons() -> tuple[torch.Tensor, torch.Tensor]:
    x, _ = make_moons(2000, noise=0.05, random_state=0)
    x = torch.as_tensor(x, dtype=torch.float32)
    return x[:1500], x[1500:]


SMALL = {"realnvp": {"layers": 4, "width": 16}, "glow": {"steps": 2, "width": 16},
         "maf": {"layers": 3, "width": 16}}


def make(flow: str, train: torch.Tensor) -> flowbench.Flow:
    torch.manual_seed(0)
    return flowbench.build_flow(flow, "normal", (2,), **SMALL[flow],
                                preprocessing=FixedAffine.standardize(train))


def test_compile_setting_is_part_of_the_cell_identity_only_when_set() -> None:
    registry = flowbench.get_registry()
    eager = plan_run(registry, "smoke")
    compiled = plan_run(registry, "smoke", compile=True)
    assert "compile" not in eager.train  # ids of every earlier eager run stay valid
    assert compiled.train["compile"] is True
    assert {c.cell_id for c in eager.cells}.isdisjoint(c.cell_id for c in compiled.cells)
    assert eager.config_hash() != compiled.config_hash()


def test_unavailable_compiler_trains_eagerly_with_a_warning(moons, monkeypatch) -> None:
    train, val = moons
    monkeypatch.setattr(compile_module, "compile_unavailable_reason",
                        lambda: "no C++ compiler found ('g++' is not on PATH)")
    config = TrainConfig(steps=40, eval_every=20)
    with pytest.warns(CompileUnavailable, match="no C.. compiler.*training eagerly"):
        result = fit(make("realnvp", train), train, val,
                     TrainConfig(**{**config.as_dict(), "compile": True}), seed=0)
    eager = fit(make("realnvp", train), train, val, config, seed=0)
    assert not result.compiled and result.status == "ok"
    assert result.best_val_nll == eager.best_val_nll  # the very same eager training


@pytest.mark.parametrize("flow", ["realnvp", "glow", "maf"])
def test_compiler_failure_restores_state_and_trains_eagerly(moons, monkeypatch, flow) -> None:
    """A compiler that fails on the first call (as inductor does without a working toolchain):
    whatever the attempt touched is restored, so the run equals an eager one bit for bit."""
    train, val = moons

    def broken_compile(fn, **kwargs):
        def call(x):
            fn(x)  # the attempt runs (and could update buffers) before it fails
            raise RuntimeError("InductorError: C++ compile error\nmore details")
        return call

    monkeypatch.setattr(compile_module, "compile_unavailable_reason", lambda: None)
    monkeypatch.setattr(torch, "compile", broken_compile)
    config = TrainConfig(steps=40, eval_every=20)
    compiled_flow = make(flow, train)
    with pytest.warns(CompileUnavailable, match="compilation failed .RuntimeError: Inductor"):
        result = fit(compiled_flow, train, val,
                     TrainConfig(**{**config.as_dict(), "compile": True}), seed=0)
    eager_flow = make(flow, train)
    fit(eager_flow, train, val, config, seed=0)
    assert not result.compiled
    for (name, a), (_, b) in zip(compiled_flow.state_dict().items(),
                                 eager_flow.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.slow
@pytest.mark.skipif(compile_unavailable_reason() is not None,
                    reason=f"torch.compile unavailable: {compile_unavailable_reason()}")
@pytest.mark.parametrize("flow", ["realnvp", "glow", "maf"])
def test_compiled_training_matches_eager_quality(moons, flow) -> None:
    train, val = moons
    config = TrainConfig(steps=300, eval_every=100)
    eager_flow, compiled_flow = make(flow, train), make(flow, train)
    eager = fit(eager_flow, train, val, config, seed=0)
    compiled = fit(compiled_flow, train, val,
                   TrainConfig(**{**config.as_dict(), "compile": True}), seed=0)
    assert compiled.compiled and compiled.status == "ok"
    # the same optimisation up to floating-point reassociation
    assert compiled.best_val_nll == pytest.approx(eager.best_val_nll, abs=0.02)
    assert evaluate_nll(compiled_flow, val) == pytest.approx(compiled.best_val_nll, abs=1e-6)
