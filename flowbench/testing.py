"""Conformance checks any flow (built-in or plugin) should pass; used by the tests.

``check_flow`` verifies, in float64, at initialisation and again after training steps and a
random perturbation of every parameter (identity-initialised couplings hide many bugs):

- ``invertibility``: ``inverse(forward(x)) == x``, for the whole flow and every layer;
- ``logdet``: the analytic log-det equals ``log|det J|`` of the autograd Jacobian, for the whole
  flow and every layer alone;
- ``sample_consistency``: ``sample(n)`` is ``inverse`` applied to the base's samples;
- ``check_reload`` (state dict into a differently seeded build) and ``check_determinism`` (same
  seed, same flow), via ``check_registered`` for a flow registered by name;
- in 2-D, ``normalisation``: the density integrates to 1 on a grid; ``mean_log_density``: the
  mean log-density of the flow's own samples equals E_q[log q] integrated on that grid; and
  ``sampling``: a histogram of samples matches the density's cell masses (total variation).
"""

from __future__ import annotations

import copy
import itertools
import io
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .flow import Flow
from .layers.base import Transform
from .layers.jacobian import brute_force_logabsdet
from .train import adam


@dataclass(frozen=True)
class CheckResult:
    """One check: the measured error against its tolerance."""

    name: str
    stage: str
    error: float
    tolerance: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return math.isfinite(self.error) and self.error <= self.tolerance

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        where = f" [{self.detail}]" if self.detail else ""
        return (f"{mark}  {self.stage:<9} {self.name:<20} error {self.error:.3e} "
                f"<= {self.tolerance:.1e}{where}" if self.passed else
                f"{mark}  {self.stage:<9} {self.name:<20} error {self.error:.3e} "
                f"> {self.tolerance:.1e}{where}")


@dataclass
class CheckReport:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [result for result in self.results if not result.passed]

    def __str__(self) -> str:
        return "\n".join(str(result) for result in self.results)


def _max_abs(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max())


def _check_transform(transform: Transform | Flow, x: Tensor, name: str, stage: str,
                     inv_tol: float, logdet_tol: float) -> list[CheckResult]:
    with torch.no_grad():
        z, logabsdet = transform(x)
        x_back = transform.inverse(z)
    if logabsdet.shape != (x.shape[0],):
        return [CheckResult("logdet_shape", stage, float("inf"), 0.0,
                            f"{name}: logabsdet shape {tuple(logabsdet.shape)}, "
                            f"expected ({x.shape[0]},)")]
    brute = brute_force_logabsdet(lambda v: transform(v)[0], x)
    return [
        CheckResult("invertibility", stage, _max_abs(x_back, x), inv_tol, name),
        CheckResult("logdet", stage, _max_abs(logabsdet, brute), logdet_tol, name),
    ]


def perturb(module: torch.nn.Module, scale: float = 0.3,
            generator: torch.Generator | None = None) -> torch.nn.Module:
    """Add ``scale`` x standard-normal noise to every trainable parameter, in place: moves layers
    away from their (often identity) initialisation, where wrong log-dets can look right."""
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.requires_grad:
                noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
                parameter.add_(scale * noise.to(parameter.device))
    return module


def _train_steps(flow: Flow, data: Tensor, steps: int, lr: float, seed: int) -> None:
    """A few Adam steps with the optimiser set-up ``flowbench run`` uses (``train.adam``: the
    parameters re-homed into one flat tensor), so the checks see a flow trained as runs train it."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = adam(flow, lr)
    flow.train()
    for _ in range(steps):
        index = torch.randint(0, data.shape[0], (min(256, data.shape[0]),), generator=generator)
        index = index.to(data.device)
        loss = -flow.log_prob(data[index]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    flow.eval()


def _grid(flow: Flow, points: int, samples: Tensor) -> tuple[Tensor, Tensor, float, list[Tensor]]:
    """A grid covering the bulk of the samples with a wide margin: (cells, log-density, cell
    area, edges). Quantiles, not min/max, so a few far outliers cannot make the grid too coarse."""
    low = torch.quantile(samples, 0.0005, dim=0)
    high = torch.quantile(samples, 0.9995, dim=0)
    margin = 0.75 * (high - low)
    low, high = low - margin, high + margin
    edges = [torch.linspace(float(low[d]), float(high[d]), points + 1, dtype=samples.dtype)
             for d in range(2)]
    centres = [(e[1:] + e[:-1]) / 2 for e in edges]
    mesh = torch.stack(torch.meshgrid(*centres, indexing="ij"), dim=-1).reshape(-1, 2)
    area = float((edges[0][1] - edges[0][0]) * (edges[1][1] - edges[1][0]))
    device = next(itertools.chain(flow.parameters(), flow.buffers()), samples).device
    with torch.no_grad():
        log_density = torch.cat([flow.log_prob(chunk.to(device)).cpu()
                                 for chunk in mesh.split(65536)])
    return mesh, log_density, area, edges


def _density_checks(flow: Flow, stage: str, seed: int, norm_tol: float) -> list[CheckResult]:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        samples = flow.sample(40000, generator)
        sample_log_density = flow.log_prob(samples).cpu()
    samples = samples.cpu()  # the grid and the histogram are bookkeeping: on the CPU
    _, log_density, area, edges = _grid(flow, 400, samples)
    density_values = torch.exp(log_density)
    mass = float(density_values.sum() * area)
    results = [CheckResult("normalisation", stage, abs(mass - 1.0), norm_tol,
                           f"grid integral {mass:.5f}")]
    # E_q[log q] two ways: over the model's own samples, and integrated on the grid
    monte_carlo = float(sample_log_density.mean())
    standard_error = float(sample_log_density.std() / math.sqrt(samples.shape[0]))
    integrated = float((density_values * log_density).nan_to_num().sum() * area)
    results.append(CheckResult(
        "mean_log_density", stage, abs(monte_carlo - integrated), 4 * standard_error + norm_tol,
        f"samples {monte_carlo:.4f} vs grid {integrated:.4f}"))
    # histogram of samples vs the density's mass per coarse cell (20 x 20 cells of 20 x 20 points)
    fine = torch.exp(log_density).reshape(400, 400) * area
    cell_mass = fine.reshape(20, 20, 20, 20).sum(dim=(1, 3))
    coarse = [edge[::20].contiguous() for edge in edges]
    inside = ((samples[:, 0] >= coarse[0][0]) & (samples[:, 0] <= coarse[0][-1])
              & (samples[:, 1] >= coarse[1][0]) & (samples[:, 1] <= coarse[1][-1]))
    kept = samples[inside]  # samples outside the grid count against the match via their absence
    ix = torch.bucketize(kept[:, 0].contiguous(), coarse[0][1:-1])
    iy = torch.bucketize(kept[:, 1].contiguous(), coarse[1][1:-1])
    counts = torch.zeros(20, 20, dtype=samples.dtype)
    counts.index_put_((ix, iy), torch.ones_like(kept[:, 0]), accumulate=True)
    empirical = counts / samples.shape[0]
    tv = 0.5 * float((empirical - cell_mass / cell_mass.sum()).abs().sum())
    # sampling noise alone gives E[TV] <= 0.5 * sum sqrt(p/n); allow 3x that plus grid error
    noise = 0.5 * float(torch.sqrt(cell_mass.clamp_min(0) / samples.shape[0]).sum())
    results.append(CheckResult("sampling", stage, tv, 3 * noise + 0.01,
                               "total variation, sample histogram vs density"))
    return results


def check_flow(
    flow: Flow,
    data: Tensor | None = None,
    *,
    n: int = 16,
    train_steps: int = 25,
    lr: float = 1e-2,
    perturbation: float = 0.05,
    seed: int = 0,
    inv_tol: float = 1e-8,
    logdet_tol: float = 1e-6,
    norm_tol: float = 1e-2,
    per_layer: bool = True,
    density: bool | None = None,
    device: str = "cpu",
) -> CheckReport:
    """Run every conformance check on a float64 copy of ``flow`` (the original is untouched).

    ``data`` (``(M, *event_shape)``) drives data-dependent initialisation and the training
    steps; by default a correlated, shifted Gaussian sample is used. ``density`` (grid
    normalisation and histogram checks) defaults to on for 2-D flows. ``device`` is where the
    flow and the data are checked (random draws stay on the CPU, then move).
    """
    flow = copy.deepcopy(flow).double().to(device)
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(flow.event_shape)
    if data is None:
        raw = torch.randn((2048, *shape), generator=generator, dtype=torch.float64)
        data = 1.5 * raw + 0.5 * raw.roll(1, dims=1) + 0.3
    data = data.double().to(device)
    density = (shape == (2,)) if density is None else density

    flow.train()
    with torch.no_grad():
        flow(data[: min(1024, data.shape[0])])  # data-dependent initialisation
    flow.eval()
    x = data[torch.randperm(data.shape[0], generator=generator)[:n].to(device)]
    report = CheckReport()

    for stage in ("init", "trained", "perturbed"):
        if stage == "trained":
            _train_steps(flow, data, train_steps, lr, seed)
        elif stage == "perturbed":
            perturb(flow, perturbation, generator)
        report.results += _check_transform(flow, x, "flow", stage, inv_tol, logdet_tol)
        if per_layer:
            h = x
            for index, layer in enumerate(flow.layers()):
                name = f"layer {index} {type(layer).__name__}"
                report.results += _check_transform(layer, h, name, stage, inv_tol, logdet_tol)
                with torch.no_grad():
                    h, _ = layer(h)
        report.results.append(_sample_consistency(flow, stage, seed))
        # a random perturbation can make the density arbitrarily sharp, beyond what any grid
        # resolves, so the density checks run on the initial and the trained flow only
        if density and stage != "perturbed":
            report.results += _density_checks(flow, stage, seed, norm_tol)
    return report


def _sample_consistency(flow: Flow, stage: str, seed: int) -> CheckResult:
    with torch.no_grad():
        x = flow.sample(256, torch.Generator().manual_seed(seed))
        z = flow.base.sample(256, torch.Generator().manual_seed(seed))
        z_back, _ = flow(x)
    return CheckResult("sample_consistency", stage, _max_abs(z_back, z), 1e-7,
                       "forward(sample(n)) == base samples")


# --- checks that need to build the flow more than once -------------------------------------------

def check_reload(build: Callable[[int], Flow], data: Tensor, seed: int = 0,
                 train_steps: int = 25, tolerance: float = 1e-9) -> list[CheckResult]:
    """Train ``build(seed)`` briefly, save its state dict, load it into ``build(seed + 1)`` (a
    different random initialisation): log-densities and samples must agree. Catches state kept
    outside the state dict (e.g. a data-dependent-init flag or a permutation in a plain
    attribute or a non-persistent buffer)."""
    data = data.double()
    original = build(seed).double()
    original.train()
    with torch.no_grad():
        original(data[: min(1024, data.shape[0])])
    _train_steps(original, data, train_steps, 1e-2, seed)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    reloaded = build(seed + 1).double()
    reloaded.load_state_dict(torch.load(buffer, weights_only=True))
    reloaded.eval()
    original.eval()
    x = data[:256]
    with torch.no_grad():
        density = _max_abs(reloaded.log_prob(x), original.log_prob(x))
        # one more forward pass in train mode, given to both: it may legitimately update
        # running statistics (batch norm), but must not re-initialise anything (actnorm)
        for flow in (original, reloaded):
            flow.train()
            flow(data[:256])
            flow.eval()
        after_batch = _max_abs(reloaded.log_prob(x), original.log_prob(x))
        samples = _max_abs(reloaded.sample(256, torch.Generator().manual_seed(seed)),
                           original.sample(256, torch.Generator().manual_seed(seed)))
    return [
        CheckResult("reload_log_prob", "reload", density, tolerance,
                    "state dict loaded into a differently seeded build"),
        CheckResult("reload_no_reinit", "reload", after_batch, tolerance,
                    "same, after one more forward pass in train mode"),
        CheckResult("reload_sample", "reload", samples, tolerance, "seeded samples"),
    ]


def check_determinism(build: Callable[[int], Flow], data: Tensor, seed: int = 0,
                      train_steps: int = 25) -> list[CheckResult]:
    """Two builds with the same seed, trained the same way, must be identical (exactly)."""
    flows = []
    for _ in range(2):
        flow = build(seed).double()
        flow.train()
        with torch.no_grad():
            flow(data.double()[: min(1024, data.shape[0])])
        _train_steps(flow, data.double(), train_steps, 1e-2, seed)
        flows.append(flow)
    first, second = (dict(f.state_dict()) for f in flows)
    worst = max((float((first[k].double() - second[k].double()).abs().max())
                 for k in first if first[k].numel()), default=0.0)
    if set(first) != set(second):
        worst = float("inf")
    x = data.double()[:256]
    with torch.no_grad():
        density = _max_abs(flows[0].log_prob(x), flows[1].log_prob(x))
    return [CheckResult("determinism", "seeded", max(worst, density), 0.0,
                        "two builds and trainings with the same seed")]


def check_registered(
    flow: str, base: str = "normal", event_shape: tuple[int, ...] = (2,), *,
    registry=None, data: Tensor | None = None, seed: int = 0, hparams: dict | None = None,
    device: str = "cpu", **options,
) -> CheckReport:
    """Every check for a registered flow/base pair: ``check_flow`` (invertibility, log-det vs
    brute force per layer and overall, at init / trained / perturbed; in 2-D normalisation and
    sampling), then ``check_reload`` and ``check_determinism``. ``data`` defaults to two-moons
    samples in 2-D and a correlated Gaussian otherwise."""
    from .api import build_flow

    def build(build_seed: int) -> Flow:
        torch.manual_seed(build_seed)
        return build_flow(flow, base, event_shape, registry=registry,
                          **(hparams or {})).to(device)

    if data is None:
        data = default_check_data(event_shape, seed)
    data = data.to(device)
    report = check_flow(build(seed), data, seed=seed, device=device, **options)
    report.results += check_reload(build, data, seed)
    report.results += check_determinism(build, data, seed)
    return report


def default_check_data(event_shape: tuple[int, ...], seed: int = 0, n: int = 2048) -> Tensor:
    """Two moons (noise 0.1) in 2-D; a correlated, shifted Gaussian in any other shape."""
    generator = torch.Generator().manual_seed(seed)
    if tuple(event_shape) == (2,):
        t = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
        upper = torch.rand(n, generator=generator) < 0.5
        x = torch.where(upper.unsqueeze(1), torch.stack([t.cos(), t.sin()], 1),
                        torch.stack([1 - t.cos(), 0.5 - t.sin()], 1))
        return x + 0.1 * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    raw = torch.randn((n, *event_shape), generator=generator, dtype=torch.float64)
    return 1.5 * raw + 0.5 * raw.roll(1, dims=1) + 0.3


def summarise(report: CheckReport) -> list[CheckResult]:
    """One result per (stage, check): the worst over layers (failures first, then the largest
    error relative to its tolerance), naming where it occurred."""
    def badness(result: CheckResult) -> tuple[bool, float]:
        relative = result.error / result.tolerance if result.tolerance else (
            0.0 if result.error == 0 else float("inf"))
        return (not result.passed, relative)

    groups: dict[tuple[str, str], list[CheckResult]] = {}
    for result in report.results:
        groups.setdefault((result.stage, result.name), []).append(result)
    summary = []
    for results in groups.values():
        worst = max(results, key=badness)
        detail = f"worst of {len(results)}: {worst.detail}" if len(results) > 1 else worst.detail
        summary.append(CheckResult(worst.name, worst.stage, worst.error, worst.tolerance, detail))
    return summary
