"""The GPU check and the image-throughput benchmark run end to end on the CPU, so neither can
rot unseen on machines without a GPU (their GPU numbers come from running them on one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_gpu_check_trains_every_image_flow_and_compares_with_the_cpu(tmp_path) -> None:
    out = tmp_path / "gpu_check.md"
    result = _script("gpu_check.py", "--device", "cpu", "--steps", "4", "--no-speed",
                     "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = out.read_text()
    assert report.startswith("# flowbench GPU check on cpu")
    for flow in ("nice", "realnvp", "glow"):
        assert f"| digits | {flow} | 4 | ok |" in report


@pytest.mark.slow
def test_image_throughput_times_every_digits_flow(tmp_path) -> None:
    result = _script("image_throughput.py", "--repeats", "1", "--precision", "fp32,bf16",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert {(row[1], row[5]) for row in rows} == {
        (flow, precision) for flow in ("nice", "realnvp", "glow") for precision in ("fp32", "bf16")}
    assert all(float(row[7]) > 0 and float(row[10]) > 0 for row in rows)  # images/s, saved MiB
