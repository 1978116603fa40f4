"""The benchmarks' peer adapters and their one error rule (``benchmarks/_peers.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _peers  # noqa: E402

from skmetaot import sinkhorn  # noqa: E402
from skmetaot.datasets import make_mnist_pairs  # noqa: E402


@pytest.fixture(scope="module")
def pairs():
    return make_mnist_pairs(3, split="test", random_state=0, dtype="float64")


def _cost(pairs):
    x = pairs.x.double()
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def test_l1_error_is_the_solvers_own_error(pairs):
    result = sinkhorn(pairs, epsilon=1e-2, tol=1e-3)
    errors = _peers.l1_error(result.f, result.g, pairs.a, pairs.b, _cost(pairs), 1e-2)
    np.testing.assert_allclose(errors, result.errors, rtol=1e-6)
    assert np.isneginf(result.f).any()  # zero-mass pixels: -inf potentials are handled


def test_l1_error_counts_nan_potentials_as_infinite(pairs):
    result = sinkhorn(pairs[:1], epsilon=1e-2, tol=1e-3)
    f = np.array(result.f)
    f[0, np.flatnonzero(np.isfinite(f[0]))[0]] = np.nan
    assert _peers.l1_error(f, result.g, pairs.a[:1], pairs.b[:1], _cost(pairs), 1e-2)[0] == np.inf


def _small_problem(seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((20, 2)), rng.random((30, 2))
    a, b = rng.random(20), rng.random(30)
    a[:3] = 0.0
    cost = ((x[:, None] - y[None]) ** 2).sum(-1)
    return a / a.sum(), b / b.sum(), cost


def test_plan_error_agrees_with_pot():
    ot = pytest.importorskip("ot")
    a, b, cost = _small_problem()
    with np.errstate(divide="ignore"):
        plan = ot.sinkhorn(a, b, cost, 0.05, method="sinkhorn_log", numItermax=10, stopThr=0.0,
                           warn=False)
    expected = np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum()
    assert _peers.plan_error(plan, a, b) == pytest.approx(expected, rel=1e-12)
    assert _peers.plan_error(plan * np.nan, a, b) == np.inf


def test_floor_weights_keeps_distributions():
    weights = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    floored = _peers.floor_weights(weights)
    np.testing.assert_allclose(floored.sum(1), 1.0)
    assert floored.min() >= _peers.WEIGHT_FLOOR / 2
    np.testing.assert_allclose(floored, weights, atol=1e-11)


def test_available_names_the_missing_and_rejects_unknown_peers():
    found, missing = _peers.available()
    assert sorted(found + missing) == sorted(_peers.PEER_MODULES)
    with pytest.raises(ValueError, match="unknown peers"):
        _peers.available(["cvxpy"])


def test_ott_pointcloud_meets_the_same_rule_as_ours(pairs):
    pytest.importorskip("ott")
    x = pairs.x.numpy()
    a, b = pairs.a[0].numpy(), pairs.b[0].numpy()
    solver = _peers.OttSinkhorn(_peers.ott_pointcloud(x, x, 1e-2, "float64"), 1e-3, "float64",
                                batch=False)
    f, g, n_iter = solver(a, b)
    ours = sinkhorn(pairs[:1], epsilon=1e-2, tol=1e-3)
    error = _peers.l1_error(f, g, a, b, _cost(pairs), 1e-2)[0]
    assert error < 1e-3
    # The same iteration from zeros with the same stopping rule: the same count, give or take
    # the order of the two half-steps.
    assert abs(int(n_iter) - int(ours.n_iter[0])) <= 1


def test_geomloss_potentials_in_our_convention():
    pytest.importorskip("geomloss")
    a, b, cost = _small_problem()
    a, b, cost = torch.tensor(a)[None], torch.tensor(b)[None], torch.tensor(cost)
    f, g = _peers.geomloss_solve(cost, a, b, 0.05, 200)
    assert torch.isneginf(f[0][a[0] == 0]).all()
    # 200 annealing steps end near the solution: a small error in our convention, which a
    # wrong conversion (potentials relative to a x b taken as ours) would not give.
    assert _peers.l1_error(f, g, a, b, cost, 0.05)[0] < 1e-2
    wrong = _peers.l1_error(f - 0.05 * torch.log(a), g, a, b, cost, 0.05)[0]
    assert not wrong < 1e-2
