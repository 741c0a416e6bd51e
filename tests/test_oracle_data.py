"""High-dimensional oracle datasets: each density is normalised, matches an independent
implementation and its own sampler, and has the stated entropy; loading is deterministic, the
density's parameters do not depend on the data seed, and bad input is refused by name."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import logsumexp

from flowbench.data import oracles as O
from flowbench.data.oracles import heavy_tails as T
from flowbench.data.oracles import mixture as M
from flowbench.data.oracles import shells as S
from flowbench.data.oracles.family import haar_rotation, parameter_rng
from flowbench.data.quadrature import composite_gauss_legendre, midpoint_grid_integrals

NAMES = ("funnel", "banana", "heavy_tails", "mixture", "shells")
KS_P = 1e-3  # fixed seeds: each KS p-value below is one deterministic number


def fam(name: str) -> O.OracleFamily:
    return O.FAMILIES[name]


def tensor_rule(edges: list[np.ndarray], per_panel: int):
    """Nodes (N, d) and weights (N,) of a product composite Gauss-Legendre rule."""
    rules = [composite_gauss_legendre(e, per_panel) for e in edges]
    grids = np.meshgrid(*[r[0] for r in rules], indexing="ij")
    weights = np.meshgrid(*[r[1] for r in rules], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1), np.prod([w.ravel() for w in weights], 0)


# --- the catalogue -----------------------------------------------------------------------------


def test_catalogue_records():
    assert tuple(O.FAMILIES) == NAMES
    assert O.REGISTERED_DIMS == (4, 8, 16, 32, 64)
    for name, record in O.FAMILIES.items():
        assert record.name == name and record.min_dim == 2
        for text in (record.description, record.reference, record.oracle_method):
            assert text and "\n" not in text
    assert "ref:gmm" in fam("mixture").description
    assert "hole" in fam("shells").description


def test_names_round_trip():
    for name in NAMES:
        for dim in (*O.REGISTERED_DIMS, 2, 48, 1000):
            assert O.parse_oracle_name(O.oracle_name(name, dim)) == (name, dim)
    assert O.oracle_name("heavy_tails", 16) == "heavy_tails-16"
    for bad in ("funnel", "funnel-", "funnel-08", "funnel-x", "funnel-4.0", "funnel--4",
                "funnel-+4", "nope-4", "-4", "two_moons", "Funnel-4", "funnel-４"):
        assert O.parse_oracle_name(bad) is None, bad
    assert O.parse_oracle_name(None) is None
    # syntax only: the range is load_oracle's to check
    assert O.parse_oracle_name("funnel-1") == ("funnel", 1)


# --- normalisation -----------------------------------------------------------------------------


def test_funnel_normalises_in_2d():
    # x = u e^(v/2), dx = e^(v/2) du: a grid in (v, u) follows the funnel's neck.
    pts, w = tensor_rule([np.linspace(-45, 45, 91), np.linspace(-12, 12, 49)], 10)
    v, u = pts[:, 0], pts[:, 1]
    x = np.stack([v, u * np.exp(v / 2)], axis=1)
    mass = (np.exp(fam("funnel").log_prob(2, x)) * np.exp(v / 2) * w).sum()
    assert mass == pytest.approx(1.0, abs=1e-10)


def test_banana_normalises_in_2d_and_3d():
    pts, w = tensor_rule([np.linspace(-6.5, 6.5, 27), np.linspace(-3.5, 20.0, 48)], 8)
    assert (np.exp(fam("banana").log_prob(2, pts)) * w).sum() == pytest.approx(1.0, abs=1e-9)
    # D = 3: the bent coordinate 1 sits between anchors 0 and 2; integrate it (inner, Fubini)
    # over +-6 around the ridge 0.45 (y0^2 + y2^2 - 2) of this test's own writing.
    outer, w_outer = tensor_rule([np.linspace(-6.5, 6.5, 14)] * 2, 8)
    t, w_t = composite_gauss_legendre(np.linspace(-6, 6, 13), 8)
    ridge = 0.45 * (outer[:, 0] ** 2 + outer[:, 1] ** 2 - 2)
    y1 = ridge[:, None] + t[None, :]
    pts = np.stack([np.repeat(outer[:, 0], t.size), y1.ravel(), np.repeat(outer[:, 1], t.size)],
                   axis=1)
    dens = np.exp(fam("banana").log_prob(3, pts)).reshape(-1, t.size)
    assert (dens @ w_t) @ w_outer == pytest.approx(1.0, abs=1e-9)


def test_heavy_tails_normalises_in_2d():
    # x = tan(a) maps (-pi/2, pi/2)^2 onto the whole plane, dx = sec^2(a) da: no tail is cut.
    edges = np.linspace(-math.pi / 2, math.pi / 2, 41)
    a, w = tensor_rule([edges, edges], 8)
    dens = np.exp(fam("heavy_tails").log_prob(2, np.tan(a))) / np.cos(a).prod(axis=1) ** 2
    assert (dens * w).sum() == pytest.approx(1.0, abs=1e-10)


def test_mixture_normalises_and_its_entropy_matches_a_grid_in_2d():
    mass, grid_entropy = midpoint_grid_integrals(lambda p: fam("mixture").log_prob(2, p),
                                                 (-7, 7, -7, 7), 0.02)
    assert mass == pytest.approx(1.0, abs=1e-8)
    density = fam("mixture").density(2)
    assert density.entropy_se < 0.005
    assert abs(grid_entropy - density.entropy) < 4 * density.entropy_se


def test_mixture_normalises_in_4d_by_importance_sampling():
    # proposal: the components widened to twice their covariance, equal weights (scipy's)
    d = fam("mixture").density(4)
    proposals = [stats.multivariate_normal(m, 2.0 * c) for m, c in zip(d.means, d.covariances,
                                                                        strict=True)]
    rng = np.random.default_rng(5)
    x = np.concatenate([q.rvs(25_000, random_state=rng) for q in proposals])
    log_q = logsumexp([q.logpdf(x) for q in proposals], axis=0) - math.log(len(proposals))
    ratio = np.exp(fam("mixture").log_prob(4, x) - log_q)
    se = ratio.std(ddof=1) / math.sqrt(ratio.size)
    assert se < 0.005 and abs(ratio.mean() - 1) < 4 * se


def test_shells_normalise_in_2d_and_radially_in_any_d():
    mass, grid_entropy = midpoint_grid_integrals(lambda p: fam("shells").log_prob(2, p),
                                                 (-2.8, 2.8, -2.8, 2.8), 0.01)
    assert mass == pytest.approx(1.0, abs=1e-9)
    assert grid_entropy == pytest.approx(fam("shells").entropy(2), abs=1e-7)
    for dim in (3, 16, 64):
        density = fam("shells").density(dim)
        e1 = np.eye(dim)[:1]

        def radial(r, dim=dim, e1=e1):
            # A_D r^(D-1) p(r e_1): the density of |x|
            return math.exp(S.log_sphere_area(dim) + (dim - 1) * math.log(r)
                            + fam("shells").log_prob(dim, r * e1)[0])

        modes = density.modes()
        total = integrate.quad(radial, 1e-9, modes[-1] + 1.5, points=modes, epsabs=0,
                               epsrel=1e-12, limit=500)[0]
        assert total == pytest.approx(1.0, abs=1e-9)


# --- independent implementations ---------------------------------------------------------------


def probe_points(name: str, dim: int) -> np.ndarray:
    """Samples plus points spread far beyond them."""
    rng = np.random.default_rng(9)
    return np.concatenate([fam(name).sample(dim, 20, seed=4),
                           rng.normal(scale=3.0, size=(20, dim))])


def test_funnel_matches_scipy():
    x = probe_points("funnel", 5)
    v = x[:, 0]
    expected = (stats.norm.logpdf(v, 0, 3)
                + stats.norm.logpdf(x[:, 1:], 0, np.exp(v / 2)[:, None]).sum(axis=1))
    np.testing.assert_allclose(fam("funnel").log_prob(5, x), expected, rtol=1e-12)


def banana_forward_torch(z: torch.Tensor) -> torch.Tensor:
    """The banana chain's sampler written again: y = f(z), z ~ N(0, I)."""
    dim = z.numel()
    out = []
    for i in range(dim):
        if i % 2 == 0:
            out.append(z[i])
        else:
            anchors = {i - 1, (i + 1) % dim}
            out.append(0.5 * z[i] + 0.45 * sum(z[j] ** 2 - 1 for j in sorted(anchors)))
    return torch.stack(out)


@pytest.mark.parametrize("dim", [2, 5, 6])
def test_banana_matches_change_of_variables_by_autograd(dim):
    rng = np.random.default_rng(dim)
    zs = torch.from_numpy(rng.standard_normal((6, dim)) * 1.5)
    ys, expected = [], []
    for z in zs:
        jac = torch.autograd.functional.jacobian(banana_forward_torch, z)
        ys.append(banana_forward_torch(z).numpy())
        logdet = torch.linalg.slogdet(jac)[1]
        base = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum()
        expected.append(float(base - logdet))
    np.testing.assert_allclose(fam("banana").log_prob(dim, np.array(ys)), expected, rtol=1e-12)


def test_heavy_tails_matches_torch_student_t():
    dim = 6
    rotation = fam("heavy_tails").density(dim).rotation
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(dim), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    x = probe_points("heavy_tails", dim)
    student = torch.distributions.StudentT(*torch.tensor([3.0, 0.0, math.sqrt(1 / 3)],
                                                         dtype=torch.float64))
    expected = student.log_prob(torch.from_numpy(x @ rotation)).sum(-1).numpy()
    np.testing.assert_allclose(fam("heavy_tails").log_prob(dim, x), expected, rtol=1e-12)


def test_mixture_matches_scipy():
    dim = 5
    d = fam("mixture").density(dim)
    x = probe_points("mixture", dim)
    parts = [math.log(w) + stats.multivariate_normal(m, c).logpdf(x)
             for w, m, c in zip(d.weights, d.means, d.covariances, strict=True)]
    np.testing.assert_allclose(fam("mixture").log_prob(dim, x), logsumexp(parts, axis=0),
                               rtol=1e-12)
    assert d.weights.size == M.COMPONENTS and d.weights.sum() == pytest.approx(1.0)
    eig = np.linalg.eigvalsh(d.covariances)
    assert eig.min() >= M.EIGEN_RANGE[0] - 1e-12 and eig.max() <= M.EIGEN_RANGE[1] + 1e-12


def test_shells_normalisers_match_closed_forms_and_quad():
    for dim in (2, 3, 16, 64):
        d = fam("shells").density(dim)
        mu, s = d.radii, S.WIDTH
        if dim == 2:  # int_0^inf r exp(-(r - mu)^2 / 2 s^2) dr
            inner = s**2 * np.exp(-(mu**2) / (2 * s**2)) + mu * s * math.sqrt(2 * math.pi) * (
                stats.norm.cdf(mu / s))
        elif dim == 3:
            inner = ((mu**2 + s**2) * s * math.sqrt(2 * math.pi) * stats.norm.cdf(mu / s)
                     + mu * s**2 * np.exp(-(mu**2) / (2 * s**2)))
        else:  # scaled by the kernel's peak so quad sees O(1) numbers
            peaks = [d.log_radial_kernel(np.array([m]), j)[0] for j, m in enumerate(d.modes())]
            inner = np.exp(peaks) * [
                integrate.quad(lambda r, j=j, p=p, d=d: math.exp(
                    d.log_radial_kernel(np.array([r]), j)[0] - p), max(0.0, m - 2), m + 2,
                    epsabs=0, epsrel=1e-13, limit=200)[0]
                for j, (m, p) in enumerate(zip(d.modes(), peaks, strict=True))]
        area = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)
        np.testing.assert_allclose(d.log_normalisers(), np.log(area * inner), rtol=1e-12)
    # direction does not matter, only |x|
    x = probe_points("shells", 7)
    rotation = haar_rotation(7, np.random.default_rng(1))
    np.testing.assert_allclose(fam("shells").log_prob(7, x @ rotation.T),
                               fam("shells").log_prob(7, x), rtol=1e-12)


# --- samples agree with the density -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dim", [3, 16])
def test_mean_log_prob_of_samples_matches_entropy(name, dim):
    lp = fam(name).log_prob(dim, fam(name).sample(dim, 20_000, seed=101))
    assert lp.dtype == np.float64 and lp.shape == (20_000,) and np.isfinite(lp).all()
    se = lp.std(ddof=1) / math.sqrt(lp.size)
    assert abs(-lp.mean() - fam(name).entropy(dim)) <= 4 * se


def known_marginals(name: str, dim: int, x: np.ndarray, wrong: bool = False):
    """[(sample of a 1-D statistic, its exact CDF)]; ``wrong`` perturbs each CDF slightly."""
    k = 1.1 if wrong else 1.0
    if name == "funnel":
        v = x[:, 0]
        return [(v, stats.norm(0, 3 * k).cdf), (x[:, 1] * np.exp(-v / 2), stats.norm(0, k).cdf)]
    if name == "banana":
        ridge = 0.45 * (x[:, 0] ** 2 + x[:, 2] ** 2 - 2)
        return [(x[:, 0], stats.norm(0, k).cdf), ((x[:, 1] - ridge) / 0.5, stats.norm(0, k).cdf)]
    if name == "heavy_tails":
        u = x @ fam(name).density(dim).rotation / math.sqrt(1 / 3)
        return [(u[:, 0], stats.t(3, scale=k).cdf), (u[:, -1], stats.t(3, scale=k).cdf)]
    if name == "mixture":
        d = fam(name).density(dim)
        a = np.random.default_rng(3).standard_normal(dim)
        a /= np.linalg.norm(a)
        loc, scale = d.means @ a, np.sqrt(np.einsum("i,kij,j->k", a, d.covariances, a))

        def cdf(t):
            return (d.weights * stats.norm.cdf((np.asarray(t)[..., None] - loc) / (k * scale))
                    ).sum(-1)

        return [(x @ a, cdf)]
    d = fam(name).density(dim)
    grid = np.linspace(0, d.radii[-1] + 2, 200_001)
    dens = np.exp(S.log_sphere_area(dim) + (dim - 1) * np.log(np.maximum(grid, 1e-300))
                  + d.log_prob_radius(grid))
    cum = integrate.cumulative_simpson(dens, x=grid, initial=0)
    r = np.linalg.norm(x, axis=1)
    half = 0.5 * (dim - 1)
    return [(r / k, lambda t: np.interp(t, grid, cum)),
            (x[:, 0] / r, lambda c: stats.beta(half, half * k).cdf((np.asarray(c) + 1) / 2))]


@pytest.mark.parametrize("name", NAMES)
def test_known_marginals_of_samples(name):
    dim = 5
    x = fam(name).sample(dim, 4000, seed=202)
    for values, cdf in known_marginals(name, dim, x):
        assert stats.kstest(values, cdf).pvalue > KS_P
    # the same tests, with 10x the points, see a 10% error in a scale
    x = fam(name).sample(dim, 40_000, seed=203)
    for values, cdf in known_marginals(name, dim, x, wrong=True):
        assert stats.kstest(values, cdf).pvalue < 1e-6


# --- entropies ---------------------------------------------------------------------------------


def test_closed_form_entropies_match_scipy():
    for dim in (2, 7, 64):
        assert fam("heavy_tails").entropy(dim) == pytest.approx(
            dim * stats.t(3, scale=math.sqrt(1 / 3)).entropy(), rel=1e-12)
        cov = np.diag([1.0 if i % 2 == 0 else 0.25 for i in range(dim)])
        assert fam("banana").entropy(dim) == pytest.approx(
            stats.multivariate_normal(np.zeros(dim), cov).entropy(), rel=1e-12)
        # H(v) + (D - 1) E_v[H(N(0, e^v))], the expectation by quadrature
        inner = integrate.quad(lambda v: stats.norm.pdf(v, 0, 3) * 0.5 * (
            math.log(2 * math.pi * math.e) + v), -60, 60, epsabs=1e-13)[0]
        assert fam("funnel").entropy(dim) == pytest.approx(
            stats.norm(0, 3).entropy() + (dim - 1) * inner, rel=1e-12)
    assert T.student_entropy(5.0) == pytest.approx(stats.t(5).entropy(), rel=1e-12)


def test_shells_entropy_matches_adaptive_quadrature():
    for dim in (3, 32):
        d = fam("shells").density(dim)
        log_area = S.log_sphere_area(dim)

        def integrand(r, d=d, log_area=log_area, dim=dim):
            lp = d.log_prob_radius(np.array([r]))[0]
            return -math.exp(log_area + (dim - 1) * math.log(r) + lp) * lp

        modes = d.modes()
        value = integrate.quad(integrand, 1e-9, modes[-1] + 1.5, points=modes, epsabs=0,
                               epsrel=1e-12, limit=500)[0]
        assert d.entropy == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("dim", O.REGISTERED_DIMS)
def test_mixture_stored_entropies_are_reproduced(dim):
    value, se, samples = fam("mixture").density(dim).compute_entropy()
    stored = M.STORED_ENTROPY[dim]
    assert value == pytest.approx(stored[0], abs=1e-9)
    assert se == pytest.approx(stored[1], rel=0.01, abs=1e-12) and se < 0.005
    assert samples == stored[2]


def test_mixture_entropy_matches_plain_monte_carlo():
    # the control-variate estimate against the plain one, -mean log p over mixture samples
    for dim in (3, 8):
        lp = fam("mixture").log_prob(dim, fam("mixture").sample(dim, 100_000, seed=17))
        se = lp.std(ddof=1) / math.sqrt(lp.size)
        stated = fam("mixture").density(dim)
        assert stated.entropy_se < 0.005
        assert abs(-lp.mean() - stated.entropy) <= 4 * math.hypot(se, stated.entropy_se)


def test_entropy_methods_state_accuracy():
    for name in NAMES:
        for dim in (4, 5):
            text = fam(name).density(dim).entropy_method
            assert text and "\n" not in text
    assert "closed form" in fam("funnel").density(4).entropy_method
    assert "standard error 3.5e-04" in fam("mixture").density(4).entropy_method
    assert "stored" in fam("mixture").density(4).entropy_method
    assert "computed at load" in fam("mixture").density(5).entropy_method


# --- loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_load_shapes_dtypes_and_metadata(name):
    data = O.load_oracle(name, 6, seed=3, n_train=300, n_val=100, n_test=200)
    assert data.name == f"{name}-6" and data.event_shape == (6,) and data.kind == "vector"
    for split, size in ((data.train, 300), (data.val, 100), (data.test, 200)):
        assert split.dtype == torch.float32 and split.shape == (size, 6)
        assert split.is_contiguous()
    assert data.entropy == fam(name).entropy(6)
    assert data.oracle_method == fam(name).oracle_method
    assert data.entropy_method and data.description == fam(name).description
    assert data.info["family"] == name and data.info["dim"] == 6 and data.info["seed"] == 3
    lp = data.log_prob(data.test)
    assert lp.dtype == torch.float64 and lp.shape == (200,) and torch.isfinite(lp).all()
    torch.testing.assert_close(lp, data.log_prob(data.test.double()), rtol=0, atol=0)
    draw = O.sample_oracle(name, 6, 600, seed=3).astype(np.float32)
    np.testing.assert_array_equal(data.train.numpy(), draw[:300])
    np.testing.assert_array_equal(data.test.numpy(), draw[400:])


def test_a_loaded_dataset_pickles_with_its_oracle():
    # worker processes receive datasets by pickle: the oracle must travel by name
    data = O.load_oracle("shells", 4, n_train=10, n_val=10, n_test=10)
    copy = pickle.loads(pickle.dumps(data))
    assert torch.equal(copy.log_prob(data.test), data.log_prob(data.test))


def test_default_split_sizes():
    data = O.load_oracle("banana", 4)
    assert (len(data.train), len(data.val), len(data.test)) == (20000, 5000, 10000)
    assert O.SPLITS == (20000, 5000, 10000)


@pytest.mark.parametrize("name", NAMES)
def test_seed_changes_samples_never_the_density(name):
    a = O.load_oracle(name, 5, seed=11, n_train=500, n_val=100, n_test=100)
    b = O.load_oracle(name, 5, seed=11, n_train=500, n_val=100, n_test=100)
    c = O.load_oracle(name, 5, seed=12, n_train=500, n_val=100, n_test=100)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
        assert not torch.equal(getattr(a, split), getattr(c, split))
    probe = torch.cat([a.test, c.test])
    assert torch.equal(a.log_prob(probe), c.log_prob(probe))
    assert a.entropy == c.entropy
    assert {k: v for k, v in a.info.items() if k != "seed"} == \
        {k: v for k, v in c.info.items() if k != "seed"}


def test_fixed_parameters_come_from_family_and_dim_only():
    # rebuilt from the (family, D) generator: the same density, whatever was loaded before
    for name in ("heavy_tails", "mixture"):
        fresh = fam(name).build(8, parameter_rng(name, 8))
        x = probe_points(name, 8)
        np.testing.assert_array_equal(fresh.log_prob(x), fam(name).density(8).log_prob(x))
    rotations = [fam("heavy_tails").density(d).rotation for d in (8, 9)]
    assert rotations[0].shape == (8, 8) and rotations[1].shape == (9, 9)
    # different D, different family: different streams
    assert not np.allclose(parameter_rng("mixture", 8).standard_normal(4),
                           parameter_rng("mixture", 9).standard_normal(4))
    assert not np.allclose(parameter_rng("mixture", 8).standard_normal(4),
                           parameter_rng("heavy_tails", 8).standard_normal(4))
    draws = {name: O.sample_oracle(name, 4, 10, seed=0).tobytes() for name in NAMES}
    assert len(set(draws.values())) == len(NAMES)


def test_any_dimension_loads():
    for name in NAMES:
        data = O.load_oracle(name, 48, seed=1, n_train=50, n_val=10, n_test=10)
        assert data.train.shape == (50, 48) and math.isfinite(data.entropy)
        assert torch.isfinite(data.log_prob(data.val)).all()
    assert O.load_oracle("funnel", 2, n_train=5, n_val=5, n_test=5).event_shape == (2,)


# --- edge inputs and bad input -----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_oracle_edge_inputs(name):
    dim = 4
    x = np.zeros((7, dim))
    x[0, 1] = np.nan
    x[1, 0] = np.inf
    x[2, 3] = -np.inf
    x[3] = [1e3, -2e3, 5e2, 1e3]
    x[4, 0] = 1e200
    x[5, 2] = -1e200
    # row 6 is the origin
    lp = fam(name).log_prob(dim, x)
    assert np.isnan(lp[0]) and lp[1] == -np.inf and lp[2] == -np.inf
    assert not np.isnan(lp[3:]).any() and (lp[3:6] < -100).all()
    assert np.isfinite(lp[6])
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        fam(name).log_prob(dim, np.zeros((3, 5)))


def test_unknown_family_raises_with_choices():
    for call in (lambda: O.load_oracle("funnell", 8), lambda: O.family("funnell"),
                 lambda: O.sample_oracle("funnell", 8, 3, 0)):
        with pytest.raises(ValueError, match="funnell") as info:
            call()
        for valid in NAMES:
            assert valid in str(info.value)


@pytest.mark.parametrize("dim", [1, 0, -3, 2.5, "8", True, None])
def test_bad_dim_raises_naming_it_and_the_range(dim):
    with pytest.raises(ValueError, match=r">= 2, got") as info:
        O.load_oracle("shells", dim)
    assert repr(dim) in str(info.value)


def test_bad_seed_and_sizes_raise():
    with pytest.raises(ValueError, match="seed"):
        O.load_oracle("funnel", 4, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        O.load_oracle("funnel", 4, seed=1.5)
    with pytest.raises(ValueError, match="n_val"):
        O.load_oracle("funnel", 4, n_val=-5)
    with pytest.raises(ValueError, match="n must be"):
        fam("funnel").sample(4, -1, 0)


def test_family_records_refuse_bad_parts():
    record = fam("funnel")
    with pytest.raises(TypeError, match="callable"):
        O.OracleFamily(**{**record.__dict__, "build": None})
    with pytest.raises(ValueError, match="'-'"):
        O.OracleFamily(**{**record.__dict__, "name": "my-funnel"})


# --- slow: full recomputation ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dim", [4, 64])
def test_large_monte_carlo_entropy(name, dim):
    lp = fam(name).log_prob(dim, fam(name).sample(dim, 400_000, seed=2024))
    se = lp.std(ddof=1) / math.sqrt(lp.size)
    assert abs(-lp.mean() - fam(name).entropy(dim)) <= 4 * se


@pytest.mark.slow
def test_importance_sampling_normalisation_in_6d():
    # a wide Student-t proposal covers these tails (no single proposal suits the funnel, whose
    # scale changes by orders of magnitude; it is checked in 2-D above)
    rng = np.random.default_rng(8)
    proposal = stats.multivariate_t(np.zeros(6), 4.0 * np.eye(6), df=2)
    x = proposal.rvs(400_000, random_state=rng)
    for name in ("banana", "heavy_tails", "mixture", "shells"):
        ratio = np.exp(fam(name).log_prob(6, x) - proposal.logpdf(x))
        se = ratio.std(ddof=1) / math.sqrt(ratio.size)
        assert se < 0.05 and abs(ratio.mean() - 1) < 4 * se, name
