"""Conformance checks any flow (built-in or plugin) should pass; used by the tests.

``check_flow`` verifies, in float64, at initialisation and again after training steps and a
random perturbation of every parameter (identity-initialised couplings hide many bugs):

- ``invertibility``: ``inverse(forward(x)) == x``, for the whole flow and every layer;
- ``logdet``: the analytic log-det equals ``log|det J|`` of the autograd Jacobian, for the whole
  flow and every layer alone;
- ``sample_consistency``: ``sample(n)`` is ``inverse`` applied to the base's samples;
- in 2-D, ``normalisation``: the density integrates to 1 on a grid; ``mean_log_density``: the
  mean log-density of the flow's own samples equals E_q[log q] integrated on that grid; and
  ``sampling``: a histogram of samples matches the density's cell masses (total variation).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .flow import Flow
from .layers.base import Transform


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


def brute_force_logabsdet(function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``log|det J|`` of ``function`` at each example of ``x``, from the full autograd Jacobian.

    ``function`` maps a batch ``(N, *shape)`` to ``(N, *shape')`` with the same number of
    elements per example; the Jacobian is formed one example at a time and fed to ``slogdet``.
    """
    values = []
    for example in x:
        def single(flat: Tensor, shape=example.shape) -> Tensor:
            return function(flat.reshape(1, *shape)).reshape(-1)

        jacobian = torch.autograd.functional.jacobian(single, example.reshape(-1))
        values.append(torch.linalg.slogdet(jacobian).logabsdet)
    return torch.stack(values)


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


def _perturb(flow: Flow, scale: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        for parameter in flow.parameters():
            if parameter.requires_grad:
                noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
                parameter.add_(scale * noise)


def _train_steps(flow: Flow, data: Tensor, steps: int, lr: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    flow.train()
    for _ in range(steps):
        index = torch.randint(0, data.shape[0], (min(256, data.shape[0]),), generator=generator)
        loss = -flow.log_prob(data[index]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
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
    with torch.no_grad():
        log_density = torch.cat([flow.log_prob(chunk) for chunk in mesh.split(65536)])
    return mesh, log_density, area, edges


def _density_checks(flow: Flow, stage: str, seed: int, norm_tol: float) -> list[CheckResult]:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        samples = flow.sample(40000, generator)
    _, log_density, area, edges = _grid(flow, 400, samples)
    density_values = torch.exp(log_density)
    mass = float(density_values.sum() * area)
    results = [CheckResult("normalisation", stage, abs(mass - 1.0), norm_tol,
                           f"grid integral {mass:.5f}")]
    # E_q[log q] two ways: over the model's own samples, and integrated on the grid
    with torch.no_grad():
        sample_log_density = flow.log_prob(samples)
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
    perturb: float = 0.05,
    seed: int = 0,
    inv_tol: float = 1e-8,
    logdet_tol: float = 1e-6,
    norm_tol: float = 1e-2,
    per_layer: bool = True,
    density: bool | None = None,
) -> CheckReport:
    """Run every conformance check on a float64 copy of ``flow`` (the original is untouched).

    ``data`` (``(M, *event_shape)``) drives data-dependent initialisation and the training
    steps; by default a correlated, shifted Gaussian sample is used. ``density`` (grid
    normalisation and histogram checks) defaults to on for 2-D flows.
    """
    flow = copy.deepcopy(flow).double()
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(flow.event_shape)
    if data is None:
        raw = torch.randn((2048, *shape), generator=generator, dtype=torch.float64)
        data = 1.5 * raw + 0.5 * raw.roll(1, dims=1) + 0.3
    data = data.double()
    density = (shape == (2,)) if density is None else density

    flow.train()
    with torch.no_grad():
        flow(data[: min(1024, data.shape[0])])  # data-dependent initialisation
    flow.eval()
    x = data[torch.randperm(data.shape[0], generator=generator)[:n]]
    report = CheckReport()

    for stage in ("init", "trained", "perturbed"):
        if stage == "trained":
            _train_steps(flow, data, train_steps, lr, seed)
        elif stage == "perturbed":
            _perturb(flow, perturb, generator)
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
