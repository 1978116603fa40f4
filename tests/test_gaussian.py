"""Closed-form Gaussian OT (skmetaot._gaussian): moments, PSD roots, the Bures map and W2."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skmetaot._gaussian import (
    bures_map,
    bures_potential,
    bures_transport,
    bures_wasserstein_squared,
    psd_power,
    sqeuclidean_potential,
    weighted_moments,
)
from skmetaot.amortize.w2gn import gaussian_baseline
from skmetaot.metrics import w2_gaussian


@st.composite
def gaussians(draw, max_dim: int = 6):
    """Two Gaussians of one dimension: rotated covariances, eigenvalues over three decades."""
    dim = draw(st.integers(1, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    eigen = st.lists(st.floats(1e-2, 10.0), min_size=dim, max_size=dim)
    moments = []
    for _ in range(2):
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        cov = (q * np.array(draw(eigen))) @ q.T
        moments += [torch.from_numpy(3 * rng.standard_normal(dim)),
                    torch.from_numpy((cov + cov.T) / 2)]
    return moments


@settings(max_examples=40)
@given(gaussians())
def test_bures_map_pushes_one_gaussian_to_the_other(moments):
    mean_a, cov_a, mean_b, cov_b = moments
    matrix, bias = bures_map(mean_a, cov_a, mean_b, cov_b)
    assert torch.equal(matrix, matrix.T)
    assert torch.linalg.eigvalsh(matrix).min() > 0
    # T(x) = A x + c sends N(m_a, S_a) to N(A m_a + c, A S_a A) = N(m_b, S_b).
    torch.testing.assert_close(matrix @ cov_a @ matrix, cov_b, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(bures_transport(mean_a[None], matrix, bias)[0], mean_b)
    # ... and it is the optimal map: POT's closed form agrees.
    pot_matrix, pot_bias = ot.gaussian.bures_wasserstein_mapping(
        mean_a[None].numpy(), mean_b[None].numpy(), cov_a.numpy(), cov_b.numpy())
    np.testing.assert_allclose(matrix.numpy(), pot_matrix, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(bias.numpy(), pot_bias.ravel(), rtol=1e-6, atol=1e-7)


@settings(max_examples=40)
@given(gaussians())
def test_w2_is_symmetric_nonnegative_zero_on_itself_and_matches_pot(moments):
    mean_a, cov_a, mean_b, cov_b = moments
    value = float(bures_wasserstein_squared(mean_a, cov_a, mean_b, cov_b))
    assert value >= 0
    assert value == pytest.approx(float(bures_wasserstein_squared(mean_b, cov_b, mean_a, cov_a)),
                                  rel=1e-9, abs=1e-9)
    scale = float(cov_a.trace())
    assert 0 <= float(bures_wasserstein_squared(mean_a, cov_a, mean_a, cov_a)) < 1e-10 * scale
    pot = float(ot.gaussian.bures_wasserstein_distance(
        mean_a.numpy(), mean_b.numpy(), cov_a.numpy(), cov_b.numpy()))
    assert value == pytest.approx(pot ** 2, rel=1e-8, abs=1e-9)
    assert w2_gaussian(mean_a.numpy(), cov_a.numpy(), mean_b.numpy(), cov_b.numpy()) == value
    # W2^2 is the cost of the Bures map: E|T(x) - x|^2 under N(m_a, S_a), in closed form.
    matrix, bias = bures_map(mean_a, cov_a, mean_b, cov_b)
    shift = bures_transport(mean_a[None], matrix, bias)[0] - mean_a
    eye = torch.eye(len(mean_a), dtype=torch.float64)
    cost = shift @ shift + torch.trace((matrix - eye) @ cov_a @ (matrix - eye))
    assert value == pytest.approx(float(cost), rel=1e-7, abs=1e-9)


@settings(max_examples=30)
@given(gaussians())
def test_potentials_have_the_map_as_gradient(moments):
    matrix, bias = bures_map(*moments)
    points = torch.randn(7, len(bias), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(bures_potential(points, matrix, bias).sum(), points)
    torch.testing.assert_close(grad, bures_transport(points, matrix, bias))
    # For c = |x - y|^2 the dual potential f = |x|^2 - 2 phi gives T(x) = x - grad f(x) / 2.
    (grad_f,) = torch.autograd.grad(sqeuclidean_potential(points, matrix, bias).sum(), points)
    torch.testing.assert_close(points - grad_f / 2, bures_transport(points, matrix, bias))


def test_batches_agree_with_one_problem_at_a_time():
    gen = torch.Generator().manual_seed(0)
    factors = torch.randn(2, 4, 3, 3, generator=gen, dtype=torch.float64)
    covs = factors @ factors.transpose(-1, -2) + 0.1 * torch.eye(3, dtype=torch.float64)
    means = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    matrix, bias = bures_map(means[0], covs[0], means[1], covs[1])
    w2 = bures_wasserstein_squared(means[0], covs[0], means[1], covs[1])
    points = torch.randn(4, 5, 3, generator=gen, dtype=torch.float64)
    potential = bures_potential(points, matrix, bias)
    assert matrix.shape == (4, 3, 3) and bias.shape == (4, 3) and w2.shape == (4,)
    for k in range(4):
        one = bures_map(means[0, k], covs[0, k], means[1, k], covs[1, k])
        torch.testing.assert_close(matrix[k], one[0])
        torch.testing.assert_close(bias[k], one[1])
        torch.testing.assert_close(potential[k], bures_potential(points[k], *one))
        torch.testing.assert_close(bures_transport(points, matrix, bias)[k],
                                   bures_transport(points[k], *one))
        torch.testing.assert_close(w2[k], bures_wasserstein_squared(
            means[0, k], covs[0, k], means[1, k], covs[1, k]))


def test_psd_power_roots_and_floor():
    gen = torch.Generator().manual_seed(1)
    factor = torch.randn(3, 4, 4, generator=gen, dtype=torch.float64)
    spd = factor @ factor.transpose(-1, -2) + 0.5 * torch.eye(4, dtype=torch.float64)
    root = psd_power(spd)
    torch.testing.assert_close(root @ root, spd)
    torch.testing.assert_close(psd_power(spd, -0.5) @ root, torch.eye(4, dtype=torch.float64)
                               .expand(3, 4, 4))
    torch.testing.assert_close(psd_power(spd, 1.0), spd)
    # Rounding below zero on a singular matrix becomes an exact zero, not a NaN.
    singular = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(psd_power(singular), singular / np.sqrt(2))
    # A per-matrix floor bounds the inverse root.
    floors = torch.tensor([1e-2, 1e-4], dtype=torch.float64)
    inverse = psd_power(torch.zeros(2, 2, 2, dtype=torch.float64), -0.5, floors)
    torch.testing.assert_close(inverse.diagonal(dim1=-2, dim2=-1),
                               floors.rsqrt()[:, None].expand(2, 2))


def test_weighted_moments_match_numpy():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((3, 30, 2))
    weights = rng.random((3, 30))
    weights /= weights.sum(1, keepdims=True)
    mean, cov = weighted_moments(torch.from_numpy(points), torch.from_numpy(weights))
    for k in range(3):
        np.testing.assert_allclose(mean[k].numpy(), weights[k] @ points[k])
        np.testing.assert_allclose(cov[k].numpy(), np.cov(points[k].T, aweights=weights[k],
                                                           bias=True))
    # One support shared by the batch, and uniform weights by default.
    shared_mean, shared_cov = weighted_moments(torch.from_numpy(points[0]),
                                               torch.from_numpy(weights))
    assert shared_mean.shape == (3, 2) and shared_cov.shape == (3, 2, 2)
    torch.testing.assert_close(shared_mean[0], mean[0])
    uniform_mean, uniform_cov = weighted_moments(torch.from_numpy(points[1]))
    np.testing.assert_allclose(uniform_mean.numpy(), points[1].mean(0))
    np.testing.assert_allclose(uniform_cov.numpy(), np.cov(points[1].T, bias=True))


def test_baseline_between_two_point_masses_is_a_translation():
    # Both covariances get the same ridge, so the map between two Dirac masses is x + m_b - m_a
    # (the cross term's eigenvalues, the product of the two ridges, are not floored away).
    means = torch.tensor([[0.0, 1.0]], dtype=torch.float64), torch.tensor([[2.0, 3.0]],
                                                                          dtype=torch.float64)
    zero = torch.zeros(1, 2, 2, dtype=torch.float64)
    baseline = gaussian_baseline(means[0], zero, means[1], zero)
    eye = torch.eye(2, dtype=torch.float64)[None]
    torch.testing.assert_close(baseline.matrix, eye)
    torch.testing.assert_close(baseline.inverse_matrix, eye)
    torch.testing.assert_close(baseline.shift, means[1] - means[0])
    torch.testing.assert_close(baseline.inverse_shift, means[0] - means[1])


@pytest.mark.parametrize("args, name", [
    ((np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)), "cov_a"),
    ((np.zeros(2), np.eye(2), np.zeros(3), np.eye(2)), "mean_b"),
    ((np.zeros((1, 2)), np.eye(2), np.zeros(2), np.eye(2)), "mean_a"),
    ((np.zeros(2), np.eye(2), np.zeros(2), np.ones((2, 2, 1))), "cov_b"),
])
def test_w2_gaussian_names_the_bad_argument(args, name):
    with pytest.raises(ValueError, match=name):
        w2_gaussian(*args)
