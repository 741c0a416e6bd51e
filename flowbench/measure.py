"""Speed measurements recorded by ``flowbench run``: throughput, log-det cost, 1x1-conv cost.

What is measured:

- ``throughput``: examples per second of ``log_prob`` and of ``sample`` for a trained flow (eval
  mode, no autograd).
- ``logdet_cost``: seconds to evaluate ``log p(x)`` for a batch, two ways, as the dimension D
  grows: the flow's analytic log-det (``"analytic"``), and the brute-force reference
  (``"brute_force"``): the full D x D autograd Jacobian of ``x -> z`` for every example, fed to
  ``slogdet``. The brute force is what a generic invertible network would need (D backward
  passes and an O(D^3) factorisation per example). Because it assumes nothing about the layers'
  structure (triangular Jacobians, which half is kept, zero log-dets), it is also the reference
  the analytic log-det is checked against: each row carries ``max_abs_error`` between the two
  log-densities, computed in float64 so the comparison is not limited by float32 rounding.
  ``exponents`` fits the empirical complexity exponent ``seconds ~ D^k`` of each path.
- ``linear_cost``: Glow's invertible 1x1 convolution with an LU-parameterised weight
  (``log|det W| = sum log|s|``, O(c)) against a dense weight with ``slogdet`` (O(c^3)).

Timing hygiene (``time_call``): warm-up calls first (allocator, lazy initialisation, caches);
the loop count of each round is calibrated so a round lasts at least ``min_seconds`` (the timer's
resolution and per-call overhead then do not matter); several rounds give a median, robust to
other processes' interference, and an interquartile range as its spread; ``time.perf_counter``
throughout. The torch thread count is recorded with every table, since it changes every number:
the benchmarks run on one thread unless told otherwise. Numbers are only comparable on one machine.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .api import build_flow
from .flow import Flow
from .layers import InvertibleLinear, LUInvertibleLinear
from .layers.jacobian import brute_force_logabsdet
from .registry import Registry

#: scale of the seeded noise added to every parameter before ``logdet_cost`` times a flow
#: (couplings start as the identity, where a wrong log-det can still look right); divided by
#: sqrt(fan-in) for matrices, so a matrix-vector product moves by about this much at any size
PERTURBATION = 0.05

#: the columns of a ``logdet_cost`` table
LOGDET_COLUMNS = ["flow", "base", "dim", "path", "seconds_median", "seconds_iqr",
                  "per_example_seconds", "repeats", "batch", "max_abs_error", "threads", "jacobian",
                  "status", "message"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of a timed function, over ``repeats`` rounds."""

    median: float  # seconds per call
    iqr: float  # interquartile range of the per-call seconds
    repeats: int
    values: tuple[float, ...]


def _run(fn: Callable[[], object], number: int) -> float:
    _synchronise()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    _synchronise()  # GPU work is asynchronous: count it, not just its launch
    return time.perf_counter() - start


def _synchronise() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _iqr(values: Sequence[float]) -> float:
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def time_call(
    fn: Callable[[], object], repeats: int = 7, warmup: int = 2, min_seconds: float = 0.02
) -> Timing:
    """Warm up, then time ``repeats`` rounds; each round calls ``fn`` enough times
    (auto-calibrated loop count) to last at least ``min_seconds``, and records seconds per call.

    At least one call precedes the timed rounds: the last warm-up call doubles as the first
    calibration step, so a slow function (one call longer than ``min_seconds``) costs
    ``max(warmup, 1) + repeats`` calls in all.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    elapsed = 0.0
    for _ in range(max(warmup, 1)):
        elapsed = _run(fn, 1)
    number = 1
    # grow the loop until a run is long enough to extrapolate from, then scale to min_seconds
    while elapsed < min_seconds / 5:
        number *= 10
        elapsed = _run(fn, number)
    number = max(1, math.ceil(number * min_seconds / elapsed)) if elapsed < min_seconds else number
    values = tuple(_run(fn, number) / number for _ in range(repeats))
    return Timing(float(np.median(values)), _iqr(values), repeats, values)


def _rate(batch: int, timing: Timing) -> tuple[float, float]:
    """Examples per second (median over rounds) and its interquartile range."""
    rates = [batch / value for value in timing.values]
    return float(np.median(rates)), _iqr(rates)


def throughput(
    flow: Flow, data: Tensor, batch_size: int = 4096, repeats: int = 5
) -> dict[str, float]:
    """Density-evaluation and sampling speed of a trained flow (eval mode, ``torch.no_grad``).

    ``log_prob`` runs on ``data[:batch_size]`` (rows repeated if ``data`` is smaller);
    ``sample(batch_size)`` draws from a generator seeded once. The flow's train/eval mode is
    restored afterwards.
    """
    if len(data) == 0:
        raise ValueError("throughput needs at least one example")
    repeat = math.ceil(batch_size / len(data))
    x = data.repeat(repeat, *([1] * (data.dim() - 1)))[:batch_size]
    generator = torch.Generator().manual_seed(0)
    was_training = flow.training
    flow.eval()
    try:
        with torch.no_grad():
            log_prob = time_call(lambda: flow.log_prob(x), repeats=repeats)
            sample = time_call(lambda: flow.sample(batch_size, generator), repeats=repeats)
    finally:
        flow.train(was_training)
    lp_rate, lp_iqr = _rate(batch_size, log_prob)
    s_rate, s_iqr = _rate(batch_size, sample)
    return {
        "log_prob_examples_per_second": lp_rate,
        "log_prob_examples_per_second_iqr": lp_iqr,
        "sample_examples_per_second": s_rate,
        "sample_examples_per_second_iqr": s_iqr,
    }


@torch.no_grad()
def _analytic_log_prob(flow: Flow, x: Tensor) -> Tensor:
    return flow.log_prob(x)


def _vmap_brute_force_log_prob(flow: Flow, x: Tensor) -> Tensor:
    """``base.log_prob(z) + log|det dz/dx|`` with all per-example Jacobians in one vmapped pass."""
    shape = tuple(x.shape[1:])

    def single(flat: Tensor) -> tuple[Tensor, Tensor]:
        z = flow(flat.reshape(1, *shape))[0].squeeze(0)
        return z.reshape(-1), z

    jacobian, z = torch.func.vmap(torch.func.jacrev(single, has_aux=True))(x.reshape(len(x), -1))
    return flow.base.log_prob(z) + torch.linalg.slogdet(jacobian).logabsdet


def _loop_brute_force_log_prob(flow: Flow, x: Tensor) -> Tensor:
    """The same, one example at a time (for layers that ``vmap`` cannot batch)."""
    logabsdet = brute_force_logabsdet(lambda v: flow(v)[0], x)
    with torch.no_grad():
        z = flow(x)[0]
    return flow.base.log_prob(z) + logabsdet


def _brute_force_method(flow: Flow, x: Tensor) -> tuple[str, Callable[[Flow, Tensor], Tensor]]:
    """``("vmap", fn)`` if the flow supports ``torch.func.vmap``, else the per-example loop."""
    try:
        _vmap_brute_force_log_prob(flow, x[:2])
    except (RuntimeError, NotImplementedError):
        return "loop", _loop_brute_force_log_prob
    return "vmap", _vmap_brute_force_log_prob


def _synthetic_batch(batch: int, dim: int, generator: torch.Generator) -> Tensor:
    """Correlated, shifted, non-standard Gaussian data (float32)."""
    raw = torch.randn(batch, dim, generator=generator)
    return 1.5 * raw + 0.5 * raw.roll(1, dims=1) + 0.3


def _prepared_flow(
    flow: str, base: str, dim: int, x: Tensor, generator: torch.Generator, seed: int,
    registry: Registry | None, flow_hparams: Mapping | None, base_hparams: Mapping | None,
) -> Flow:
    """Built with ``torch.manual_seed(seed)``, data-dependent layers initialised on ``x``,
    every parameter perturbed by seeded noise, frozen, in eval mode."""
    torch.manual_seed(seed)
    model = build_flow(flow, base, (dim,), registry=registry, flow_hparams=flow_hparams,
                       base_hparams=base_hparams)
    model.train()
    with torch.no_grad():
        model(x)
        for parameter in model.parameters():
            scale = PERTURBATION / math.sqrt(parameter.shape[-1] if parameter.dim() > 1 else 1)
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return model.requires_grad_(False).eval()


def logdet_cost(
    flow: str,
    base: str,
    dims: Sequence[int] = (2, 8, 32, 128, 512),
    *,
    registry: Registry | None = None,
    batch: int = 16,
    repeats: int = 5,
    seed: int = 0,
    flow_hparams: Mapping | None = None,
    base_hparams: Mapping | None = None,
    max_seconds: float | None = None,
    brute_force_budget: float | None = None,
) -> pd.DataFrame:
    """Cost of ``log p(x)`` by the analytic log-det against the brute-force Jacobian, per D.

    For each D the flow is built (``torch.manual_seed(seed)``), its data-dependent layers are
    initialised on a synthetic batch of ``batch`` examples in train mode, every parameter is
    perturbed by seeded noise (couplings start as the identity) and it is switched to eval mode;
    then, on that same float32 batch:

    - ``"analytic"``: ``flow.log_prob(x)`` under ``torch.no_grad``;
    - ``"brute_force"``: ``base.log_prob(z) + log|det J|`` with ``J`` the autograd Jacobian of
      ``x -> z`` per example (``vmap(jacrev)``, or one example at a time when a layer does not
      support ``vmap``: column ``jacobian``) and ``torch.linalg.slogdet``.

    ``max_abs_error`` is the largest difference of the two log-densities on a float64 copy.
    ``max_seconds`` is a time budget: the smallest dim is always measured, and once the budget
    is exceeded the larger dims are skipped with a warning (and listed in
    ``attrs["skipped_dims"]``); no row is invented for them. ``brute_force_budget`` bounds the
    brute-force path alone: a dim is not measured on it when one call would take longer than
    this many seconds — judged from the last measured dim, since forming a D x D Jacobian costs
    at least D backward passes of O(D) each, i.e. grows at least like D² — or once one measured
    call did; such dims are measured on the analytic path only, with a ``brute_force`` row of
    status ``skipped`` saying why (its timing columns empty).
    """
    threads = torch.get_num_threads()
    rows, skipped = [], []
    start = time.perf_counter()
    too_slow: str | None = None  # why the brute-force path stopped growing D
    last: tuple[int, float] | None = None  # (dim, seconds per call) of the last brute force
    for dim in sorted(int(d) for d in dims):
        if too_slow is None and last is not None and brute_force_budget is not None:
            expected = last[1] * (dim / last[0]) ** 2
            if expected > brute_force_budget:
                too_slow = (f"brute force not measured from D = {dim}: one call would take "
                            f"about {expected:.3g} s or more ({last[1]:.3g} s at D = {last[0]}, "
                            f"growing at least like D^2; budget {brute_force_budget:g} s)")
        if rows and max_seconds is not None and time.perf_counter() - start > max_seconds:
            skipped.append(dim)
            continue
        generator = torch.Generator().manual_seed(seed)
        x = _synthetic_batch(batch, dim, generator)
        model = _prepared_flow(flow, base, dim, x, generator, seed, registry, flow_hparams,
                               base_hparams)
        paths = [("analytic", "none", partial(_analytic_log_prob, model, x))]
        error = float("nan")
        if too_slow is None:
            model64, x64 = copy.deepcopy(model).double(), x.double()
            method, brute_force = _brute_force_method(model64, x64)
            error = float((_analytic_log_prob(model64, x64)
                           - brute_force(model64, x64)).abs().max())
            paths.append(("brute_force", method, partial(brute_force, model, x)))
        else:
            rows.append({"flow": flow, "base": base, "dim": dim, "path": "brute_force",
                         "batch": batch, "threads": threads, "status": "skipped",
                         "message": too_slow})
        for path, jacobian, fn in paths:
            timing = time_call(fn, repeats=repeats, warmup=1)
            rows.append({
                "flow": flow, "base": base, "dim": dim, "path": path,
                "seconds_median": timing.median, "seconds_iqr": timing.iqr,
                "per_example_seconds": timing.median / batch, "repeats": timing.repeats,
                "batch": batch, "max_abs_error": error, "threads": threads, "jacobian": jacobian,
                "status": "ok", "message": "",
            })
            if path == "brute_force":
                last = (dim, timing.median)
                if brute_force_budget is not None and timing.median > brute_force_budget:
                    too_slow = (f"brute force not measured above D = {dim}: one call took "
                                f"{timing.median:.3g} s there (budget {brute_force_budget:g} s)")
    frame = pd.DataFrame(rows, columns=LOGDET_COLUMNS)
    frame.attrs["skipped_dims"] = skipped
    if skipped:
        warnings.warn(f"logdet_cost({flow!r}, {base!r}): budget of {max_seconds} s exceeded; "
                      f"skipped dims {skipped}", stacklevel=2)
    return frame


def linear_cost(
    channels: Sequence[int] = (4, 16, 64, 256, 1024),
    *,
    repeats: int = 7,
    batch: int = 16,
    spatial: int = 4,
    seed: int = 0,
) -> pd.DataFrame:
    """Glow's invertible 1x1 convolution: LU-parameterised (``"lu"``) against dense ``slogdet``
    (``"plain"``), per channel count c, in eval mode under ``torch.no_grad``.

    Operations, and what each includes:

    - ``"logdet"``: the log-det term alone: ``log_s.sum()`` (O(c)) against
      ``slogdet(W)`` (an O(c^3) LU factorisation) — the claim of the Glow paper, section 3.2;
    - ``"forward"``: the whole layer on an image batch ``(batch, c, spatial, spatial)``: weight
      construction (for LU the products ``P @ L @ U``, two O(c^3) dense matmuls), log-det and
      the per-pixel matrix product;
    - ``"inverse"``: the whole inverse on that batch: plain ``inv(W)`` against LU's two
      triangular solves (both O(c^3)), then the per-pixel matrix product.

    Without autograd: in training, the gradient of ``slogdet`` also needs ``W^-1``.
    """
    threads = torch.get_num_threads()
    rows = []
    for c in channels:
        x = torch.randn(batch, c, spatial, spatial, generator=torch.Generator().manual_seed(seed))
        lu = LUInvertibleLinear(c, torch.Generator().manual_seed(seed)).requires_grad_(False)
        plain = InvertibleLinear(c, torch.Generator().manual_seed(seed)).requires_grad_(False)
        logdets = {"lu": lambda lu=lu: lu.log_s.sum(),
                   "plain": lambda plain=plain: torch.linalg.slogdet(plain.weight).logabsdet}
        for name, layer in (("lu", lu), ("plain", plain)):
            with torch.no_grad():
                z = layer.eval()(x)[0]
                operations = {
                    "logdet": logdets[name],
                    "forward": lambda layer=layer, x=x: layer(x),
                    "inverse": lambda layer=layer, z=z: layer.inverse(z),
                }
                for operation, fn in operations.items():
                    timing = time_call(fn, repeats=repeats)
                    rows.append({
                        "layer": name, "channels": c, "operation": operation,
                        "seconds_median": timing.median, "seconds_iqr": timing.iqr,
                        "repeats": timing.repeats, "threads": threads,
                    })
    return pd.DataFrame(rows)


def fit_exponent(
    dims: Sequence[float], seconds: Sequence[float], min_dim: float | None = None
) -> float:
    """Least-squares slope of ``log(seconds)`` against ``log(dim)``: the empirical complexity
    exponent, over ``dim >= min_dim`` if given; NaN with fewer than 2 distinct dims."""
    d = np.asarray(dims, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if min_dim is not None:
        keep = d >= min_dim
        d, t = d[keep], t[keep]
    if len(np.unique(d)) < 2:
        return float("nan")
    slope, _ = np.polyfit(np.log(d), np.log(t), 1)
    return float(slope)


def exponents(logdet: pd.DataFrame) -> pd.DataFrame:
    """Per (flow, base, path) of a ``logdet_cost`` table: the exponent fitted over all dims and
    over the upper half (dims >= the median dim), the seconds at the largest dim, and
    ``ratio_to_analytic``: those seconds over the analytic path's at the same dim."""
    columns = ["flow", "base", "path", "exponent_all", "exponent_large", "seconds_at_max_dim",
               "max_dim", "ratio_to_analytic"]
    rows = []
    if "status" in logdet:  # rows of paths not measured at some D carry no timing
        logdet = logdet[logdet["status"].fillna("ok") == "ok"]
    for (flow, base, path), group in logdet.groupby(["flow", "base", "path"], sort=False):
        max_dim = int(group["dim"].max())
        seconds = float(group.loc[group["dim"] == max_dim, "seconds_median"].iloc[0])
        analytic = logdet[(logdet["flow"] == flow) & (logdet["base"] == base)
                          & (logdet["path"] == "analytic") & (logdet["dim"] == max_dim)]
        rows.append({
            "flow": flow, "base": base, "path": path,
            "exponent_all": fit_exponent(group["dim"], group["seconds_median"]),
            "exponent_large": fit_exponent(group["dim"], group["seconds_median"],
                                           min_dim=float(group["dim"].median())),
            "seconds_at_max_dim": seconds, "max_dim": max_dim,
            "ratio_to_analytic": (seconds / float(analytic["seconds_median"].iloc[0])
                                  if len(analytic) else float("nan")),
        })
    return pd.DataFrame(rows, columns=columns)


__all__ = ["Timing", "time_call", "throughput", "logdet_cost", "linear_cost", "fit_exponent",
           "exponents", "tail_statistics"]


#: a cell's mean test NLL is flagged as dominated by a few points when the largest 0.1 % of the
#: per-point NLLs move it by more than this many nats per dimension of the data
TAIL_SHIFT_PER_DIM = 0.05
TAIL_FRACTION = 0.001
TOP_POINTS = 5


def tail_statistics(nll: Tensor, dims: int) -> dict[str, Any]:
    """How much the largest per-point NLLs carry of a mean NLL (``nll``: one value per test
    point, nats). A single point with log-density near -1e11 makes a mean of millions while the
    median stays sane; these numbers make such a cell recognisable at a glance:

    - ``n_test``; ``test_nll_median``; ``test_nll_top`` (the :data:`TOP_POINTS` largest,
      descending);
    - ``test_tail_points``: k = max(1, ceil(:data:`TAIL_FRACTION` * n));
    - ``test_nll_trimmed``: the mean without the k largest; ``test_tail_shift``: mean minus that;
    - ``test_tail_share``: sum over the k largest of (nll - median) / sum of |nll - median|;
    - ``test_tail_flag``: the shift exceeds :data:`TAIL_SHIFT_PER_DIM` nats per dimension.
    Non-finite values count as the largest (their statistics are then non-finite too)."""
    values = nll.double().flatten()
    n = int(values.numel())
    k = max(1, math.ceil(TAIL_FRACTION * n))
    ordered = torch.sort(torch.nan_to_num(values, nan=math.inf), descending=True).values
    median = float(values.median())
    mean = float(values.mean())
    trimmed = float(ordered[k:].mean()) if n > k else float("nan")
    deviation = (values - median).abs().sum()
    share = float((ordered[:k] - median).sum() / deviation) if deviation > 0 else 0.0
    shift = mean - trimmed
    return {
        "n_test": n, "test_nll_median": median, "test_nll_trimmed": trimmed,
        "test_nll_top": [float(v) for v in ordered[:TOP_POINTS]],
        "test_tail_points": k, "test_tail_shift": shift, "test_tail_share": share,
        "test_tail_flag": bool(not math.isfinite(shift) or shift > TAIL_SHIFT_PER_DIM * dims),
    }
