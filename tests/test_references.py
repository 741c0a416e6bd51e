"""Reference rows (gaussian, gmm, kde for vectors; histogram, gaussian, gmm for images): right
densities in the original space, selection by validation only, honest NLLs, deterministic,
well-formed table and errors."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from flowbench.data.dataset import Dataset
from flowbench.data.toy2d import load_toy2d
from flowbench.data.dequantise import DEQUANTISE_SEEDS, dequantised
from flowbench.references import (
    COLUMNS, HISTOGRAM_ALPHAS, IMAGE_COLUMNS, IMAGE_GAUSSIAN_RIDGES, IMAGE_REFERENCE_METHODS,
    REFERENCE_METHODS, REFERENCE_METHODS_BY_KIND, dequantised_splits, fit_reference,
    image_gmm_candidates, kde_bandwidth_grid, nll, reference_nlls, scott_factor,
)
from flowbench.references.vector import StandardisedKDE


def _dataset(name, sample, log_prob, sizes, seed=0, entropy=None, dtype=torch.float32):
    """A Dataset from a numpy sampler ``sample(rng, n)`` and a numpy oracle ``log_prob(x)``."""
    rng = np.random.default_rng(seed)
    splits = [torch.as_tensor(sample(rng, n), dtype=dtype) for n in sizes]
    return Dataset(
        name=name, train=splits[0], val=splits[1], test=splits[2], event_shape=(2,),
        log_prob=lambda x: torch.as_tensor(log_prob(x.double().numpy())), entropy=entropy,
    )


def _oracle_nll(dataset: Dataset, split: str = "test") -> float:
    return float(-dataset.log_prob(dataset.splits()[split].double()).mean())


# --- a known Gaussian ------------------------------------------------------------------------

MEAN = np.array([1.5, -2.0])
COV = np.array([[2.0, 1.2], [1.2, 1.0]])
GAUSS = multivariate_normal(MEAN, COV)
GAUSS_ENTROPY = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * COV))


@pytest.fixture(scope="module")
def gaussian_data() -> Dataset:
    return _dataset("gauss", lambda rng, n: rng.multivariate_normal(MEAN, COV, size=n),
                    GAUSS.logpdf, (4000, 1000, 20000), entropy=GAUSS_ENTROPY)


def test_gaussian_matches_true_entropy(gaussian_data):
    row = reference_nlls(gaussian_data, methods=["gaussian"]).iloc[0]
    # -log p of a 2-D Gaussian has std sqrt(d / 2) = 1, so the Monte Carlo standard error of the
    # test mean is 1 / sqrt(20000) = 0.007; the fitting bias is ~ d (d + 3) / (4 n_train) = 6e-4.
    assert abs(row["test_nll"] - GAUSS_ENTROPY) < 4 / math.sqrt(20000) + 0.002
    # Paired with the truth on the same points the noise is far smaller.
    assert abs(row["test_nll"] - _oracle_nll(gaussian_data)) < 0.005
    assert abs(row["val_nll"] - _oracle_nll(gaussian_data, "val")) < 0.02


def test_gaussian_log_prob_is_the_mle_density(gaussian_data):
    fitted = fit_reference(gaussian_data, "gaussian")
    train = gaussian_data.train.double().numpy()
    mle = multivariate_normal(train.mean(0), np.cov(train.T, bias=True))
    x = gaussian_data.test[:100].double().numpy()
    np.testing.assert_allclose(fitted.log_prob(x), mle.logpdf(x), rtol=0, atol=1e-10)


# --- a well separated 3-component mixture ------------------------------------------------------

MIX_MEANS = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
MIX_COVS = np.array([
    [[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[1.5, -0.6], [-0.6, 0.7]],
])
MIX_WEIGHTS = np.array([0.5, 0.3, 0.2])


def _mixture_sample(rng, n):
    k = rng.choice(3, size=n, p=MIX_WEIGHTS)
    out = np.empty((n, 2))
    for j in range(3):
        idx = k == j
        out[idx] = rng.multivariate_normal(MIX_MEANS[j], MIX_COVS[j], size=int(idx.sum()))
    return out


def _mixture_log_prob(x):
    terms = [math.log(w) + multivariate_normal(m, c).logpdf(x)
             for w, m, c in zip(MIX_WEIGHTS, MIX_MEANS, MIX_COVS, strict=True)]
    return logsumexp(np.stack(terms), axis=0)


def test_gmm_finds_the_mixture_and_beats_one_gaussian():
    data = _dataset("mix3", _mixture_sample, _mixture_log_prob, (3000, 1000, 3000), seed=1)
    table = reference_nlls(data, methods=["gaussian", "gmm"]).set_index("method")
    params = json.loads(table.loc["gmm", "params"])
    # The grid has no 3: 4 (or more) components, one of them redundant, must fit as well.
    assert params["n_components"] >= 3
    oracle = _oracle_nll(data)
    assert table.loc["gmm", "test_nll"] - oracle < 0.02
    assert table.loc["gmm", "test_nll"] - oracle > -0.02  # nothing beats the truth (noise only)
    assert table.loc["gaussian", "test_nll"] - table.loc["gmm", "test_nll"] > 1.0
    fitted = fit_reference(data, "gmm")
    # Validation selected: the chosen count is the val-best candidate of the grid.
    assert params["n_components"] == min(fitted.search, key=fitted.search.get)


# --- kde ---------------------------------------------------------------------------------------

SCALE = np.array([5.0, 0.2])  # very different per-dimension scales: the log-det must be right


@pytest.fixture(scope="module")
def stretched_moons() -> Dataset:
    base = load_toy2d("two_moons", n_train=600, n_val=300, n_test=300)
    scale = torch.as_tensor(SCALE, dtype=torch.float32)
    return dataclasses.replace(
        base, name="stretched_moons", train=base.train * scale, val=base.val * scale,
        test=base.test * scale, log_prob=None, entropy=None,
    )


def test_kde_density_integrates_to_one_in_the_original_space(stretched_moons):
    fitted = fit_reference(stretched_moons, "kde")
    h = np.asarray(fitted.params["bandwidth_per_dim"])  # kernel std per dimension, original units
    train = stretched_moons.train.double().numpy()
    np.testing.assert_allclose(h, fitted.params["bandwidth"] * train.std(0), rtol=1e-12)
    lo, hi = train.min(0) - 8 * h, train.max(0) + 8 * h
    step = h / 2.5  # midpoint rule on Gaussians: error far below 1e-4 at this step
    xs = np.arange(lo[0], hi[0], step[0]) + step[0] / 2
    ys = np.arange(lo[1], hi[1], step[1]) + step[1] / 2
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(-1, 2)
    mass = float(np.exp(fitted.log_prob(grid)).sum() * step[0] * step[1])
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_kde_log_prob_matches_an_exact_kernel_sum(stretched_moons):
    fitted = fit_reference(stretched_moons, "kde")
    train = stretched_moons.train.double().numpy()
    x = stretched_moons.test.double().numpy()
    h = np.asarray(fitted.params["bandwidth_per_dim"])
    # Product Gaussian kernel with std h_i per dimension, exact sum over all train points.
    diff = (x[:, None, :] - train[None, :, :]) / h
    exact = (logsumexp(-0.5 * (diff**2).sum(-1), axis=1) - math.log(len(train))
             - math.log(2 * math.pi) - np.log(h).sum())
    got = fitted.log_prob(x)
    np.testing.assert_allclose(got, exact, rtol=0, atol=2e-4)  # tree rtol 1e-4 plus rounding
    val = stretched_moons.val.double().numpy()
    assert fitted.val_nll == pytest.approx(nll(fitted.log_prob(val)))


def test_kde_in_higher_dimension_uses_exact_dense_sums() -> None:
    from flowbench.references.vector import KDE_TREE_MAX_DIM, DenseGaussianKDE

    rng = np.random.default_rng(3)
    dim = KDE_TREE_MAX_DIM + 3
    train = rng.normal(size=(700, dim)) * np.linspace(0.5, 3.0, dim) + 10.0
    queries = rng.normal(size=(600, dim)) * 4 + 10.0  # more than one chunk, some far out
    kde = StandardisedKDE(train).set_bandwidth(0.4)
    assert kde.dense and isinstance(kde.model, DenseGaussianKDE)
    z, zq = kde.z_train, kde.standardise(queries)
    exact = (logsumexp(-0.5 * (((zq[:, None, :] - z[None]) / 0.4) ** 2).sum(-1), axis=1)
             - math.log(len(z)) - 0.5 * dim * math.log(2 * math.pi * 0.4 ** 2))
    np.testing.assert_allclose(kde.log_prob(queries), exact - np.log(train.std(0)).sum(),
                               rtol=1e-10, atol=1e-8)
    assert exact.min() < -100  # the far points are in the comparison (sklearn's tree sums
    # overestimate such points' density by nats in 6-D even with rtol=0, one reason for this path)
    far = np.full((1, dim), 1e3)  # every kernel underflows alone; the log-sum stays finite
    assert np.isfinite(kde.log_prob(far)).all()


def test_kde_bandwidth_is_the_val_best_of_the_grid(stretched_moons):
    fitted = fit_reference(stretched_moons, "kde")
    assert fitted.params["bandwidth"] == min(fitted.search, key=fitted.search.get)
    assert fitted.val_nll == min(fitted.search.values())
    # The coarse-to-fine search finds the best of the whole half-octave grid (checked by brute
    # force over every grid bandwidth).
    train = stretched_moons.train.double().numpy()
    val = stretched_moons.val.double().numpy()
    grid = kde_bandwidth_grid(*train.shape)
    kde = StandardisedKDE(train)
    brute = {h: nll(kde.set_bandwidth(h).log_prob(val)) for h in grid.values()}
    assert fitted.params["bandwidth"] == min(brute, key=brute.get)
    assert scott_factor(600, 2) == pytest.approx(600 ** (-1 / 6))
    assert "val NLL" in fitted.selection and "600 train points" in fitted.selection


def test_far_points_give_infinite_nll_and_are_never_dropped():
    sizes = (300, 200, 200)
    data = _dataset("far", lambda rng, n: rng.standard_normal((n, 2)), lambda x: x[:, 0] * 0,
                    sizes, dtype=torch.float64)
    test = data.test.clone()
    test[0] = torch.tensor([1e200, 1e200], dtype=torch.float64)  # density underflows to 0
    data = dataclasses.replace(data, test=test)
    table = reference_nlls(data, methods=["gaussian", "kde"]).set_index("method")
    assert (table["test_nll"] == math.inf).all()
    assert np.isfinite(table["val_nll"]).all() and np.isfinite(table["train_nll"]).all()
    assert nll(np.array([-1.0, -np.inf])) == math.inf
    assert nll(np.array([-1.0, -3.0])) == 2.0


# --- toy2d two_moons: nothing beats the truth ----------------------------------------------------


@pytest.fixture(scope="module")
def moons() -> Dataset:
    return load_toy2d("two_moons", n_train=2000, n_val=1000, n_test=1000)


@pytest.fixture(scope="module")
def moons_table(moons):
    return reference_nlls(moons)


def test_two_moons_references_do_not_beat_the_oracle(moons, moons_table):
    oracle = _oracle_nll(moons)
    table = moons_table.set_index("method")
    assert list(table.index) == list(REFERENCE_METHODS)
    for method in REFERENCE_METHODS:
        assert table.loc[method, "test_nll"] >= oracle - 0.01, method
        assert np.isfinite(table.loc[method, ["train_nll", "val_nll", "test_nll"]]).all()
    assert table.loc["gmm", "test_nll"] < table.loc["gaussian", "test_nll"] - 1.0
    assert table.loc["kde", "test_nll"] < table.loc["gaussian", "test_nll"] - 1.0


def test_table_columns_and_values(moons, moons_table):
    assert tuple(moons_table.columns) == COLUMNS == (
        "dataset", "method", "params", "selection", "train_nll", "val_nll", "test_nll",
        "fit_seconds",
    )
    assert list(moons_table["dataset"]) == ["two_moons"] * 3
    for _, row in moons_table.iterrows():
        assert isinstance(json.loads(row["params"]), dict)
        assert row["selection"] and "\n" not in row["selection"]
        assert row["fit_seconds"] >= 0
    gmm = json.loads(moons_table.set_index("method").loc["gmm", "params"])
    assert gmm["covariance_type"] == "full" and gmm["random_state"] == 0


def test_deterministic_for_a_seed(moons, moons_table):
    again = reference_nlls(moons, seed=0)
    cols = [c for c in COLUMNS if c != "fit_seconds"]
    assert again[cols].equals(moons_table[cols])
    one = reference_nlls(moons, methods=("kde",))
    kde_row = moons_table[moons_table["method"] == "kde"][cols].reset_index(drop=True)
    assert one[cols].equals(kde_row)


# --- errors ------------------------------------------------------------------------------------


def test_unknown_method_is_named_with_the_choices(moons):
    with pytest.raises(ValueError, match=r"'nope'.*gaussian, gmm, kde"):
        reference_nlls(moons, methods=("gaussian", "nope"))
    with pytest.raises(ValueError, match=r"'nope'"):
        fit_reference(moons, "nope")


def test_non_vector_data_is_refused_naming_the_kind(moons):
    images = dataclasses.replace(moons, kind="image")
    with pytest.raises(ValueError, match=r"'image'"):
        reference_nlls(images)
    with pytest.raises(ValueError, match=r"vector"):
        fit_reference(images, "gaussian")


# --- image data: digits ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> Dataset:
    from flowbench.data.images import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def digits_table(digits):
    return reference_nlls(digits)


def _histogram_nll(train: np.ndarray, x: np.ndarray, alpha: float, levels: int) -> float:
    """Independent categorical per pixel, add-alpha counts: the NLL by explicit counting."""
    n, dim = train.shape
    total = 0.0
    for d in range(dim):
        counts = np.array([(train[:, d] == v).sum() for v in range(levels)], dtype=float)
        p = (counts + alpha) / (n + levels * alpha)
        total -= np.log(p[x[:, d].astype(int)]).sum()
    return total / len(x)


def test_image_table_columns_and_bpd(digits, digits_table):
    assert tuple(digits_table.columns) == IMAGE_COLUMNS == COLUMNS + (
        "train_bpd", "val_bpd", "test_bpd")
    assert list(digits_table["method"]) == list(IMAGE_REFERENCE_METHODS) == [
        "histogram", "gaussian", "gmm"]
    assert REFERENCE_METHODS_BY_KIND == {"vector": REFERENCE_METHODS,
                                         "image": IMAGE_REFERENCE_METHODS}
    dim_ln2 = 64 * math.log(2)
    for _, row in digits_table.iterrows():
        assert isinstance(json.loads(row["params"]), dict)
        assert row["selection"] and "\n" not in row["selection"]
        for split in ("train", "val", "test"):
            bpd = row[f"{split}_bpd"]
            assert row[f"{split}_nll"] / dim_ln2 == pytest.approx(bpd, rel=1e-12)
            # Finite, and better than the uniform distribution over the 17 levels.
            assert np.isfinite(bpd) and 0 < bpd < math.log2(17), (row["method"], split)
    table = digits_table.set_index("method")
    # A mixture is at least about as good as one Gaussian.
    for split in ("val", "test"):
        assert table.loc["gmm", f"{split}_bpd"] < table.loc["gaussian", f"{split}_bpd"] + 0.02
    for method in ("gaussian", "gmm"):
        assert "upper bound" in table.loc[method, "selection"]
    assert "exact" in table.loc["histogram", "selection"]


def test_histogram_is_an_exact_count_based_nll(digits, digits_table):
    row = digits_table.set_index("method").loc["histogram"]
    alpha = json.loads(row["params"])["alpha"]
    train = digits.train.reshape(len(digits.train), -1).numpy()
    for split in ("train", "val", "test"):
        x = digits.splits()[split].reshape(-1, 64).numpy()
        assert row[f"{split}_nll"] == pytest.approx(_histogram_nll(train, x, alpha, 17),
                                                    rel=1e-12)


def test_histogram_alpha_is_the_val_best(digits):
    fitted = fit_reference(digits, "histogram")
    assert not fitted.dequantised
    assert set(fitted.search) == set(HISTOGRAM_ALPHAS)
    train = digits.train.reshape(-1, 64).numpy()
    val = digits.val.reshape(-1, 64).numpy()
    brute = {a: _histogram_nll(train, val, a, 17) for a in HISTOGRAM_ALPHAS}
    for alpha in HISTOGRAM_ALPHAS:
        assert fitted.search[alpha] == pytest.approx(brute[alpha], rel=1e-12)
    assert fitted.params["alpha"] == min(brute, key=brute.get)
    assert fitted.val_nll == min(fitted.search.values())
    # Smoothing is needed: some val pixel takes a value no train image has at that pixel, so the
    # unsmoothed (maximum-likelihood) histogram gives val an infinite NLL.
    unseen = [(val[:, d][:, None] != np.unique(train[:, d])[None, :]).all(1).any()
              for d in range(64)]
    assert any(unseen)


def test_image_gaussian_is_the_ridged_mle_of_dequantised_data(digits, digits_table):
    fitted = fit_reference(digits, "gaussian")
    assert fitted.dequantised
    data = dequantised_splits(digits)
    train = data.dequantised["train"]
    ridge = fitted.params["ridge"]
    assert ridge in IMAGE_GAUSSIAN_RIDGES and ridge == min(fitted.search, key=fitted.search.get)
    mle = multivariate_normal(train.mean(0), np.cov(train.T, bias=True) + ridge * np.eye(64))
    x = data.dequantised["test"][:50]
    np.testing.assert_allclose(fitted.log_prob(x), mle.logpdf(x), rtol=0, atol=1e-8)
    row = digits_table.set_index("method").loc["gaussian"]
    assert row["test_nll"] == pytest.approx(-mle.logpdf(data.dequantised["test"]).mean())


def test_dequantised_splits_are_the_flows_points_and_inside_each_bin(digits, digits_table):
    a, b = dequantised_splits(digits), dequantised_splits(digits)
    for split, images in digits.splits().items():
        x = images.reshape(-1, 64).numpy()
        np.testing.assert_array_equal(a.discrete[split], x)
        u = a.dequantised[split] - x
        assert u.min() >= 0 and u.max() < 1 and 0.45 < u.mean() < 0.55
        np.testing.assert_array_equal(a.dequantised[split], b.dequantised[split])
        # Exactly the points a flow's NLL of this split is measured on (the runner's
        # evaluate_nll(flow, split, noise_seed=DEQUANTISE_SEEDS[split])), train included.
        flows = dequantised(images, DEQUANTISE_SEEDS[split]).reshape(-1, 64).double().numpy()
        np.testing.assert_array_equal(a.dequantised[split], flows)
    assert not np.array_equal(a.dequantised["val"] - a.discrete["val"],
                              a.dequantised["test"][:300] - a.discrete["test"][:300])
    # The reference seed seeds the GMMs only: the noise, and so the Gaussian, do not move.
    cols = [c for c in IMAGE_COLUMNS if c != "fit_seconds"]
    other_seed = reference_nlls(digits, seed=1, methods=("gaussian",))
    expected = digits_table[digits_table["method"] == "gaussian"][cols].reset_index(drop=True)
    assert other_seed[cols].equals(expected)


def test_gaussian_ridge_search_skips_a_singular_covariance(digits):
    # 40 train images of 64 pixels: the unridged covariance has rank 39 and no density.
    few = dataclasses.replace(digits, train=digits.train[:40])
    fitted = fit_reference(few, "gaussian")
    assert math.isnan(fitted.search[0.0]) and "0: singular" in fitted.selection
    assert fitted.params["ridge"] > 0 and math.isfinite(fitted.val_nll)
    assert fitted.val_nll == min(v for v in fitted.search.values() if not math.isnan(v))
    # For vectors there is no ridge: a singular covariance is an error, said as such.
    line = np.linspace(0, 1, 30)[:, None] * np.array([[1.0, 0.0]])  # zero variance in y
    flat = Dataset(name="line", train=torch.as_tensor(line), val=torch.as_tensor(line[:5]),
                   test=torch.as_tensor(line[:5]), event_shape=(2,))
    with pytest.raises(ValueError, match="singular"):
        fit_reference(flat, "gaussian")


def test_image_gmm_selection(digits_table):
    row = digits_table.set_index("method").loc["gmm"]
    params = json.loads(row["params"])
    candidates = image_gmm_candidates(1197, 64)
    assert (params["covariance_type"], params["reg_covar"]) in candidates
    assert params["n_components"] in candidates[(params["covariance_type"], params["reg_covar"])]
    # digits is small enough for full covariances; the work cap leaves MNIST / CIFAR to diag.
    assert {c for c, _ in candidates} == {"full", "diag"}
    assert {c for c, _ in image_gmm_candidates(50000, 784)} == {"diag"}
    assert max(k for ks in image_gmm_candidates(45000, 3072).values() for k in ks) <= 16


def test_image_references_deterministic(digits, digits_table):
    again = reference_nlls(digits, seed=0, methods=("histogram", "gmm"))
    cols = [c for c in IMAGE_COLUMNS if c != "fit_seconds"]
    expected = digits_table[digits_table["method"] != "gaussian"][cols].reset_index(drop=True)
    assert again[cols].equals(expected)


# --- image data: a 1-pixel image whose discrete likelihood is exact ------------------------------


def test_dequantised_gaussian_nll_bounds_its_discrete_nll():
    from scipy.stats import norm

    levels, sizes = 6, (3000, 1000, 20000)
    rng = np.random.default_rng(3)
    p = np.array([0.05, 0.2, 0.3, 0.25, 0.15, 0.05])
    splits = [torch.as_tensor(rng.choice(levels, size=(n, 1, 1, 1), p=p), dtype=torch.float32)
              for n in sizes]
    data = Dataset(name="pixel", train=splits[0], val=splits[1], test=splits[2],
                   event_shape=(1, 1, 1), kind="image", levels=levels)
    table = reference_nlls(data, methods=("histogram", "gaussian")).set_index("method")
    entropy = float(-(p * np.log(p)).sum())
    # The histogram is the true model here: within Monte Carlo error of the entropy.
    assert abs(table.loc["histogram", "test_nll"] - entropy) < 4 * 1.3 / math.sqrt(20000)
    # The Gaussian's exact discrete NLL, -log of its mass on each unit bin, is at most its
    # dequantised NLL (Jensen), which is what the table reports.
    fitted = fit_reference(data, "gaussian")
    sd = math.exp(0.5 * fitted.params["logdet_covariance"])  # in 1-D, logdet = log variance
    centre = dequantised_splits(data).dequantised["train"].mean()
    x = data.test.reshape(-1).double().numpy()
    mass = norm.cdf(x + 1, centre, sd) - norm.cdf(x, centre, sd)
    discrete_nll = float(-np.log(mass).mean())
    assert discrete_nll <= table.loc["gaussian", "test_nll"]
    assert table.loc["gaussian", "test_nll"] - discrete_nll < 0.1
    assert table.loc["histogram", "test_nll"] < discrete_nll


# --- image data: errors --------------------------------------------------------------------------


def test_methods_not_offered_for_a_kind_are_refused(digits, moons):
    with pytest.raises(ValueError,
                       match=r"'kde'.*not available for image.*histogram, gaussian, gmm"):
        reference_nlls(digits, methods=("histogram", "kde"))
    with pytest.raises(ValueError, match=r"'kde'.*image"):
        fit_reference(digits, "kde")
    with pytest.raises(ValueError, match=r"'nope'.*image data: histogram, gaussian, gmm"):
        reference_nlls(digits, methods="nope")
    with pytest.raises(ValueError, match=r"'histogram'.*vector.*gaussian, gmm, kde"):
        reference_nlls(moons, methods=("histogram",))


def test_image_data_must_hold_integer_levels(digits):
    scaled = dataclasses.replace(digits, train=digits.train / 16)
    with pytest.raises(ValueError, match=r"train split must hold the integer pixel values 0..16"):
        reference_nlls(scaled, methods=("histogram",))
    too_high = dataclasses.replace(digits, levels=10)
    with pytest.raises(ValueError, match=r"0..9"):
        reference_nlls(too_high, methods=("gaussian",))
    wrong_shape = dataclasses.replace(digits, event_shape=(64,))
    with pytest.raises(ValueError, match=r"event_shape"):
        fit_reference(wrong_shape, "histogram")
