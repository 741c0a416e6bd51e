"""The rational-quadratic spline on its own, in float64."""

from __future__ import annotations

import pytest
import torch

from flowbench_nsf.spline import derivative_offset, knots, rational_quadratic_spline

BINS, BOUND = 6, 3.0


def random_params(n: int, bins: int = BINS, scale: float = 1.5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    draw = lambda *shape: scale * torch.randn(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    return draw(n, bins), draw(n, bins), draw(n, bins - 1)


def spline(x, params, inverse=False):
    return rational_quadratic_spline(x, *params, inverse=inverse, bound=BOUND)


def test_points_inside_outside_and_on_the_edges_roundtrip():
    n = 64
    params = random_params(n)
    generator = torch.Generator().manual_seed(1)
    x_knots, _ = knots(params[0], BOUND, 1e-3)
    cases = {
        "inside": (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * BOUND,
        "outside": torch.sign(torch.randn(n, generator=generator, dtype=torch.float64))
                   * (BOUND + 0.1 + 5 * torch.rand(n, generator=generator, dtype=torch.float64)),
        "interior knots": x_knots[torch.arange(n), torch.arange(n) % (BINS - 1) + 1],
        "interval ends": torch.where(torch.arange(n) % 2 == 0, -BOUND, BOUND).double(),
    }
    for label, x in cases.items():
        y, logabsdet = spline(x, params)
        x_back, inverse_logabsdet = spline(y, params, inverse=True)
        assert torch.allclose(x_back, x, atol=1e-10, rtol=0), label
        assert torch.allclose(logabsdet, -inverse_logabsdet, atol=1e-10, rtol=0), label
        if label == "outside":
            assert torch.equal(y, x) and torch.equal(logabsdet, torch.zeros_like(x))
        else:
            assert bool((y.abs() <= BOUND + 1e-12).all()), label


@pytest.mark.parametrize("inverse", [False, True])
def test_logabsdet_matches_autograd(inverse):
    n = 200
    params = random_params(n, seed=2)
    x_knots, _ = knots(params[0], BOUND, 1e-3)
    y_knots, _ = knots(params[1], BOUND, 1e-3)
    edges = y_knots if inverse else x_knots
    generator = torch.Generator().manual_seed(3)
    x = torch.cat([
        (torch.rand(n // 2, generator=generator, dtype=torch.float64) * 2.4 - 1.2) * BOUND,
        edges[torch.arange(n // 2), torch.arange(n // 2) % (BINS + 1)],  # every knot incl. ends
    ])
    x = x.clone().requires_grad_(True)
    y, logabsdet = spline(x, params, inverse=inverse)
    (slope,) = torch.autograd.grad(y.sum(), x)  # element-wise map: the Jacobian is diagonal
    assert bool((slope > 0).all())
    assert torch.allclose(logabsdet, slope.log(), atol=1e-10, rtol=0)


def test_knots_map_to_knots_with_the_given_derivatives():
    n = 32
    params = random_params(n, seed=4)
    x_knots, _ = knots(params[0], BOUND, 1e-3)
    y_knots, _ = knots(params[1], BOUND, 1e-3)
    slopes = 1e-3 + torch.nn.functional.softplus(params[2] + derivative_offset(1e-3))
    slopes = torch.nn.functional.pad(slopes, (1, 1), value=1.0)
    for k in range(BINS + 1):
        y, logabsdet = spline(x_knots[:, k], params)
        assert torch.allclose(y, y_knots[:, k], atol=1e-12, rtol=0)
        assert torch.allclose(logabsdet, slopes[:, k].log(), atol=1e-10, rtol=0)


def test_monotone_and_continuous_across_the_tails():
    params = [p[:1].expand(4001, -1) for p in random_params(1, scale=3.0, seed=5)]
    x = torch.linspace(-2 * BOUND, 2 * BOUND, 4001, dtype=torch.float64)
    y, _ = spline(x, params)
    assert bool((y[1:] > y[:-1]).all())
    eps = 1e-9
    at = torch.tensor([-BOUND - eps, -BOUND + eps, BOUND - eps, BOUND + eps], dtype=torch.float64)
    y_at, _ = spline(at, [p[:4] for p in params])
    assert torch.allclose(y_at, at, atol=1e-8, rtol=0)  # the ends are fixed points


def test_zero_parameters_give_the_identity():
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    zeros = torch.zeros(1001, BINS, dtype=torch.float64)
    for inverse in (False, True):
        y, logabsdet = rational_quadratic_spline(x, zeros, zeros, zeros[:, 1:], inverse=inverse,
                                                 bound=BOUND)
        assert torch.allclose(y, x, atol=1e-14, rtol=0)
        assert float(logabsdet.abs().max()) < 1e-14


def test_float32_agrees_with_float64():
    params = [p.float() for p in random_params(512, seed=6)]
    x = torch.linspace(-4, 4, 512)
    y, logabsdet = spline(x, params)
    x_back, _ = spline(y, params, inverse=True)
    y64, logabsdet64 = spline(x.double(), [p.double() for p in params])
    assert float((y.double() - y64).abs().max()) < 1e-5
    assert float((logabsdet.double() - logabsdet64).abs().max()) < 1e-3
    # random parameters make slopes as small as 1e-5 somewhere, so measure the inverse's error
    # where it is well posed: in y units (x error times the slope)
    assert float(((x_back - x).abs() * logabsdet.exp()).max()) < 1e-5


def test_bad_shapes_are_rejected():
    x = torch.zeros(3, dtype=torch.float64)
    widths, heights, derivatives = random_params(3)
    with pytest.raises(ValueError, match="need K widths, K heights and K - 1 derivatives"):
        rational_quadratic_spline(x, widths, heights, derivatives[:, 1:])
    with pytest.raises(ValueError, match=r"widths shape \(3, 6\) does not match x \(2,\)"):
        rational_quadratic_spline(x[:2], widths, heights, derivatives)
    with pytest.raises(ValueError, match="too large for 6 bins"):
        rational_quadratic_spline(x, widths, heights, derivatives, min_bin_width=0.2)
