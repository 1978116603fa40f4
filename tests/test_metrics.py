"""Quality measures: marginal error, dual objective, UVP and the Gaussian W2 closed form."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from scipy.stats import special_ortho_group

from skmetaot import sinkhorn
from skmetaot.metrics import dual_objective, marginal_error, uvp, w2_gaussian


# -- marginal_error -------------------------------------------------------------------------
def test_marginal_error_by_hand():
    plan = np.full((2, 2), 0.25)
    assert marginal_error(plan, np.array([0.5, 0.5]), np.array([0.7, 0.3])) == pytest.approx(0.4)
    plan = np.array([[0.1, 0.2, 0.0], [0.3, 0.0, 0.4]])
    a, b = np.array([0.5, 0.5]), np.array([0.2, 0.2, 0.6])
    # rows: |0.3 - 0.5| + |0.7 - 0.5| = 0.4; columns: 0.2 + 0 + 0.2 = 0.4
    assert isinstance(marginal_error(plan, a, b), float)
    assert marginal_error(plan, a, b) == pytest.approx(0.8)
    assert marginal_error(np.outer(a, b), a, b) == pytest.approx(0.0, abs=1e-16)


def test_marginal_error_batched_and_kinds(rng):
    plans = rng.random((3, 4, 5)) / 20
    a, b = rng.random((3, 4)), rng.random((3, 5))
    expected = (np.abs(plans.sum(2) - a).sum(1) + np.abs(plans.sum(1) - b).sum(1))
    got = marginal_error(plans, a, b)
    assert isinstance(got, np.ndarray) and got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    got_t = marginal_error(torch.from_numpy(plans), torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(got_t, torch.Tensor)
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-12)


def test_marginal_error_rejects_nan():
    with pytest.raises(ValueError, match="plan.*NaN"):
        marginal_error(np.array([[np.nan]]), np.ones(1), np.ones(1))


def test_marginal_error_matches_solver_errors(rng):
    x, y = rng.random((7, 2)), rng.random((9, 2))
    res = sinkhorn(np.ones((2, 7)), rng.random((2, 9)) + 0.1, x=x, y=y, epsilon=0.05, tol=1e-3,
                   max_iter=4)
    b = res._pairs.b.numpy()
    np.testing.assert_allclose(marginal_error(res.plan(), np.full((2, 7), 1 / 7), b), res.errors,
                               rtol=1e-10)


# -- dual_objective -------------------------------------------------------------------------
def test_dual_objective_by_hand():
    f, g = np.array([1.0, 2.0]), np.array([3.0, -1.0, 0.5])
    a, b = np.array([0.25, 0.75]), np.array([0.5, 0.3, 0.2])
    expected = 0.25 + 1.5 + 1.5 - 0.3 + 0.1
    assert isinstance(dual_objective(f, g, a, b), float)
    assert dual_objective(f, g, a, b) == pytest.approx(expected)


def test_dual_objective_zero_weights_with_minus_inf_potentials():
    f = np.array([1.0, -np.inf, 2.0])
    g = np.array([-np.inf, 4.0])
    a, b = np.array([0.5, 0.0, 0.5]), np.array([0.0, 1.0])
    value = dual_objective(f, g, a, b)
    assert not np.isnan(value)
    assert value == pytest.approx(1.5 + 4.0)
    # Docstring example.
    assert dual_objective(np.array([1.0, -np.inf]), np.array([2.0]), np.array([1.0, 0.0]),
                          np.array([1.0])) == pytest.approx(3.0)
    # Batched, numpy and torch.
    fs, gs = np.stack([f, f + 1]), np.stack([g, g])
    as_, bs = np.stack([a, a]), np.stack([b, b])
    batched = dual_objective(fs, gs, as_, bs)
    assert not np.isnan(batched).any()
    np.testing.assert_allclose(batched, [5.5, 6.5])
    torch_value = dual_objective(*(torch.from_numpy(v) for v in (fs, gs, as_, bs)))
    assert isinstance(torch_value, torch.Tensor)
    np.testing.assert_allclose(torch_value.numpy(), [5.5, 6.5])


def test_dual_objective_of_sinkhorn_solution(rng):
    # With g = g(f), <f, a> + <g, b> equals the entropic primal <C, P> - eps H(P) plus eps.
    x, y = rng.random((6, 2)), rng.random((5, 2))
    a = np.array([0.3, 0.0, 0.2, 0.1, 0.25, 0.15])
    b = np.full(5, 0.2)
    eps = 0.05
    res = sinkhorn(a, b, x=x, y=y, epsilon=eps, tol=1e-12, max_iter=100_000)
    value = dual_objective(res.f, res.g, a, b)
    assert np.isfinite(value)
    plan = res.plan()
    cost = ot.dist(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(plan > 0, plan * (np.log(plan) - 1), 0.0).sum()
    # log P = (f + g - C) / eps, so <C, P> - eps H(P) = <f, a> + <g, b> - eps sum(P), sum(P) = 1.
    assert value == pytest.approx((cost * plan).sum() - eps * entropy + eps, abs=1e-9)


# -- uvp ------------------------------------------------------------------------------------
def test_uvp_by_hand():
    truth = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    assert uvp(np.zeros((4, 1)), truth) == pytest.approx(100.0)
    assert uvp(truth, truth) == 0.0
    assert uvp(truth + 0.5, truth) == pytest.approx(25.0)
    assert uvp(truth + 0.5, truth, target_variance=0.5) == pytest.approx(50.0)
    rng = np.random.default_rng(0)
    est, ref = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    expected = 100 * ((est - ref) ** 2).sum(1).mean() / ref.var(0).sum()
    assert uvp(est, ref) == pytest.approx(expected)
    assert uvp(torch.from_numpy(est), torch.from_numpy(ref)) == pytest.approx(expected)


def test_uvp_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        uvp(np.zeros((4, 2)), np.zeros((4, 3)))


# -- w2_gaussian ----------------------------------------------------------------------------
def test_w2_gaussian_by_hand():
    # Docstring example: identity covariances, means one apart in each coordinate.
    assert w2_gaussian(np.zeros(2), np.eye(2), np.ones(2), np.eye(2)) == pytest.approx(2.0)
    # Diagonal covariances: |m_a - m_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2.
    value = w2_gaussian([0.0, 0.0], np.diag([1.0, 4.0]), [1.0, 2.0], np.diag([9.0, 1.0]))
    assert value == pytest.approx(1 + 4 + (1 - 3) ** 2 + (2 - 1) ** 2)
    # 1-D: (m_a - m_b)^2 + (sigma_a - sigma_b)^2.
    assert w2_gaussian([3.0], [[4.0]], [1.0], [[0.25]]) == pytest.approx(4 + 1.5 ** 2)
    assert w2_gaussian([0.5, 1.0], np.eye(2) * 3, [0.5, 1.0], np.eye(2) * 3) == pytest.approx(
        0.0, abs=1e-12)


def test_w2_gaussian_is_rotation_invariant_and_matches_pot():
    rotation = special_ortho_group.rvs(3, random_state=0)
    cov_a = rotation @ np.diag([1.0, 2.0, 0.5]) @ rotation.T
    cov_b = rotation @ np.diag([4.0, 0.5, 0.5]) @ rotation.T
    expected = ((np.sqrt([1.0, 2.0, 0.5]) - np.sqrt([4.0, 0.5, 0.5])) ** 2).sum()
    assert w2_gaussian(np.zeros(3), cov_a, np.zeros(3), cov_b) == pytest.approx(expected)
    # Non-commuting covariances, against POT's Bures-Wasserstein distance (not squared).
    rng = np.random.default_rng(1)
    m_a, m_b = rng.normal(size=3), rng.normal(size=3)
    root_a, root_b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    s_a, s_b = root_a @ root_a.T + 0.1 * np.eye(3), root_b @ root_b.T + 0.1 * np.eye(3)
    pot = float(ot.gaussian.bures_wasserstein_distance(m_a, m_b, s_a, s_b))
    assert w2_gaussian(m_a, s_a, m_b, s_b) == pytest.approx(pot ** 2, rel=1e-8)
    # Symmetric in its arguments.
    assert w2_gaussian(m_a, s_a, m_b, s_b) == pytest.approx(w2_gaussian(m_b, s_b, m_a, s_a),
                                                            rel=1e-8)
