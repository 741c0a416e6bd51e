"""Devices and precisions without a GPU: every flow and base on PyTorch's ``meta`` device (where
a tensor made on the CPU beside a meta one raises), the choice and refusal of devices, bf16
conditioners, GPU cells' Dask resources, and out-of-memory cells recorded as failed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from flowbench import build_flow, get_registry, load_dataset
from flowbench.backends import BackendError, Task, _check_resources
from flowbench.data.dequantise import dequantised
from flowbench.data.preprocessing import preprocessing_for
from flowbench.device import (
    DeviceError, check_precision, is_out_of_memory, resolve_device, supported_precisions,
)
from flowbench.layers import AffineCoupling, alternating_partition, mlp_factory
from flowbench.layers.precision import conditioned, conditioner_precision
from flowbench.plan import Cell, plan_run
from flowbench.runner import cell_resources
from flowbench.specs import TrainConfig
from flowbench.testing import perturb

REGISTRY = get_registry()
CASES = [(flow, base, shape) for flow in REGISTRY.names("flow")
         for base in REGISTRY.names("base")
         for shape in [(3,)] + ([(1, 8, 8)] if "image" in REGISTRY.spec("flow", flow).data_kinds
                                else [])]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("flow,base,shape", CASES, ids=lambda v: str(v).replace(" ", ""))
def test_every_flow_and_base_runs_on_the_meta_device(flow, base, shape, digits) -> None:
    """Forward, log_prob with its backward, inverse and sample of a model moved to ``meta``:
    a tensor any layer, base or preprocessing step creates on the CPU (instead of on its
    input's device) meets meta tensors and raises. Image models go through the dataset's
    dequantisation and logit preprocessing as in a run."""
    torch.manual_seed(0)
    image = len(shape) == 3
    model = build_flow(flow, base, shape,
                       preprocessing=preprocessing_for(digits, None) if image else None)
    data = digits.train[:16].float() if image else torch.randn(16, *shape)
    with torch.no_grad():  # data-dependent initialisation needs values: on the CPU first
        model(dequantised(data, 0) if image else data)
    model = model.to("meta")
    x = data.to("meta")
    if image:
        x = dequantised(x, 0)
    model.train()
    model.log_prob(x).mean().backward()
    model.eval()
    with torch.no_grad():
        assert model.log_prob(x).device.type == "meta"
        z, logabsdet = model(x)
        assert model.inverse(z).device.type == "meta" and logabsdet.device.type == "meta"
        assert model.sample(4).device.type == "meta"
        assert model.sample(4, temperature=0.5).device.type == "meta"


def test_meta_test_catches_a_tensor_made_on_the_cpu() -> None:
    """The property the test above relies on: mixing a CPU tensor into meta arithmetic raises."""
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.randn(3, device="meta") + torch.randn(3)


def test_auto_resolves_to_cpu_without_cuda() -> None:
    assert resolve_device("auto") == resolve_device(None) == "cpu"
    assert resolve_device("CPU") == "cpu"


def test_absent_devices_are_refused_naming_what_exists(monkeypatch) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available.*available here: cpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="valid choices: auto, cpu, cuda, cuda:N"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == "cuda:0" and resolve_device("auto") == "cuda"
    with pytest.raises(DeviceError, match=r"'cuda:7' does not exist: this machine has 1 CUDA "
                                          r"device\(s\); available here: cpu, cuda:0"):
        resolve_device("cuda:7")
    # for cells that run elsewhere (Dask workers), well-formed names pass unchecked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cuda:7", here=False) == "cuda:7"


def test_precisions_the_device_lacks_are_refused() -> None:
    assert supported_precisions("cpu") == ["fp32", "bf16"]
    assert check_precision("bf16", "cpu") == "bf16"
    with pytest.raises(DeviceError, match="'tf32' is not supported on cpu.*fp32, bf16"):
        check_precision("tf32", "cpu")
    with pytest.raises(DeviceError, match="valid choices: fp32, tf32, bf16"):
        check_precision("fp16", "cpu")


def test_device_and_precision_enter_cell_ids_only_when_set() -> None:
    default = plan_run(REGISTRY, "smoke")
    assert plan_run(REGISTRY, "smoke", device="cpu").cells == default.cells
    assert "device" not in default.cells[0].train and "precision" not in default.cells[0].train
    bf16 = plan_run(REGISTRY, "smoke", precision="bf16")
    assert bf16.cells[0].train["precision"] == "bf16"
    assert {c.cell_id for c in bf16.cells}.isdisjoint(c.cell_id for c in default.cells)
    assert TrainConfig(device="cuda:1").as_dict()["device"] == "cuda:1"
    with pytest.raises(ValueError, match="resolved, not 'auto'"):
        TrainConfig(device="auto")


def test_bf16_autocasts_the_conditioner_only() -> None:
    """Under bf16 the conditioner's output is bfloat16-rounded, but what the coupling returns
    (z and its log-det) is float32, and outside the region nothing changes."""
    torch.manual_seed(0)
    coupling = AffineCoupling(alternating_partition(6, False, "split"), mlp_factory(32, 2))
    perturb(coupling, 0.5, torch.Generator().manual_seed(0))  # off its zero (identity) init
    x = torch.randn(64, 6)
    net = coupling.conditioner
    kept = coupling.partition.kept(x)
    with conditioner_precision(torch.bfloat16):
        out = conditioned(net, kept)
        z, logabsdet = coupling(x)
    assert out.dtype == torch.float32 and z.dtype == logabsdet.dtype == torch.float32
    exact = net(kept)
    assert not torch.equal(out, exact)  # bf16 arithmetic happened
    assert torch.allclose(out, exact, atol=0.05, rtol=0.05)
    assert torch.equal(out, out.bfloat16().float())  # values representable in bfloat16
    assert torch.equal(conditioned(net, kept), exact)  # outside the region: float32 as written


def test_gpu_cells_ask_dask_for_a_gpu() -> None:
    cell = plan_run(REGISTRY, "smoke").cells[0]
    assert cell_resources(cell) == {}
    gpu = Cell(**{**cell.__dict__, "train": {**cell.train, "device": "cuda"}})
    assert cell_resources(gpu) == {"GPU": 1}

    class Client:  # what dask.distributed.Client.scheduler_info returns, in the parts we read
        def __init__(self, resources):
            self.resources = resources

        def scheduler_info(self):
            return {"workers": {"tcp://w:1": {"resources": self.resources}}}

    tasks = [Task("cell", print, resources={"GPU": 1})]
    _check_resources(Client({"GPU": 1}), tasks)
    with pytest.raises(BackendError, match=r"resource\(s\) \['GPU'\].*--resources \"GPU=1\""):
        _check_resources(Client({}), tasks)


def test_out_of_memory_errors_are_recognised() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    with pytest.raises(RuntimeError) as caught:
        torch.empty(2**50, dtype=torch.float32)  # the CPU allocator's own refusal
    assert is_out_of_memory(caught.value)
    assert not is_out_of_memory(ValueError("shape mismatch"))


GREEDY_PLUGIN = textwrap.dedent('''
    """A flow that, while training, asks the allocator for far more memory than exists."""
    import torch
    from flowbench import FlowSpec, hookimpl
    from flowbench.layers import DiagonalScaling


    class Greedy(DiagonalScaling):
        def forward(self, x):
            if self.training and x.shape[0] > 8:  # a training minibatch, not the init batch
                torch.empty(2**50)
            return super().forward(x)


    def build(event_shape):
        return Greedy(event_shape)


    @hookimpl
    def flowbench_register_flows():
        return [FlowSpec(name="greedy", build=build, description="allocates 4 PiB per step",
                         reference="test", defaults={}, data_kinds=("vector",))]
''')


def _flowbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_out_of_memory_cell_is_recorded_failed_and_the_run_goes_on(tmp_path) -> None:
    (tmp_path / "greedy.py").write_text(GREEDY_PLUGIN)
    result = _flowbench("-p", "greedy.py", "run", "--suite", "smoke", "--datasets",
                        "two_moons", "--flows", "greedy,realnvp", "--bases", "normal",
                        "--steps", "5", "--out", "run", "-j", "1", "--no-measure",
                        "--no-report", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = (tmp_path / "run/cells.jsonl").read_text().splitlines()
    records = {record["flow"]: record for record in map(json.loads, lines)}
    assert records["realnvp"]["status"] == "ok"
    greedy = records["greedy"]
    assert greedy["status"] == "failed"
    assert greedy["message"].startswith("out of memory on cpu (batch_size ")
    assert "try a smaller batch" in greedy["message"] and "can't allocate memory" in \
        greedy["message"]


@pytest.mark.parametrize("option,expected", [
    (("--device", "cuda"), "CUDA is not available on this machine"),
    (("--device", "cuda:7"), "available here: cpu"),
    (("--precision", "tf32"), "precision 'tf32' is not supported on cpu"),
])
def test_cli_refuses_absent_devices_before_training(tmp_path, option, expected) -> None:
    result = _flowbench("run", "--suite", "smoke", "--out", "run", *option, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # refused before any folder or training


def test_cli_says_what_auto_chose_and_records_it(tmp_path) -> None:
    result = _flowbench("run", "--suite", "digits-smoke", "--flows", "glow", "--device", "auto",
                        "--out", "run", "--no-measure", "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "on cpu [CPU] (--device auto chose it), precision fp32" in result.stderr
    metadata = json.loads((tmp_path / "run/metadata.json").read_text())
    session = metadata["sessions"][-1] if "sessions" in metadata else metadata
    assert session["device"] == "cpu" and session["device_requested"] == "auto"
    record = json.loads((tmp_path / "run/cells.jsonl").read_text().splitlines()[0])
    assert record["device"] == "CPU" and "device" not in record["train"]
    # an explicit --device cpu is the same run: it resumes, nothing retrains
    again = _flowbench("run", "--suite", "digits-smoke", "--flows", "glow", "--device", "cpu",
                       "--out", "run", "--no-measure", "--no-report", cwd=tmp_path)
    assert again.returncode == 0 and "(1 already finished)" in again.stderr
