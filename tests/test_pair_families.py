"""Tests of the random pair families (Gaussian pairs with exact maps, Gaussian mixture pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from skmetaot.datasets import (
    GaussianPair,
    make_gaussian_mixture_pairs,
    make_gaussian_pair_samples,
    make_gaussian_pairs,
)

N_MOMENTS = 20000


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def _parameters(pair: GaussianPair) -> np.ndarray:
    return np.concatenate([pair.mean_source, pair.cov_source.ravel(), pair.mean_target,
                           pair.cov_target.ravel()])


# -- make_gaussian_pairs -----------------------------------------------------------------------


def test_gaussian_pairs_reproducible_and_distinct():
    first = make_gaussian_pairs(4, 3, random_state=7)
    again = make_gaussian_pairs(4, 3, random_state=7)
    other = make_gaussian_pairs(4, 3, random_state=8)
    assert len(first) == 4 and all(isinstance(p, GaussianPair) for p in first)
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(_parameters(a), _parameters(b))
        np.testing.assert_array_equal(a.x_test, b.x_test)
        assert not np.allclose(_parameters(a), _parameters(c))
    # Pairs of one family differ, and so do their test sets' seeds.
    params = [_parameters(p) for p in first]
    assert all(not np.allclose(params[i], params[j]) for i in range(4) for j in range(i))
    assert len({p._test_seed for p in first}) == 4
    # A Generator is advanced, so two calls with it give different families.
    rng = np.random.default_rng(0)
    assert not np.allclose(_parameters(make_gaussian_pairs(1, 2, random_state=rng)[0]),
                           _parameters(make_gaussian_pairs(1, 2, random_state=rng)[0]))


def test_gaussian_pairs_parameters_in_range():
    pairs = make_gaussian_pairs(6, 4, mean_scale=0.5, eigen_range=(0.3, 1.5), n_test=100,
                                random_state=1)
    for pair in pairs:
        assert pair.dim == 4 and pair.x_test.shape == (100, 4)
        assert pair.x_test.dtype == np.float32
        for mean in (pair.mean_source, pair.mean_target):
            assert np.all(np.abs(mean) <= 0.5)
        for cov in (pair.cov_source, pair.cov_target):
            eigenvalues = np.linalg.eigvalsh(cov)
            assert eigenvalues.min() >= 0.3 - 1e-9 and eigenvalues.max() <= 1.5 + 1e-9
            # Rotated, not axis-aligned: some off-diagonal mass.
            assert np.abs(cov - np.diag(np.diag(cov))).max() > 1e-3
    means = np.array([p.mean_source for p in pairs]).ravel()
    assert means.min() < -0.25 and means.max() > 0.25  # spread over the box, not all near 0


@pytest.mark.parametrize("dim", [1, 3])
def test_exact_map_pushes_source_to_target_moments(dim):
    for pair in make_gaussian_pairs(3, dim, random_state=2):
        x = pair.sample_source(N_MOMENTS, random_state=3)
        mean, cov = _moments(x)
        np.testing.assert_allclose(mean, pair.mean_source, atol=0.05)
        np.testing.assert_allclose(cov.reshape(dim, dim), pair.cov_source, atol=0.1)
        mean, cov = _moments(pair.transport_map(x))
        np.testing.assert_allclose(mean, pair.mean_target, atol=0.05)
        np.testing.assert_allclose(cov.reshape(dim, dim), pair.cov_target, atol=0.1)
        assert pair.uvp(pair.transport_map(pair.x_test)) < 1e-6
        # The identity is not the map: the test would notice a map that does nothing.
        assert pair.uvp(pair.x_test) > 1


# -- make_gaussian_pair_samples ------------------------------------------------------------------


def test_pair_samples_shapes_moments_and_reproducibility():
    pairs = make_gaussian_pairs(3, 2, random_state=4)
    samples = make_gaussian_pair_samples(pairs, N_MOMENTS, random_state=5)
    assert len(samples) == 3
    for pair, (xs, xt) in zip(pairs, samples, strict=True):
        assert xs.shape == xt.shape == (N_MOMENTS, 2)
        assert xs.dtype == xt.dtype == np.float32
        for x, mean_true, cov_true in ((xs, pair.mean_source, pair.cov_source),
                                       (xt, pair.mean_target, pair.cov_target)):
            mean, cov = _moments(x)
            np.testing.assert_allclose(mean, mean_true, atol=0.05)
            np.testing.assert_allclose(cov, cov_true, atol=0.1)
    again = make_gaussian_pair_samples(pairs, N_MOMENTS, random_state=5)
    other = make_gaussian_pair_samples(pairs, N_MOMENTS, random_state=6)
    for (a, b), (c, d), (e, _) in zip(samples, again, other, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        assert not np.array_equal(a, e)


def test_pair_samples_default_size_and_errors():
    pairs = make_gaussian_pairs(2, 2, n_samples=300, random_state=0)
    assert [xs.shape for xs, _ in make_gaussian_pair_samples(pairs)] == [(300, 2)] * 2
    assert make_gaussian_pair_samples(pairs, 50)[1][1].shape == (50, 2)
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        make_gaussian_pair_samples(pairs, 0)
    with pytest.raises(ValueError, match="empty"):
        make_gaussian_pair_samples([], 10)
    with pytest.raises(TypeError, match="KnownMapPair"):
        make_gaussian_pair_samples(pairs[0], 10)
    with pytest.raises(TypeError, match=r"pairs\[1\]"):
        make_gaussian_pair_samples([pairs[0], (np.zeros((3, 2)), np.zeros((3, 2)))], 10)


# -- make_gaussian_mixture_pairs -----------------------------------------------------------------


def test_mixture_pairs_shapes_and_reproducibility():
    pairs = make_gaussian_mixture_pairs(5, 3, n_samples=200, random_state=0)
    assert len(pairs) == 5
    for xs, xt in pairs:
        assert xs.shape == xt.shape == (200, 3)
        assert xs.dtype == xt.dtype == np.float32
        assert np.all(np.isfinite(xs)) and np.all(np.isfinite(xt))
        assert not np.allclose(xs.mean(0), xt.mean(0))
    again = make_gaussian_mixture_pairs(5, 3, n_samples=200, random_state=0)
    other = make_gaussian_mixture_pairs(5, 3, n_samples=200, random_state=1)
    for (a, b), (c, d), (e, _) in zip(pairs, again, other, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        assert not np.array_equal(a, e)
    assert not np.array_equal(pairs[0][0], pairs[1][0])


def test_single_component_mixtures_follow_the_documented_law():
    # With one component each measure is one Gaussian: mean in [-2, 2]^d, eigenvalues in
    # [0.05, 0.5] (up to the sampling error of N_MOMENTS points).
    for xs, xt in make_gaussian_mixture_pairs(4, 2, n_components=1, n_samples=N_MOMENTS,
                                              random_state=3):
        for x in (xs, xt):
            mean, cov = _moments(x)
            assert np.all(np.abs(mean) <= 2.02)
            eigenvalues = np.linalg.eigvalsh(cov)
            assert eigenvalues.min() > 0.05 * 0.9 and eigenvalues.max() < 0.5 * 1.1


def test_mixtures_have_several_components():
    # One component has a total variance of at most 2 * 0.5 = 1 in 2-D; 4 components with means
    # spread over [-2, 2]^2 add about 1.6 of between-component variance on average.
    spreads = [np.trace(_moments(xs)[1]) for xs, _ in
               make_gaussian_mixture_pairs(20, 2, n_components=(4, 4), n_samples=2000,
                                           random_state=4)]
    assert np.mean(spreads) > 1.5
    assert max(spreads) > 1.1


# -- argument checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_pairs": 0}, "n_pairs must be a positive integer"),
        ({"n_pairs": 2.5}, "n_pairs must be a positive integer"),
        ({"n_pairs": True}, "n_pairs must be a positive integer"),
        ({"dim": 0}, "dim must be a positive integer"),
        ({"n_samples": -1}, "n_samples must be a positive integer"),
        ({"n_test": 0}, "n_test must be a positive integer"),
        ({"eigen_range": (0.0, 1.0)}, "eigen_range must satisfy 0 < low <= high"),
        ({"eigen_range": (2.0, 1.0)}, "eigen_range must satisfy 0 < low <= high"),
        ({"eigen_range": (np.nan, 1.0)}, "eigen_range must satisfy 0 < low <= high"),
        ({"eigen_range": (1.0,)}, r"eigen_range must be a pair \(low, high\)"),
        ({"eigen_range": ("a", "b")}, "eigen_range must hold two numbers"),
        ({"mean_scale": -1.0}, "mean_scale must be a finite number >= 0"),
        ({"mean_scale": np.inf}, "mean_scale must be a finite number >= 0"),
    ],
)
def test_gaussian_pairs_bad_arguments(kwargs, match):
    arguments = {"n_pairs": 2, "dim": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_gaussian_pairs(**arguments)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_pairs": 0}, "n_pairs must be a positive integer"),
        ({"dim": -2}, "dim must be a positive integer"),
        ({"n_samples": 0}, "n_samples must be a positive integer"),
        ({"n_components": 0}, "n_components must be a positive integer"),
        ({"n_components": (0, 3)}, "n_components must be a positive integer"),
        ({"n_components": (3, 1)}, "n_components must satisfy 0 < low <= high"),
        ({"n_components": (1, 2, 3)}, r"n_components must be a pair \(low, high\)"),
    ],
)
def test_mixture_pairs_bad_arguments(kwargs, match):
    arguments = {"n_pairs": 2, "dim": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_gaussian_mixture_pairs(**arguments)
