"""The runner on real cells: records, resume, crash tolerance, -j equivalence, bad cells."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import flowbench
from flowbench.report.tables import format_nll_table, nll_summary
from flowbench.plan import PlanError, plan_run
from flowbench.runner import execute
from flowbench.store import RECORDS, RunStore

FAULTY = str(Path(__file__).parent / "plugins" / "faulty.py")


@pytest.fixture(scope="module")
def registry() -> flowbench.Registry:
    return flowbench.load_registry([FAULTY], strict=True)


def smoke_plan(registry, **overrides):
    options = dict(datasets=["two_moons"], flows=["nice", "realnvp"], bases=["normal"],
                   seeds=[0, 1], steps=20)
    options.update(overrides)
    return plan_run(registry, "smoke", **options)


def test_smoke_run_records_every_cell(registry, tmp_path: Path) -> None:
    plan = plan_run(registry, "smoke")
    store = RunStore(tmp_path)
    seen = []
    records = execute(plan, store, on_record=lambda r, done, total: seen.append((done, total)))
    assert len(records) == len(plan.cells) == 12
    assert seen[-1] == (12, 12)
    for record in records:
        assert record["status"] == "ok", record.get("message")
        for key in ("train_nll", "val_nll", "test_nll", "oracle_test_nll", "entropy", "gap"):
            assert isinstance(record[key], float) and record[key] == record[key], key
        assert record["gap"] == pytest.approx(record["test_nll"] - record["oracle_test_nll"])
        assert record["n_params"] > 0 and record["history"][0]["step"] == 0
        assert (store.models / f"{record['cell_id']}.pt").is_file()
        parts = [record[key] for key in ("setup_seconds", "train_seconds", "eval_seconds",
                                         "final_eval_seconds", "speed_seconds")]
        assert all(part > 0 for part in parts) and sum(parts) <= record["wall_seconds"]
        assert record["compiled"] is False
    # results.csv rows agree with the records
    table = store.write_table(records)
    on_disk = pd.read_csv(tmp_path / "results.csv")
    assert len(on_disk) == 12
    by_id = {r["cell_id"]: r for r in records}
    for _, row in on_disk.iterrows():
        assert row["test_nll"] == pytest.approx(by_id[row["cell_id"]]["test_nll"])
    assert set(table["status"]) == {"ok"}


def test_saved_model_reloads_to_the_same_density(registry, tmp_path: Path) -> None:
    plan = smoke_plan(registry, flows=["glow"], seeds=[0])
    record = execute(plan, RunStore(tmp_path))[0]
    dataset = flowbench.load_dataset("two_moons", registry=registry)
    flow = flowbench.build_flow(
        "glow", "normal", (2,), registry=registry, flow_hparams=record["flow_hparams"],
        preprocessing=flowbench.layers.FixedAffine.standardize(dataset.train))
    flow.load_state_dict(torch.load(tmp_path / "models" / f"{record['cell_id']}.pt"))
    flow.eval()
    with torch.no_grad():
        test_nll = float(-flow.log_prob(dataset.test).double().mean())
    assert test_nll == pytest.approx(record["test_nll"], abs=1e-5)


def test_rerun_skips_finished_cells(registry, tmp_path: Path) -> None:
    plan = smoke_plan(registry)
    store = RunStore(tmp_path)
    first = execute(plan, store)
    lines = (tmp_path / RECORDS).read_text().splitlines()
    calls = []
    second = execute(plan, store, on_record=lambda *args: calls.append(args))
    assert calls == []
    assert (tmp_path / RECORDS).read_text().splitlines() == lines
    assert [r["test_nll"] for r in second] == [r["test_nll"] for r in first]


def test_torn_last_line_is_skipped_and_that_cell_rerun(registry, tmp_path: Path) -> None:
    plan = smoke_plan(registry)
    store = RunStore(tmp_path)
    execute(plan, store)
    lines = (tmp_path / RECORDS).read_text().splitlines()
    # simulate a crash in the middle of writing the last record
    (tmp_path / RECORDS).write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    with pytest.warns(UserWarning, match="unreadable record skipped"):
        assert len(store.records()) == len(lines) - 1
    redone = []
    with pytest.warns(UserWarning):
        records = execute(plan, store, on_record=lambda r, *_: redone.append(r["cell_id"]))
    assert redone == [json.loads(lines[-1])["cell_id"]]
    assert len(records) == len(plan.cells)


def test_parallel_workers_give_identical_numbers(registry, tmp_path: Path) -> None:
    plan = smoke_plan(registry, flows=["nice", "glow"])
    serial = execute(plan, RunStore(tmp_path / "serial"), jobs=1)
    parallel = execute(plan, RunStore(tmp_path / "parallel"), jobs=2)
    assert [r["cell_id"] for r in serial] == [r["cell_id"] for r in parallel]
    assert [r["test_nll"] for r in serial] == [r["test_nll"] for r in parallel]
    assert [r["history"] for r in serial] == [r["history"] for r in parallel]


def test_bad_cells_are_recorded_and_never_averaged(registry, tmp_path: Path) -> None:
    plan = plan_run(registry, "faulty")
    records = {r["flow"]: r for r in execute(plan, RunStore(tmp_path))}
    assert records["nice"]["status"] == "ok"
    assert records["explodes"]["status"] == "failed"
    assert "RuntimeError: this flow cannot be built" in records["explodes"]["message"]
    assert records["blows_up"]["status"] == "diverged"
    assert "non-finite training loss at step 6" in records["blows_up"]["message"]
    table = nll_summary(records.values())
    summary = table.set_index("flow")
    assert summary.loc["explodes", "failed"] == 1 and summary.loc["blows_up", "diverged"] == 1
    assert pd.isna(summary.loc["blows_up", "test_nll_mean"])
    assert bool(summary.loc["nice", "best"])
    text = format_nll_table(table)
    assert "0/1 (1 diverged)" in text and "0/1 (1 failed)" in text


def test_plan_checks_names_before_training(registry) -> None:
    with pytest.raises(flowbench.UnknownNameError, match="did you mean 'realnvp'"):
        plan_run(registry, "smoke", flows=["realnvp", "realnpv"])
    with pytest.raises(flowbench.UnknownNameError, match="unknown dataset 'moons'"):
        plan_run(registry, "smoke", datasets=["moons"])
    with pytest.raises(flowbench.UnknownNameError, match="unknown suite"):
        plan_run(registry, "toy2", datasets=["moons"])
    with pytest.raises(PlanError, match="steps must be >= 1"):
        plan_run(registry, "smoke", steps=0)


def test_cell_ids_follow_what_was_trained(registry) -> None:
    a = smoke_plan(registry).cells
    b = smoke_plan(registry, steps=21).cells
    assert len({c.cell_id for c in a}) == len(a)
    assert not {c.cell_id for c in a} & {c.cell_id for c in b}
    assert smoke_plan(registry).config_hash() == smoke_plan(registry).config_hash()
