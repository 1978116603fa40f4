"""Gaussian pairs with the closed-form map, and the 2-D toy samplers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skmetaot.datasets import (
    GaussianPair,
    make_gaussian_pair,
    sample_checkerboard,
    sample_eight_gaussians,
)
from skmetaot.metrics import w2_gaussian


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: on a small shared CPU the torch thread pool runs ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@settings(max_examples=30)
@given(dim=st.integers(1, 16), seed=st.integers(0, 2**32 - 1))
def test_closed_form_properties(dim, seed):
    pair = make_gaussian_pair(dim, random_state=seed, n_test=8)
    a = pair.transport_matrix
    np.testing.assert_array_equal(a, a.T)
    assert np.linalg.eigvalsh(a).min() > 0
    # A pushes S_a to S_b and the map sends m_a to m_b: T#N(m_a, S_a) = N(m_b, S_b).
    np.testing.assert_allclose(a @ pair.cov_source @ a, pair.cov_target, atol=1e-10)
    np.testing.assert_allclose(pair.transport_map(pair.mean_source), pair.mean_target,
                               atol=1e-10)
    expected = w2_gaussian(pair.mean_source, pair.cov_source, pair.mean_target, pair.cov_target)
    assert pair.w2_squared == pytest.approx(expected, rel=1e-9, abs=1e-12)
    for cov in (pair.cov_source, pair.cov_target):
        eigenvalues = np.linalg.eigvalsh(cov)
        assert 0.5 - 1e-12 <= eigenvalues.min() and eigenvalues.max() <= 2 + 1e-12
    assert pair.var_target == pytest.approx(np.trace(pair.cov_target))
    assert pair.x_test.shape == (8, dim) and pair.dim == dim


def test_monte_carlo_moments_and_cost():
    pair = make_gaussian_pair(4, random_state=0, dtype="float64")
    x = pair.sample_source(2**17, random_state=1)
    y = pair.transport_map(x)
    for samples, mean, cov in ((x, pair.mean_source, pair.cov_source),
                               (y, pair.mean_target, pair.cov_target),
                               (pair.sample_target(2**17, 2), pair.mean_target, pair.cov_target)):
        assert np.abs(samples.mean(0) - mean).max() < 0.02
        assert np.abs(np.cov(samples.T) - cov).max() < 0.03
    cost = np.mean(np.sum((x - y) ** 2, 1))
    assert cost == pytest.approx(pair.w2_squared, rel=0.02)


def test_uvp_and_cosine():
    pair = make_gaussian_pair(5, random_state=3)
    assert pair.uvp(pair.transport_map(pair.x_test)) == pytest.approx(0.0, abs=1e-9)
    assert pair.uvp(pair.Tx_test) == 0.0
    identity = pair.uvp(pair.x_test)
    step = pair.Tx_test.astype(np.float64) - pair.x_test
    assert identity > 0
    assert identity == pytest.approx(100 * np.mean(np.sum(step**2, 1)) / pair.var_target)
    assert pair.cosine(pair.Tx_test) == pytest.approx(1.0)
    assert pair.cosine(pair.x_test) == 0.0
    assert pair.uvp(lambda x: np.zeros_like(x) + pair.mean_target) == pytest.approx(100, rel=0.1)


def test_potential_gradient_and_array_kinds():
    pair = make_gaussian_pair(3, random_state=4)
    x = pair.sample_source(6, random_state=0).astype(np.float64)
    v = np.random.default_rng(0).standard_normal(x.shape)
    h = 1e-6
    numeric = (pair.potential(x + h * v) - pair.potential(x - h * v)) / (2 * h)
    np.testing.assert_allclose(numeric, np.sum(pair.transport_map(x) * v, 1), atol=1e-7)
    out = pair.transport_map(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert isinstance(pair.transport_map(x.astype(np.float32)), np.ndarray)
    assert pair.transport_map(x.astype(np.float32)).dtype == np.float32


def test_reproducible_with_random_state():
    a, b = make_gaussian_pair(6, random_state=11), make_gaussian_pair(6, random_state=11)
    np.testing.assert_array_equal(a.cov_target, b.cov_target)
    np.testing.assert_array_equal(a.mean_source, b.mean_source)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.as_pair(10, 1)[1], b.as_pair(10, 1)[1])
    c = make_gaussian_pair(6, random_state=12)
    assert not np.allclose(a.cov_source, c.cov_source)
    assert not np.allclose(a.x_test, c.x_test)
    xs, xt = a.as_pair(50, random_state=np.random.default_rng(0))
    assert xs.shape == xt.shape == (50, 6) and xs.dtype == np.float32
    assert make_gaussian_pair(2, random_state=np.random.RandomState(0)).dim == 2


def test_validation():
    for dim in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="dim"):
            make_gaussian_pair(dim)
    with pytest.raises(ValueError, match="eigenvalue_range"):
        make_gaussian_pair(2, eigenvalue_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianPair(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        GaussianPair(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    pair = GaussianPair(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2), n_test=16)
    np.testing.assert_allclose(pair.transport_matrix, 2 * np.eye(2))
    assert pair.w2_squared == pytest.approx(2 + 2)


# -- toy samplers ------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", [sample_checkerboard, sample_eight_gaussians])
def test_toy_shapes_and_reproducibility(sampler):
    x = sampler(500, random_state=0)
    assert x.shape == (500, 2) and x.dtype == np.float64
    np.testing.assert_array_equal(x, sampler(500, random_state=0))
    assert not np.allclose(x, sampler(500, random_state=1))
    assert sampler(0, random_state=0).shape == (0, 2)
    with pytest.raises(ValueError, match="non-negative"):
        sampler(-3)


def test_checkerboard_support_and_uniformity():
    x = sample_checkerboard(40000, random_state=0)
    assert np.all(np.abs(x) <= 4)
    cells = np.floor(x / 2).astype(int)
    assert np.all((cells.sum(1) % 2) == 0)  # every point on a black square
    _, counts = np.unique(cells, axis=0, return_counts=True)
    assert len(counts) == 8  # all 8 black squares, each with about 1/8 of the points
    assert np.all(np.abs(counts / len(x) - 1 / 8) < 0.01)


def test_eight_gaussians_components():
    radius, scale = 3.0, 0.1
    x = sample_eight_gaussians(40000, random_state=0, radius=radius, scale=scale)
    angles = np.arange(8) * np.pi / 4
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    nearest = np.argmin(((x[:, None] - centres) ** 2).sum(-1), 1)
    offset = x - centres[nearest]
    assert np.all(np.abs(np.bincount(nearest, minlength=8) / len(x) - 1 / 8) < 0.01)
    np.testing.assert_allclose(offset.std(0), scale, rtol=0.03)
    default = sample_eight_gaussians(40000, random_state=1)
    assert np.linalg.norm(default, axis=1).mean() == pytest.approx(4 / 1.414, rel=0.02)
