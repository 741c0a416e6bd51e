"""Image flows and the digits pipeline: conformance on small shapes, dequantisation, logit
preprocessing, bits per dimension, references and sample figures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import flowbench
from flowbench.data.images import load_digits
from flowbench.layers import Compose, Logit, Multiscale
from flowbench.report.build import write_report
from flowbench.api import build_cell_flow
from flowbench.data.preprocessing import preprocessing_for
from flowbench.plan import plan_run
from flowbench.runner import execute, run_references
from flowbench.store import RunStore
from flowbench.testing import check_flow, check_registered, summarise
from flowbench.data.dequantise import DEQUANTISE_SEEDS
from flowbench.train import evaluate_nll

REGISTRY = flowbench.load_registry(strict=True)
SMALL = {"realnvp": {"hidden": 8, "blocks": 1}, "glow": {"steps": 2, "hidden": 8},
         "nice": {"width": 16, "layers": 2}}


@pytest.mark.parametrize("shape", [(1, 4, 4), pytest.param((3, 4, 4), marks=pytest.mark.slow)])
@pytest.mark.parametrize("flow", ["nice", "realnvp", "glow"])
def test_image_flows_conform(flow: str, shape) -> None:
    """Invertible, exact log-det against brute force at init / trained / perturbed, reload and
    determinism, for every image flow on small images."""
    report = check_registered(flow, "normal", shape, registry=REGISTRY, hparams=SMALL[flow])
    assert report.passed, "\n".join(str(r) for r in report.failures)
    stages = {r.stage for r in summarise(report)}
    assert {"init", "trained", "perturbed", "reload", "seeded"} <= stages


def test_image_architectures_have_the_papers_structure() -> None:
    realnvp = flowbench.build_flow("realnvp", "normal", (1, 8, 8), registry=REGISTRY)
    multiscale = realnvp.transform
    assert isinstance(multiscale, Multiscale) and realnvp.base.event_shape == (64,)
    names = [type(layer).__name__ for layer in multiscale.leaves()]
    # scale 1: 3 checkerboard couplings, squeeze, 3 channel couplings (each + batch norm);
    # last scale: 4 checkerboard couplings
    assert names.count("AffineCoupling") == 10 and names.count("Squeeze") == 1
    assert names.count("BatchNormFlow") == 10
    assert multiscale.split == (True, False)
    glow = flowbench.build_flow("glow", "normal", (1, 8, 8), registry=REGISTRY, steps=3)
    names = [type(layer).__name__ for layer in glow.transform.leaves()]
    assert names.count("Squeeze") == 2 and names.count("ActNorm") == 6
    assert names.count("LUInvertibleLinear") == 6 and glow.transform.split == (True, False)
    nice = flowbench.build_flow("nice", "normal", (1, 8, 8), registry=REGISTRY)
    assert type(nice.transform.transforms[0]).__name__ == "Flatten"
    with pytest.raises(ValueError, match="divisible by 4"):
        flowbench.build_flow("glow", "normal", (1, 6, 6), registry=REGISTRY)


def test_preprocessing_counts_its_logdet_in_original_pixel_units() -> None:
    digits = load_digits(0)
    pre = preprocessing_for(digits)
    assert isinstance(pre, Compose) and isinstance(pre.transforms[1], Logit)
    torch.manual_seed(0)
    flow = build_cell_flow({"flow": "glow", "base": "normal", "flow_hparams": SMALL["glow"],
                            "base_hparams": {}}, digits, REGISTRY)
    data = digits.train[:512] + torch.rand(512, 1, 8, 8)  # dequantised pixels in [0, 17)
    report = check_flow(flow, data.double(), per_layer=False, n=4, train_steps=5)
    assert report.passed, "\n".join(str(r) for r in report.failures)
    without_logit = preprocessing_for(digits, {"logit": False})
    assert not isinstance(without_logit, Compose)
    with pytest.raises(flowbench.specs.SpecError, match="unknown preprocessing"):
        preprocessing_for(digits, {"logt": True})


def test_digits_smoke_run_reports_bits_per_dimension(tmp_path: Path) -> None:
    plan = plan_run(REGISTRY, "digits-smoke")
    store = RunStore(tmp_path)
    store.write_config({**plan.config(), "config_hash": plan.config_hash()})
    records = execute(plan, store)
    assert {r["status"] for r in records} == {"ok"}
    for record in records:
        for split in ("train", "val", "test"):
            assert record[f"{split}_bpd"] == pytest.approx(
                record[f"{split}_nll"] / (64 * math.log(2)))
    # the test NLL is evaluated on a fixed dequantisation: the same number when re-evaluated
    run = flowbench.report.rundata.RunData.load(tmp_path)
    digits = load_digits(0)
    for record in records:
        flow = run.load_flow(record)
        again = evaluate_nll(flow, digits.test, noise_seed=DEQUANTISE_SEEDS["test"])
        assert again == pytest.approx(record["test_nll"], abs=1e-5)
        # bits/dim against the known value: the learned transform and base applied by hand
        # to the logit of the rescaled dequantised pixels, with that preprocessing's log-det
        # written out, so a missing or wrong rescaling term changes the number
        u = (digits.test + torch.rand(digits.test.shape, dtype=digits.test.dtype,
                                      generator=torch.Generator().manual_seed(1002))).double()
        alpha, levels = 0.05, digits.levels
        p = alpha + (1 - 2 * alpha) * u / levels
        y = torch.log(p) - torch.log1p(-p)
        per_pixel = math.log((1 - 2 * alpha) / levels) - torch.log(p) - torch.log1p(-p)
        with torch.no_grad():
            flow = flow.double()
            z, core = flow.transform(y)
            log_prob = flow.base.log_prob(z) + core + per_pixel.flatten(1).sum(1)
        known = float(-log_prob.mean()) / (64 * math.log(2))
        assert record["test_bpd"] == pytest.approx(known, abs=1e-4)

    rows = run_references("digits", 0)
    store.append_rows("references", rows)
    methods = {row["method"]: row for row in rows}
    assert set(methods) == {"histogram", "gaussian", "gmm"}
    assert all(0 < row["test_bpd"] < math.log2(17) for row in rows)
    result = write_report([tmp_path])
    text = result.markdown.read_text()
    line = next(row for row in text.splitlines() if row.startswith("| digits | bits/dim"))
    gaussian = f"{methods['gaussian']['test_bpd']:.4f}"
    assert gaussian in line  # the references are shown in bits/dim too
    assert (tmp_path / "figures" / "image_samples_digits.png").is_file()
    assert "image_samples_digits.png" in text


def test_temperature_scales_the_base_noise() -> None:
    flow = flowbench.build_flow("realnvp", "normal", (1, 4, 4), registry=REGISTRY,
                                **SMALL["realnvp"]).eval()
    with torch.no_grad():
        z1, _ = flow(flow.sample(8, torch.Generator().manual_seed(0), temperature=1.0))
        z7, _ = flow(flow.sample(8, torch.Generator().manual_seed(0), temperature=0.7))
    torch.testing.assert_close(z7, 0.7 * z1, atol=1e-4, rtol=1e-4)
