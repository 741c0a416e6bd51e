"""The papers' image suites (mnist, cifar10, their -small variants): recipes, per-flow settings,
published rows, and real CLI runs on format-faithful local MNIST files."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import flowbench
from flowbench.plan import plan_run
from flowbench.specs import SpecError, SuiteSpec
from flowbench_images import papers

from test_image_data import write_idx

REGISTRY = flowbench.get_registry()
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
SUITES = ("mnist", "cifar10", "mnist-small", "cifar10-small")


def flowbench_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("suite", ["mnist-small", "cifar10-small"])
def test_small_suites_build_every_flow(suite) -> None:
    plan = plan_run(REGISTRY, suite)
    for cell in plan.cells:
        flow = flowbench.build_flow(cell.flow, cell.base, SHAPES[cell.dataset], registry=REGISTRY,
                                    **cell.flow_hparams, **cell.base_hparams)
        print(f"{suite} {cell.flow}/{cell.base}: {n_params(flow):,} parameters")
        assert n_params(flow) > 0


def test_nice_mnist_has_the_papers_parameter_count() -> None:
    """4 couplings, each an MLP 392 -> 5 x 1000 (ReLU) -> 392, plus a 784-scale diagonal layer."""
    flow = flowbench.build_flow("nice", "logistic", SHAPES["mnist"], registry=REGISTRY,
                                **papers.NICE_MNIST)
    mlp = 392 * 1000 + 1000 + 4 * (1000 * 1000 + 1000) + 1000 * 392 + 392
    assert n_params(flow) == 4 * mlp + 784 == 19_158_352
    assert type(flow.base).__name__ == "StandardLogistic"


@pytest.mark.slow  # builds the 512-channel, 96-step Glow (tens of millions of parameters)
@pytest.mark.parametrize("suite", ["mnist", "cifar10"])
def test_paper_suites_build_every_flow(suite) -> None:
    plan = plan_run(REGISTRY, suite, seeds=[0])
    for cell in plan.cells:
        flow = flowbench.build_flow(cell.flow, cell.base, SHAPES[cell.dataset], registry=REGISTRY,
                                    **cell.flow_hparams, **cell.base_hparams)
        print(f"{suite} {cell.flow}/{cell.base}: {n_params(flow):,} parameters")


def test_realnvp_paper_conditioners_are_8_blocks_of_64() -> None:
    flow = flowbench.build_flow("realnvp", "normal", SHAPES["cifar10"], registry=REGISTRY,
                                **papers.REALNVP_PAPER)
    resnets = [m for m in flow.modules() if type(m).__name__ == "ResNet"]
    # 3 checkerboard + 3 channel couplings at the first scale, 4 checkerboard at the last
    assert len(resnets) == 10
    assert all(len(r.blocks) == 8 and r.conv_in.out_channels == 64 for r in resnets)


def test_paper_suites_pair_flows_with_their_papers_settings() -> None:
    plan = plan_run(REGISTRY, "mnist")
    pairs = {(c.flow, c.base) for c in plan.cells}
    assert pairs == {("nice", "logistic"), ("realnvp", "normal"), ("glow", "normal")}
    assert len(plan.cells) == 9  # 3 flows x their one base x 3 seeds
    by_flow = {c.flow: c for c in plan.cells}
    assert by_flow["nice"].preprocessing == {"logit": False}
    assert by_flow["glow"].preprocessing == {"logit": False}
    assert by_flow["realnvp"].preprocessing == {}  # RealNVP's logit, alpha 0.05 (the default)
    assert by_flow["realnvp"].train["batch_size"] == 64
    assert by_flow["realnvp"].train["weight_decay"] == 5e-5
    assert "augment" not in by_flow["realnvp"].train  # no flips on digits
    assert by_flow["glow"].train["batch_size"] == 512
    assert by_flow["glow"].train["warmup_steps"] == 977  # 10 epochs of 50000 at 512
    cifar = {c.flow: c for c in plan_run(REGISTRY, "cifar10").cells}
    assert cifar["realnvp"].train["augment"] == "hflip"
    assert "augment" not in cifar["glow"].train
    assert cifar["glow"].flow_hparams["levels"] == 3 and cifar["glow"].flow_hparams["steps"] == 32
    # --steps overrides every flow's count; --bases normal pairs every flow with it
    short = plan_run(REGISTRY, "mnist", steps=5, bases=["normal"])
    assert {c.train["steps"] for c in short.cells} == {5}
    assert {c.base for c in short.cells} == {"normal"}


def test_suites_have_notes_and_published_rows() -> None:
    for name in SUITES:
        spec = REGISTRY.spec("suite", name)
        assert spec.notes and spec.description
    assert "Differences from the papers" in REGISTRY.spec("suite", "cifar10").notes
    methods = {d: {r.method: r.nll for r in REGISTRY.spec("dataset", d).published}
               for d in ("mnist", "cifar10")}
    assert methods["cifar10"] == {"Real NVP": 3.49, "Glow": 3.35, "FFJORD": 3.40}
    assert methods["mnist"]["Glow"] == 1.05 and methods["mnist"]["FFJORD"] == 0.99
    assert methods["mnist"]["NICE (converted)"] == 4.36


def test_per_flow_suite_settings_are_validated() -> None:
    good = dict(name="x", description="x", datasets=("digits",), flows=("nice", "glow"),
                bases=("normal", "logistic"))
    SuiteSpec(**good, flow_bases={"nice": ("logistic",)}, notes="n").validate()
    bad = [({"flow_bases": {"nice": ("gmm",)}}, "subset of the suite's bases"),
           ({"flow_bases": {"maf": ("normal",)}}, "names flows not in the suite"),
           ({"flow_train": {"nice": {"bogus": 1}}}, "unknown training settings"),
           ({"flow_preprocessing": {"glow": {"beta": 1}}}, "unknown flow_preprocessing"),
           ({"notes": 3}, "notes must be a string")]
    for extra, message in bad:
        with pytest.raises(SpecError, match=message):
            SuiteSpec(**good, **extra).validate()


def test_suites_without_per_flow_settings_keep_their_cell_ids() -> None:
    plan = plan_run(REGISTRY, "digits-smoke")
    spec = REGISTRY.spec("suite", "digits-smoke")
    assert all(c.preprocessing == {} and c.train == plan.train for c in plan.cells)
    assert {(c.flow, c.base) for c in plan.cells} == {(f, b) for f in spec.flows
                                                      for b in spec.bases}
    same = dataclasses.replace(spec, notes="only words")
    assert same.notes == "only words"


def test_list_shows_the_suites_notes() -> None:
    result = flowbench_cli("list")
    assert result.returncode == 0, result.stderr
    assert "mnist-small" in result.stdout
    assert "cifar10: Differences from the papers" in result.stdout


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    """Format-faithful MNIST IDX files: 10100 training images (flowbench carves 10000 for
    validation) and 20 test images of random pixels."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    write_idx(root / "mnist" / "train-images-idx3-ubyte",
              rng.integers(0, 256, (10_100, 28, 28), dtype=np.uint8), gz=True)
    write_idx(root / "mnist" / "t10k-images-idx3-ubyte",
              rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), gz=False)
    return root


@pytest.mark.slow  # about 30 s on the loaded 2-core machine (NICE evaluates 10000 images)
def test_mnist_small_nice_runs_from_local_files(mnist_dir, tmp_path) -> None:
    out = tmp_path / "run"
    result = flowbench_cli("run", "--suite", "mnist-small", "--flows", "nice", "--steps", "3",
                           "--data-dir", str(mnist_dir), "--out", str(out), "-j", "1")
    assert result.returncode == 0, result.stderr
    assert "mnist nice/logistic seed 0: ok" in result.stderr + result.stdout
    assert "bits/dim" in result.stderr + result.stdout
    report = (out / "report.md").read_text()
    for row in ("published: Glow", "published: FFJORD", "published: NICE (converted)"):
        assert row in report
    assert "FFJORD), Table 2" in report


@pytest.mark.slow
def test_mnist_small_every_flow_runs_from_local_files(mnist_dir, tmp_path) -> None:
    result = flowbench_cli("run", "--suite", "mnist-small", "--steps", "2", "--no-measure",
                           "--no-report", "--data-dir", str(mnist_dir), "--out",
                           str(tmp_path / "run"), "-j", "2", timeout=1200)
    assert result.returncode == 0, result.stderr
    text = result.stderr + result.stdout
    for pair in ("nice/logistic", "realnvp/normal", "glow/normal"):
        assert f"mnist {pair} seed 0: ok" in text
    assert text.count("bits/dim") >= 3


def test_missing_files_exit_2_naming_the_paths(tmp_path) -> None:
    result = flowbench_cli("run", "--suite", "cifar10-small", "--steps", "1", "--data-dir",
                           str(tmp_path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "data_batch_1" in result.stderr and str(tmp_path) in result.stderr
