"""Toy 2-D datasets: the oracle densities are normalised, match their samplers, and match the
stored entropies; loading is deterministic and well formed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats
from scipy.special import logsumexp

from flowbench.data import toy2d as T
from flowbench.data.toy2d import pinwheel as W
from flowbench.data.toy2d import processes as P

NAMES = T.TOY2D_NAMES

# Coarser than each record's entropy_grid_step so the default run stays fast; still converged
# to ~1e-6.
FAST_STEP = {
    "two_moons": 0.025,
    "circles": 0.01,
    "eight_gaussians": 0.04,
    "checkerboard": 0.05,
    "pinwheel": 0.08,
    "two_spirals": 0.04,
    "rings": 0.016,
}

# Histogram cell side per dataset (a few cells per noise scale at most).
CELL = {
    "two_moons": 0.1,
    "circles": 0.1,
    "eight_gaussians": 0.4,
    "checkerboard": 0.5,
    "pinwheel": 0.4,
    "two_spirals": 0.2,
    "rings": 0.2,
}


def cell_masses(log_prob, extent, cell: float, nodes: int = 6):
    """Oracle mass of each histogram cell (product Gauss-Legendre rule per cell) and the edges."""
    x0, x1, y0, y1 = extent
    ex = np.linspace(x0, x1, int(round((x1 - x0) / cell)) + 1)
    ey = np.linspace(y0, y1, int(round((y1 - y0) / cell)) + 1)
    g, w = np.polynomial.legendre.leggauss(nodes)

    def nodes_of(edges):
        lo, hi = edges[:-1, None], edges[1:, None]
        return lo + (g + 1) * (hi - lo) / 2, w * (hi - lo) / 2  # (cells, nodes)

    px, wx = nodes_of(ex)
    py, wy = nodes_of(ey)
    gx, gy = np.meshgrid(px.ravel(), py.ravel(), indexing="ij")
    dens = np.exp(log_prob(np.stack([gx.ravel(), gy.ravel()], axis=1)))
    dens = dens.reshape(len(ex) - 1, nodes, len(ey) - 1, nodes)
    masses = np.einsum("injm,in,jm->ij", dens, wx, wy)
    return masses, ex, ey


def chi2_and_tv(samples, masses, ex, ey):
    """Pearson chi-square (cells with >= 10 expected, the rest pooled) and total variation."""
    n = samples.shape[0]
    counts, _, _ = np.histogram2d(samples[:, 0], samples[:, 1], bins=[ex, ey])
    outside_count = n - counts.sum()
    outside_mass = max(0.0, 1.0 - masses.sum())
    expected = n * masses.ravel()
    observed = counts.ravel()
    big = expected >= 10
    obs = np.append(observed[big], observed[~big].sum() + outside_count)
    exp = np.append(expected[big], expected[~big].sum() + n * outside_mass)
    keep = exp > 0
    chi2 = float((((obs - exp) ** 2)[keep] / exp[keep]).sum())
    df = int(keep.sum()) - 1
    tv = 0.5 * (np.abs(observed / n - masses.ravel()).sum() + abs(outside_count / n - outside_mass))
    return chi2, df, tv


# --- oracle correctness -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_oracle_integrates_to_one_and_grid_entropy_matches_constant(name):
    mass, entropy = T.grid_integrals(name, FAST_STEP[name])
    assert abs(mass - 1.0) < 1e-6
    assert abs(entropy - T.TOY2D[name].entropy) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_monte_carlo_entropy_matches_constant(name):
    x = T.sample_toy2d(name, 40_000, seed=12345)
    lp = T.log_prob_toy2d(name, x)
    assert lp.dtype == np.float64 and lp.shape == (40_000,)
    assert np.isfinite(lp).all()
    h_mc = -lp.mean()
    se = lp.std(ddof=1) / math.sqrt(lp.size)
    assert abs(h_mc - T.entropy_toy2d(name)) <= 4 * se + 1e-9, (h_mc, se)


@pytest.mark.parametrize("name", NAMES)
def test_sample_histogram_matches_oracle_cell_masses(name):
    # Catches a density that is normalised but wrong (mirrored, wrong weights or noise, ...).
    samples = T.sample_toy2d(name, 200_000, seed=777)
    masses, ex, ey = cell_masses(lambda p: T.log_prob_toy2d(name, p), T.TOY2D[name].extent,
                                 CELL[name])
    assert abs(masses.sum() - 1.0) < 1e-4
    chi2, df, tv = chi2_and_tv(samples, masses, ex, ey)
    assert chi2 < df + 5 * math.sqrt(2 * df), (chi2, df)
    assert tv < 0.03, tv


@pytest.mark.parametrize(
    "name, wrong",
    [
        # FFJORD's pinwheel rotates by minus the angle; the mirror image must be rejected.
        ("pinwheel", lambda p: T.log_prob_toy2d("pinwheel", p * np.array([1.0, -1.0]))),
        (
            "circles",
            lambda p: P.log_ring_mixture(p, (1.0, P.CIRCLES_FACTOR), (0.55, 0.45), 0.05),
        ),
        (
            "rings",
            lambda p: P.log_ring_mixture(p, P.RINGS_RADII, (0.25,) * 4, 1.1 * P.RINGS_NOISE),
        ),
    ],
)
def test_histogram_check_rejects_a_wrong_but_normalised_density(name, wrong):
    samples = T.sample_toy2d(name, 200_000, seed=777)
    masses, ex, ey = cell_masses(wrong, T.TOY2D[name].extent, CELL[name])
    assert abs(masses.sum() - 1.0) < 1e-4
    chi2, df, _ = chi2_and_tv(samples, masses, ex, ey)
    assert chi2 > df + 20 * math.sqrt(2 * df)


def test_closed_forms_match_direct_formulas():
    rng = np.random.default_rng(3)
    pts = rng.uniform(-4, 4, size=(12, 2))

    centers = P.eight_centers() / P.EIGHT_DIVISOR
    cov = (P.EIGHT_STD / P.EIGHT_DIVISOR) ** 2 * np.eye(2)
    direct = logsumexp(
        [stats.multivariate_normal(c, cov).logpdf(pts) for c in centers], axis=0
    ) - math.log(8)
    np.testing.assert_allclose(T.log_prob_toy2d("eight_gaussians", pts), direct, rtol=1e-12)

    def ring_by_quadrature(x, radii, sigma):
        vals = []
        for radius in radii:
            def integrand(phi, radius=radius):
                d2 = (x[0] - radius * math.cos(phi)) ** 2 + (x[1] - radius * math.sin(phi)) ** 2
                return math.exp(-d2 / (2 * sigma**2)) / (2 * math.pi * sigma**2) / (2 * math.pi)

            peak = math.atan2(x[1], x[0]) % (2 * math.pi)
            vals.append(
                integrate.quad(
                    integrand, 0, 2 * math.pi, points=[peak], epsabs=0, epsrel=1e-12, limit=200
                )[0]
            )
        return math.log(np.mean(vals))

    for x in T.sample_toy2d("circles", 6, seed=1):
        expected = ring_by_quadrature(x, (1.0, P.CIRCLES_FACTOR), P.CIRCLES_NOISE)
        assert T.log_prob_toy2d("circles", x[None])[0] == pytest.approx(expected, abs=1e-9)
    for x in T.sample_toy2d("rings", 6, seed=1):
        expected = ring_by_quadrature(x, P.RINGS_RADII, P.RINGS_NOISE)
        assert T.log_prob_toy2d("rings", x[None])[0] == pytest.approx(expected, abs=1e-9)


def _curve_density_by_quad(x, curves, log_weight, t_max, sigma):
    """log sum_curves int_0^t_max w(t) N(x; c(t), sigma^2 I) dt with adaptive quadrature."""
    total = 0.0
    for curve in curves:
        def integrand(t, curve=curve):
            cx, cy = curve(t)
            d2 = (x[0] - cx) ** 2 + (x[1] - cy) ** 2
            return math.exp(log_weight(t) - d2 / (2 * sigma**2))

        breaks = np.linspace(0, t_max, 200)[1:-1]
        total += integrate.quad(integrand, 0, t_max, points=breaks, epsabs=0, epsrel=1e-12,
                                limit=2000)[0]
    return math.log(total) - math.log(2 * math.pi * sigma**2)


def test_two_moons_quadrature_matches_adaptive_quadrature():
    curves = [
        lambda t: (math.cos(t), math.sin(t)),
        lambda t: (1 - math.cos(t), 0.5 - math.sin(t)),
    ]
    pts = np.concatenate([T.sample_toy2d("two_moons", 4, seed=2), [[0.5, 0.25], [3.0, -1.0]]])
    for x in pts:
        expected = _curve_density_by_quad(x, curves, lambda t: math.log(0.5 / math.pi), math.pi,
                                          P.MOONS_NOISE)
        assert T.log_prob_toy2d("two_moons", x[None])[0] == pytest.approx(expected, abs=1e-8)


def test_two_spirals_quadrature_matches_adaptive_quadrature():
    c = P.SPIRAL_MAX_ANGLE
    curves = [
        lambda t: (-math.cos(t) * t / 3, math.sin(t) * t / 3),
        lambda t: (math.cos(t) * t / 3, -math.sin(t) * t / 3),
    ]
    pts = np.concatenate([T.sample_toy2d("two_spirals", 4, seed=2), [[0.0, 0.0], [5.0, 1.0]]])
    for x in pts:
        expected = _curve_density_by_quad(
            x, curves, lambda t: math.log(0.5 * 2 * t / c**2) if t > 0 else -np.inf, c,
            P.SPIRAL_NOISE,
        )
        assert T.log_prob_toy2d("two_spirals", x[None])[0] == pytest.approx(expected, abs=1e-8)


def _pinwheel_brute_force(x):
    """Independent pinwheel density: dense bracketing of every root in b, refined with brentq.

    FFJORD's sampler gives x / 2 = R(-(theta_k + rate e^u)) (u, v): polar angle b - angle.
    """
    y = np.asarray(x) / 2
    r, alpha = math.hypot(*y), math.atan2(y[1], y[0])
    grid = np.linspace(-math.pi, math.pi, 20001)
    terms = []
    for k in range(5):
        def h(b, k=k):
            val = b - 0.25 * np.exp(r * np.cos(b)) - 2 * math.pi * k / 5 - alpha
            return np.mod(val + math.pi, 2 * math.pi) - math.pi

        hv = h(grid)
        # A sign change that is not the 2 pi wrap-around brackets a root.
        crossing = (np.sign(hv[:-1]) != np.sign(hv[1:])) & (np.abs(hv[:-1] - hv[1:]) < 1)
        for i in np.nonzero(crossing)[0]:
            b = optimize.brentq(lambda bb: float(h(np.array(bb))), grid[i], grid[i + 1], xtol=1e-15)
            u, v = r * math.cos(b), r * math.sin(b)
            jac = abs(1 + 0.25 * math.exp(u) * v)
            terms.append(
                stats.norm.logpdf(u, 1, 0.3) + stats.norm.logpdf(v, 0, 0.1) - math.log(jac)
                - math.log(5)
            )
    return logsumexp(terms) - math.log(4)


def test_pinwheel_matches_brute_force_root_search():
    rng = np.random.default_rng(4)
    pts = np.concatenate(
        [T.sample_toy2d("pinwheel", 10, seed=5), rng.uniform(-7, 7, size=(10, 2)), [[0.0, 0.0]]]
    )
    ours = T.log_prob_toy2d("pinwheel", pts)
    for x, value in zip(pts, ours, strict=True):
        assert value == pytest.approx(_pinwheel_brute_force(x), rel=1e-11, abs=1e-11)


@pytest.mark.parametrize("name, build, fine", [
    ("two_moons", P.moons_nodes, (1024, 16, 30)),
    ("two_spirals", P.spiral_nodes, (0.05, 16, 30)),
])
def test_curve_quadrature_converged(name, build, fine):
    rng = np.random.default_rng(6)
    pts = np.concatenate([T.sample_toy2d(name, 1000, seed=6), rng.uniform(-6, 6, size=(1000, 2))])
    sigma = P.MOONS_NOISE if name == "two_moons" else P.SPIRAL_NOISE
    reference = P.log_gauss_mixture(pts, *build(*fine), sigma)
    np.testing.assert_allclose(T.log_prob_toy2d(name, pts), reference, rtol=1e-12, atol=1e-9)


def test_checkerboard_support():
    lp = T.log_prob_toy2d(
        "checkerboard",
        np.array([[-3.0, -3.0], [-1.0, -3.0], [1.0, 1.0], [3.0, 1.0], [-4.0, -4.0], [4.0, 4.0],
                  [2.0, 0.0], [4.5, 0.0], [0.0, -4.01]]),
    )
    inside = -math.log(32)
    # Edges and corners belong to the closed support; beyond the box is outside.
    np.testing.assert_array_equal(
        lp, [inside, -np.inf, inside, -np.inf, inside, inside, inside, -np.inf, -np.inf]
    )
    # Rounding to float32 never pushes a sample off the support.
    data = T.load_toy2d("checkerboard", seed=0)
    for split in data.splits().values():
        assert torch.isfinite(data.log_prob(split)).all()


@pytest.mark.parametrize("name", NAMES)
def test_oracle_edge_inputs(name):
    x = np.array([[np.nan, 0.0], [np.inf, 0.0], [0.0, -np.inf], [1e3, -2e3], [1e200, 0.0]])
    lp = T.log_prob_toy2d(name, x)
    assert np.isnan(lp[0])
    assert lp[1] == -np.inf and lp[2] == -np.inf
    assert not np.isnan(lp[3:]).any()
    assert (lp[3:] < -100).all()
    with pytest.raises(ValueError, match="shape"):
        T.log_prob_toy2d(name, np.zeros((3, 3)))


def test_pinwheel_far_field_is_continuous():
    # The oracle switches to the angle-averaged limit at |x| = 2 * PINWHEEL_FAR_RADIUS.
    radius = 2 * W.PINWHEEL_FAR_RADIUS
    angles = np.linspace(0, 2 * np.pi, 7)
    unit = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    inner = T.log_prob_toy2d("pinwheel", (radius - 1e-6) * unit)
    outer = T.log_prob_toy2d("pinwheel", (radius + 1e-6) * unit)
    # Both sides are approximations there (log p ~ -944); documented error ~0.15 nats.
    assert np.abs(inner - outer).max() < 0.2
    assert (np.abs(inner - outer) / np.abs(inner)).max() < 2e-4


def test_two_moons_entropy_is_about_0_29():
    assert T.entropy_toy2d("two_moons") == pytest.approx(0.29, abs=0.02)


# --- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_load_shapes_dtypes_and_metadata(name):
    data = T.load_toy2d(name, seed=3, n_train=2000, n_val=500, n_test=1000)
    assert data.name == name
    assert data.event_shape == (2,) and data.kind == "vector"
    for split, size in ((data.train, 2000), (data.val, 500), (data.test, 1000)):
        assert split.dtype == torch.float32 and split.shape == (size, 2)
        assert split.is_contiguous()
    assert data.entropy == T.TOY2D[name].entropy
    assert data.has_oracle and data.oracle_method and data.entropy_method
    assert data.description == T.TOY2D[name].description
    lp = data.log_prob(data.test)
    assert lp.dtype == torch.float64 and lp.shape == (1000,)
    assert torch.isfinite(lp).all()
    # Float32 and float64 inputs give the same float64 oracle values.
    torch.testing.assert_close(lp, data.log_prob(data.test.double()), rtol=0, atol=0)
    # The splits are one draw, cut in order.
    draw = T.sample_toy2d(name, 3500, seed=3).astype(np.float32)
    np.testing.assert_array_equal(data.train.numpy(), draw[:2000])
    np.testing.assert_array_equal(data.test.numpy(), draw[2500:])


@pytest.mark.parametrize("name", NAMES)
def test_load_is_deterministic_and_splits_disjoint(name):
    a = T.load_toy2d(name, seed=11, n_train=3000, n_val=1000, n_test=1000)
    b = T.load_toy2d(name, seed=11, n_train=3000, n_val=1000, n_test=1000)
    c = T.load_toy2d(name, seed=12, n_train=3000, n_val=1000, n_test=1000)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
        assert not torch.equal(getattr(a, split), getattr(c, split))
    rows = torch.cat([a.train, a.val, a.test]).numpy()
    assert np.unique(rows, axis=0).shape[0] == rows.shape[0]


def test_default_split_sizes():
    # load time is measured in benchmarks/bench_toy2d.py, not asserted here
    for name in NAMES:
        data = T.load_toy2d(name)
        assert (len(data.train), len(data.val), len(data.test)) == (20000, 5000, 10000)


def test_test_split_nll_is_near_the_entropy():
    for name in NAMES:
        data = T.load_toy2d(name, seed=0)
        lp = data.log_prob(data.test).numpy()
        se = lp.std(ddof=1) / math.sqrt(lp.size)
        assert abs(-lp.mean() - data.entropy) <= 4 * se + 1e-9, name


def test_unknown_name_raises_with_choices():
    for call in (
        lambda: T.load_toy2d("moonz"),
        lambda: T.sample_toy2d("moonz", 10, 0),
        lambda: T.log_prob_toy2d("moonz", np.zeros((1, 2))),
        lambda: T.entropy_toy2d("moonz"),
        lambda: T.compute_entropy("moonz"),
    ):
        with pytest.raises(ValueError, match="moonz") as info:
            call()
        for valid in NAMES:
            assert valid in str(info.value)


def test_bad_sizes_and_seeds_raise():
    with pytest.raises(ValueError, match="seed"):
        T.sample_toy2d("rings", 10, -1)
    with pytest.raises(ValueError, match="n_val"):
        T.load_toy2d("rings", n_val=-5)


def test_descriptions_cover_every_dataset():
    assert tuple(T.TOY2D) == NAMES and len(NAMES) == 7
    for name, record in T.TOY2D.items():
        assert record.name == name
        for text in (record.description, record.oracle_method, record.entropy_method):
            assert text and "\n" not in text
        assert math.isfinite(record.entropy) and len(record.extent) == 4
    assert T.TOY2D["checkerboard"].entropy == math.log(32)
    assert T.TOY2D["checkerboard"].entropy_method == "exact: uniform on area 32, H = log 32"
    assert T.TOY2D["rings"].entropy_method.startswith(
        "2-D midpoint-grid quadrature of -p log p over EXTENT, h=0.008; ")


def test_a_record_cannot_lack_a_sampler_or_an_oracle():
    # The old if-chains ended in an unconditional rings branch: a missing name sampled rings.
    # A record needs every part, so each name has its own sampler and oracle.
    parts = {f: getattr(T.TOY2D["rings"], f) for f in T.Toy2D.__dataclass_fields__}
    for missing in ("sample", "log_prob", "entropy", "description"):
        with pytest.raises(TypeError):
            T.Toy2D(**{k: v for k, v in parts.items() if k != missing})
    with pytest.raises(TypeError, match="callable"):
        T.Toy2D(**{**parts, "sample": None})
    samplers = {record.sample for record in T.TOY2D.values()}
    oracles = {record.log_prob for record in T.TOY2D.values()}
    assert len(samplers) == len(oracles) == len(NAMES)
    # Each name draws its own process: no two datasets give the same points for one seed.
    draws = {name: T.sample_toy2d(name, 50, seed=0).tobytes() for name in NAMES}
    assert len(set(draws.values())) == len(NAMES)


# --- slow: full recomputation ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_stored_entropy_equals_recomputed(name):
    assert T.compute_entropy(name) == pytest.approx(T.TOY2D[name].entropy, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_large_monte_carlo_entropy(name):
    x = T.sample_toy2d(name, 1_000_000, seed=2024)
    lp = T.log_prob_toy2d(name, x)
    se = lp.std(ddof=1) / math.sqrt(lp.size)
    assert abs(-lp.mean() - T.TOY2D[name].entropy) <= 4 * se + 1e-9
