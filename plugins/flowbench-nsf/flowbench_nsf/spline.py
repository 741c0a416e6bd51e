"""The monotonic rational-quadratic spline of Neural Spline Flows.

Durkan, Bekasov, Murray & Papamakarios 2019, "Neural Spline Flows" (NeurIPS), arXiv:1906.04068,
section 3.1 and appendix A; the spline itself is Gregory & Delbourgo 1982.

Element-wise on ``[-B, B]`` the map is a monotonic piecewise rational-quadratic through ``K + 1``
knots ``(x^(k), y^(k))`` with ``x^(0) = y^(0) = -B`` and ``x^(K) = y^(K) = B`` and positive
derivatives ``d^(k)`` at the knots. Outside ``[-B, B]`` it is the identity ("linear tails"); the
boundary derivatives are fixed to 1 so the map and its derivative are continuous at ``+-B``.

In bin ``k``, with ``w = x^(k+1) - x^(k)``, ``h = y^(k+1) - y^(k)``, ``s = h / w`` and
``xi = (x - x^(k)) / w`` in ``[0, 1]`` (paper eq. 4 and appendix A)::

    y = y^(k) + h [s xi^2 + d^(k) xi (1 - xi)] / [s + (d^(k+1) + d^(k) - 2 s) xi (1 - xi)]

    dy/dx = s^2 [d^(k+1) xi^2 + 2 s xi (1 - xi) + d^(k) (1 - xi)^2]
            / [s + (d^(k+1) + d^(k) - 2 s) xi (1 - xi)]^2

The inverse solves ``a xi^2 + b xi + c = 0`` for ``xi`` with (``Y = y - y^(k)``,
``delta = d^(k+1) + d^(k) - 2 s``)::

    a = h (s - d^(k)) + Y delta,   b = h d^(k) - Y delta,   c = -s Y

and takes the root in the form ``xi = 2 c / (-b - sqrt(b^2 - 4 a c))``, which avoids the
cancellation of the textbook formula (``a`` may be ~0; ``-b - sqrt(.)`` stays away from 0 because
``b > 0`` whenever ``c = 0``).

Parameterisation (all unconstrained, as a conditioner network outputs them): bin widths and heights
are ``softmax`` of ``K`` numbers each, mixed with a floor (``min_bin_width``, ``min_bin_height``);
the ``K - 1`` interior derivatives are ``min_derivative + softplus(u + c)`` with the constant
``c = log(expm1(1 - min_derivative))`` chosen so that ``u = 0`` gives derivative exactly 1. With all
parameters zero the bins are uniform, ``s = 1`` and every derivative is 1, and the formula above
reduces to ``y = y^(k) + h xi = x``: the spline is the identity (log-det 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_BOUND = 4.0
DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def derivative_offset(min_derivative: float = DEFAULT_MIN_DERIVATIVE) -> float:
    """The shift ``c`` with ``min_derivative + softplus(c) == 1``: a zero parameter means
    slope 1."""
    return math.log(math.expm1(1.0 - min_derivative))


def knots(unnormalised: Tensor, bound: float, min_size: float) -> tuple[Tensor, Tensor]:
    """Knot positions ``(..., K + 1)`` from ``-bound`` to ``bound`` and bin sizes ``(..., K)``.

    Sizes are ``min_size + (1 - K min_size) softmax(unnormalised)`` of the interval length; the
    end knots are set exactly to ``+-bound`` so no roundoff leaks past the interval.
    """
    bins = unnormalised.shape[-1]
    fractions = min_size + (1.0 - min_size * bins) * torch.softmax(unnormalised, dim=-1)
    inner = 2.0 * bound * torch.cumsum(fractions[..., :-1], dim=-1) - bound
    ends = inner.new_full((*inner.shape[:-1], 1), bound)
    positions = torch.cat([-ends, inner, ends], dim=-1)
    return positions, positions[..., 1:] - positions[..., :-1]


def _gather(values: Tensor, index: Tensor) -> Tensor:
    return values.gather(-1, index).squeeze(-1)


def rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    inverse: bool = False,
    bound: float = DEFAULT_BOUND,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """Apply the spline (or its inverse) element-wise: ``(y, logabsdet)``, both shaped like ``x``.

    ``widths`` and ``heights`` are ``(*x.shape, K)`` and ``derivatives`` is ``(*x.shape, K - 1)``,
    all unnormalised (see the module docstring). ``logabsdet`` is ``log|dy/dx|`` of the map that
    was applied: of the spline for ``inverse=False``, of its inverse for ``inverse=True``.
    Inputs outside ``[-bound, bound]`` pass through unchanged with log-det 0.
    """
    bins = widths.shape[-1]
    if bins < 1 or heights.shape[-1] != bins or derivatives.shape[-1] != bins - 1:
        raise ValueError(
            f"need K widths, K heights and K - 1 derivatives; got {widths.shape[-1]}, "
            f"{heights.shape[-1]}, {derivatives.shape[-1]}"
        )
    for label, param in (("widths", widths), ("heights", heights), ("derivatives", derivatives)):
        if param.shape[:-1] != x.shape:
            raise ValueError(f"{label} shape {tuple(param.shape)} does not match "
                             f"x {tuple(x.shape)}")
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound}")
    if min_bin_width * bins >= 1 or min_bin_height * bins >= 1:
        raise ValueError(f"min_bin_width/min_bin_height too large for {bins} bins")
    if not 0 < min_derivative < 1:
        raise ValueError(f"min_derivative must lie in (0, 1), got {min_derivative}")

    x_knots, bin_widths = knots(widths, bound, min_bin_width)
    y_knots, bin_heights = knots(heights, bound, min_bin_height)
    interior = min_derivative + F.softplus(derivatives + derivative_offset(min_derivative))
    slopes = F.pad(interior, (1, 1), value=1.0)  # boundary derivatives 1 = the identity tails

    inside = (x >= -bound) & (x <= bound)
    # evaluate everywhere on clamped inputs (finite values and gradients), select afterwards
    value = x.clamp(-bound, bound)
    edges = y_knots if inverse else x_knots
    index = (value.unsqueeze(-1) >= edges[..., 1:-1]).sum(dim=-1, keepdim=True)

    x_k, y_k = _gather(x_knots, index), _gather(y_knots, index)
    w, h = _gather(bin_widths, index), _gather(bin_heights, index)
    d_k, d_k1 = _gather(slopes, index), _gather(slopes, index + 1)
    s = h / w
    delta = d_k1 + d_k - 2.0 * s

    if inverse:
        rise = value - y_k
        a = h * (s - d_k) + rise * delta
        b = h * d_k - rise * delta
        c = -s * rise
        discriminant = (b * b - 4.0 * a * c).clamp_min(0.0)
        xi = 2.0 * c / (-b - torch.sqrt(discriminant))
        out = x_k + xi * w
    else:
        xi = (value - x_k) / w

    mix = xi * (1.0 - xi)
    denominator = s + delta * mix
    if not inverse:
        out = y_k + h * (s * xi * xi + d_k * mix) / denominator
    numerator = s * s * (d_k1 * xi * xi + 2.0 * s * mix + d_k * (1.0 - xi) ** 2)
    logabsdet = torch.log(numerator) - 2.0 * torch.log(denominator)
    if inverse:
        logabsdet = -logabsdet

    out = torch.where(inside, out, x)
    logabsdet = torch.where(inside, logabsdet, torch.zeros_like(logabsdet))
    return out, logabsdet


def parameter_count(bins: int) -> int:
    """Unnormalised parameters per transformed element: K widths, K heights, K - 1 derivatives."""
    return 3 * bins - 1


def split_parameters(params: Tensor, bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(..., 3K - 1)`` -> widths ``(..., K)``, heights ``(..., K)``, derivatives
    ``(..., K - 1)``."""
    if params.shape[-1] != parameter_count(bins):
        raise ValueError(f"expected {parameter_count(bins)} parameters per element for {bins} "
                         f"bins, got {params.shape[-1]}")
    return params[..., :bins], params[..., bins : 2 * bins], params[..., 2 * bins :]


__all__ = [
    "DEFAULT_BOUND", "derivative_offset", "knots", "parameter_count", "rational_quadratic_spline",
    "split_parameters",
]
