"""`flowbench check`: passes correct flows, catches each kind of broken one, says which check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import flowbench
from flowbench.testing import check_registered, summarise

BROKEN = str(Path(__file__).parent / "plugins" / "broken_flows.py")


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_builtin_flow_passes_every_check() -> None:
    result = check("check", "realnvp", "--base", "bimodal", "--set", "width=16")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert lines and all(line.startswith("PASS") for line in lines)
    names = {line.split()[2] for line in lines}
    assert {"invertibility", "logdet", "normalisation", "sampling", "mean_log_density",
            "sample_consistency", "reload_log_prob", "reload_no_reinit", "determinism"} <= names
    # each line has the measured error and its tolerance
    assert all(" error " in line and ("<=" in line) for line in lines)
    assert f"all {len(lines)} checks passed" in result.stdout


@pytest.mark.parametrize("flow,failing", [
    ("wrong_sign", "logdet"),
    ("missing_term", "logdet"),
    ("wrong_inverse", "invertibility"),
    ("forgets_state", "reload_log_prob"),
    ("unseeded", "determinism"),
])
def test_broken_flows_are_caught(flow: str, failing: str) -> None:
    result = check("-p", BROKEN, "check", flow)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert any(line.split()[2] == failing for line in failed), result.stdout
    assert "check(s) failed" in result.stdout


def test_missing_term_is_blamed_on_the_right_layer() -> None:
    registry = flowbench.load_registry([BROKEN], strict=True)
    report = check_registered("missing_term", registry=registry)
    bad_layers = {r.detail for r in report.failures if r.name == "logdet"}
    assert "layer 2 ScalingWithoutLogdet" in bad_layers
    assert not any("AffineCoupling" in d for d in bad_layers)
    assert {r.name for r in summarise(report) if not r.passed} >= {"logdet"}


@pytest.mark.parametrize("args,message", [
    (["check", "realnpv"], "did you mean 'realnvp'"),
    (["check", "realnvp", "--base", "gauss"], "unknown base 'gauss'"),
    (["check", "realnvp", "--set", "widht=3"], "did you mean 'width'"),
    (["check", "realnvp", "--shape", "2x"], "--shape takes integers"),
])
def test_bad_check_input(args, message: str) -> None:
    result = check(*args)
    assert result.returncode == 2 and message in result.stderr


def test_check_in_higher_dimension_skips_density_checks() -> None:
    result = check("check", "glow", "--shape", "5", "--set", "steps=2", "--set", "width=8")
    assert result.returncode == 0, result.stdout
    assert "normalisation" not in result.stdout and "reload_log_prob" in result.stdout
