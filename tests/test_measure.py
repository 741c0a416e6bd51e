"""Measurements: timing mechanics, the log-det cost table (analytic vs brute force), the 1x1-conv
cost table, exponent fitting and throughput. Only ratios of times are asserted, never absolute
times: the machine is shared and its speed unknown."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

import flowbench
from flowbench.layers import DiagonalScaling
from flowbench.measure import (
    Timing, exponents, fit_exponent, linear_cost, logdet_cost, throughput, time_call,
)

torch.set_num_threads(1)

LOGDET_COLUMNS = ["flow", "base", "dim", "path", "seconds_median", "seconds_iqr",
                  "per_example_seconds", "repeats", "batch", "max_abs_error", "threads"]
EXPONENT_COLUMNS = ["flow", "base", "path", "exponent_all", "exponent_large",
                    "seconds_at_max_dim", "max_dim"]


def test_time_call_returns_positive_medians_and_the_repeats() -> None:
    timing = time_call(lambda: sum(range(100)), repeats=4, warmup=1, min_seconds=0.005)
    assert isinstance(timing, Timing)
    assert timing.repeats == 4 and len(timing.values) == 4
    assert timing.median > 0 and all(value > 0 for value in timing.values)
    assert timing.iqr >= 0
    assert min(timing.values) <= timing.median <= max(timing.values)


def test_a_slower_function_times_slower() -> None:
    noop = time_call(lambda: None, repeats=3, min_seconds=0.01)
    sleep = time_call(lambda: time.sleep(0.002), repeats=3, min_seconds=0.01)
    # a no-op costs well under a microsecond; the sleep at least 2 ms, whatever the load
    assert sleep.median / noop.median > 100
    assert sleep.median >= 0.002


def test_time_call_rejects_zero_repeats() -> None:
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)


@pytest.fixture(scope="module")
def logdet_tables() -> dict[str, pd.DataFrame]:
    return {flow: logdet_cost(flow, "normal", dims=(2, 8, 32), repeats=3)
            for flow in ("nice", "realnvp", "glow", "maf")}


@pytest.mark.parametrize("flow", ["nice", "realnvp", "glow", "maf"])
def test_logdet_cost_analytic_matches_brute_force(logdet_tables, flow: str) -> None:
    table = logdet_tables[flow]
    assert list(table.columns[: len(LOGDET_COLUMNS)]) == LOGDET_COLUMNS
    assert len(table) == 6
    assert set(table["path"]) == {"analytic", "brute_force"}
    assert sorted(table["dim"].unique()) == [2, 8, 32]
    for dim, rows in table.groupby("dim"):
        assert set(rows["path"]) == {"analytic", "brute_force"}, dim
    assert (table["max_abs_error"] < 1e-6).all(), table[["dim", "max_abs_error"]]
    assert (table["seconds_median"] > 0).all() and (table["seconds_iqr"] >= 0).all()
    assert np.allclose(table["per_example_seconds"], table["seconds_median"] / table["batch"])
    assert (table["threads"] == torch.get_num_threads()).all()
    assert (table["jacobian"][table["path"] == "brute_force"] == "vmap").all()


@pytest.mark.parametrize("flow", ["nice", "realnvp", "glow", "maf"])
def test_brute_force_is_slower_than_analytic_at_d32(logdet_tables, flow: str) -> None:
    table = logdet_tables[flow].set_index(["dim", "path"])["seconds_median"]
    # the brute force runs the same forward pass inside 32 vmapped backward passes, then slogdet
    assert table[(32, "brute_force")] / table[(32, "analytic")] > 1


def test_logdet_cost_error_catches_a_wrong_logdet(monkeypatch) -> None:
    """A flow whose analytic log-det is off must show it in max_abs_error."""
    forward = DiagonalScaling.forward

    def wrong_sign(self, x):
        z, logabsdet = forward(self, x)
        return z, -logabsdet

    monkeypatch.setattr(DiagonalScaling, "forward", wrong_sign)
    table = logdet_cost("nice", "normal", dims=(4,), repeats=1)
    assert (table["max_abs_error"] > 1e-3).all()


def test_logdet_cost_falls_back_to_a_loop_without_vmap(write_plugin) -> None:
    path = write_plugin("branchy_plugin", """
        import math
        import torch
        from flowbench import FlowSpec, hookimpl
        from flowbench.layers import Transform

        class Branchy(Transform):
            # data-dependent control flow (always the same branch here): vmap cannot batch it
            def forward(self, x):
                scale = 2.0 if bool(torch.isfinite(x).all()) else 3.0
                return x * scale, x.new_full((x.shape[0],), x.shape[1] * math.log(scale))

            def inverse(self, z):
                raise NotImplementedError

        @hookimpl
        def flowbench_register_flows():
            return [FlowSpec(name="branchy", build=lambda shape: Branchy(),
                             description="doubles finite inputs")]
        """)
    registry = flowbench.load_registry([str(path)], strict=True)
    table = logdet_cost("branchy", "normal", dims=(3,), repeats=1, registry=registry)
    assert list(table["jacobian"]) == ["none", "loop"]
    assert (table["max_abs_error"] < 1e-10).all()


def test_logdet_cost_budget_skips_larger_dims_without_fake_rows() -> None:
    with pytest.warns(UserWarning, match=r"skipped dims \[8, 16\]"):
        table = logdet_cost("nice", "normal", dims=(16, 2, 8), repeats=1, max_seconds=0.0)
    assert list(table["dim"].unique()) == [2]
    assert table.attrs["skipped_dims"] == [8, 16]


def test_brute_force_budget_stops_growing_d_and_says_why() -> None:
    measured = logdet_cost("nice", "normal", dims=(2, 64, 256), repeats=1,
                           brute_force_budget=1e-6)  # every call is over: stop after D = 2
    brute = measured[measured["path"] == "brute_force"].set_index("dim")
    assert brute.loc[2, "status"] == "ok" and brute.loc[2, "seconds_median"] > 1e-6
    assert list(brute.loc[[64, 256], "status"]) == ["skipped", "skipped"]
    assert brute.loc[64, "message"].startswith("brute force not measured above D = 2: one call "
                                               "took")
    assert measured[measured["path"] == "analytic"]["dim"].tolist() == [2, 64, 256]
    # a budget the first call meets, but D^2 growth from it would not: skipped before timing
    first = float(brute.loc[2, "seconds_median"])
    predicted = logdet_cost("nice", "normal", dims=(2, 64), repeats=1,
                            brute_force_budget=first * 100)
    row = predicted[(predicted["path"] == "brute_force") & (predicted["dim"] == 64)].iloc[0]
    assert row["status"] == "skipped" and "would take about" in row["message"]
    assert "growing at least like D^2" in row["message"]


def test_exponents_of_a_measured_table(logdet_tables) -> None:
    table = exponents(pd.concat(logdet_tables.values(), ignore_index=True))
    assert list(table.columns[: len(EXPONENT_COLUMNS)]) == EXPONENT_COLUMNS
    assert len(table) == 2 * len(logdet_tables)  # flows x 2 paths
    assert (table["max_dim"] == 32).all()
    assert table[["exponent_all", "exponent_large"]].notna().all().all()
    brute = table[table["path"] == "brute_force"]
    assert (brute["ratio_to_analytic"] > 1).all()
    assert (table.loc[table["path"] == "analytic", "ratio_to_analytic"] == 1).all()


def test_exponents_recovers_known_scalings() -> None:
    dims = [2, 8, 32, 128, 512]
    rows = []
    for dim in dims:
        rows.append({"flow": "f", "base": "b", "dim": dim, "path": "analytic",
                     "seconds_median": 1e-6 * dim})
        # flat (overhead-dominated) below 32, cubic above: exponent_large sees only the cube
        rows.append({"flow": "f", "base": "b", "dim": dim, "path": "brute_force",
                     "seconds_median": 1e-3 * max(dim, 32) ** 3 / 32**3})
    table = exponents(pd.DataFrame(rows)).set_index("path")
    assert table.loc["analytic", "exponent_all"] == pytest.approx(1.0)
    assert table.loc["brute_force", "exponent_large"] == pytest.approx(3.0)
    assert table.loc["brute_force", "exponent_all"] < 3.0
    assert table.loc["brute_force", "max_dim"] == 512
    assert table.loc["brute_force", "ratio_to_analytic"] == pytest.approx(
        1e-3 * 16**3 / (1e-6 * 512))


def test_fit_exponent_recovers_a_known_exponent() -> None:
    dims = [2, 8, 32, 128, 512]
    assert fit_exponent(dims, [3e-9 * d**2 for d in dims]) == pytest.approx(2.0)
    assert fit_exponent(dims, [5e-4 + 0 * d for d in dims]) == pytest.approx(0.0, abs=1e-12)
    overhead_then_cubic = [max(d, 32) ** 3 for d in dims]
    assert fit_exponent(dims, overhead_then_cubic, min_dim=32) == pytest.approx(3.0)


def test_fit_exponent_is_nan_without_two_points() -> None:
    assert math.isnan(fit_exponent([128], [0.1]))
    assert math.isnan(fit_exponent([8, 128], [0.1, 0.2], min_dim=100))
    assert math.isnan(fit_exponent([], []))


def test_linear_cost_rows_and_lu_logdet_beats_slogdet() -> None:
    table = linear_cost(channels=(4, 256), repeats=3)
    assert list(table.columns[:6]) == ["layer", "channels", "operation", "seconds_median",
                                       "seconds_iqr", "repeats"]
    assert len(table) == 2 * 2 * 3
    assert set(table["layer"]) == {"lu", "plain"}
    assert set(table["operation"]) == {"logdet", "forward", "inverse"}
    assert (table.groupby(["layer", "channels"]).size() == 3).all()
    assert (table["seconds_median"] > 0).all() and (table["repeats"] == 3).all()
    seconds = table.set_index(["layer", "channels", "operation"])["seconds_median"]
    # a sum of 256 numbers against an LU factorisation of a 256 x 256 matrix
    assert seconds[("plain", 256, "logdet")] / seconds[("lu", 256, "logdet")] > 2


def test_throughput_keys_positive() -> None:
    torch.manual_seed(0)
    flow = flowbench.build_flow("realnvp", "normal", (2,), layers=2, width=16)
    flow.train()
    result = throughput(flow, torch.randn(50, 2), batch_size=128, repeats=2)
    assert set(result) == {"log_prob_examples_per_second", "log_prob_examples_per_second_iqr",
                           "sample_examples_per_second", "sample_examples_per_second_iqr"}
    assert all(math.isfinite(value) for value in result.values())
    assert result["log_prob_examples_per_second"] > 0
    assert result["sample_examples_per_second"] > 0
    assert min(result.values()) >= 0
    assert flow.training  # mode restored
    # the reported rates agree with a plain timed loop of the same calls (a loose factor: the
    # machine is shared, the point is catching a wrong batch count or a unit slip)
    flow.eval()
    x = torch.randn(50, 2).repeat(3, 1)[:128]
    with torch.no_grad():
        for name, call in (("log_prob", lambda: flow.log_prob(x)),
                           ("sample", lambda: flow.sample(128))):
            call()
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < 0.3:
                call()
                calls += 1
            looped = 128 * calls / (time.perf_counter() - start)
            assert 1 / 4 < result[f"{name}_examples_per_second"] / looped < 4, (name, looped)
