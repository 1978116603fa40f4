"""Agreement with POT (``ot.sinkhorn``) and the POT conversion helpers."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

import skmetaot
from skmetaot import sinkhorn
from skmetaot.datasets import load_mnist
from skmetaot.pot import to_otresult, to_warmstart

# Our L1 tolerance at POT's threshold, so that a warm start from our potentials passes POT's
# first check (its L2 error of the b-marginal after one more sweep is below our L1 error).
OUR = dict(tol=1e-13, max_iter=200_000)
POT = dict(method="sinkhorn_log", stopThr=1e-13, numItermax=200_000)
# POT takes log(0) on zero weights (harmlessly): silence that warning only.
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")


def _check_against_pot(res, k, a, b, cost, epsilon):
    plan = res.plan()[k] if np.ndim(res.n_iter) else res.plan()
    f = res.f[k] if np.ndim(res.n_iter) else res.f
    g = res.g[k] if np.ndim(res.n_iter) else res.g
    assert bool(np.atleast_1d(res.converged)[k if np.ndim(res.n_iter) else 0])
    pot_plan, log = ot.sinkhorn(a, b, cost, epsilon, log=True, **POT)
    np.testing.assert_allclose(plan, pot_plan, rtol=0, atol=1e-7)
    # POT's log_u = f / reg and log_v = g / reg, up to the (f + k, g - k) freedom.
    positive = a > 0
    shift = np.mean(f[positive] / epsilon - log["log_u"][positive])
    np.testing.assert_allclose(f[positive] / epsilon - shift, log["log_u"][positive], atol=1e-6)
    # Warm-started from our converged potentials, POT stops at its first check (every 10).
    _, warm_log = ot.sinkhorn(a, b, cost, epsilon, log=True, warmstart=to_warmstart(f, g, epsilon),
                              **POT)
    assert warm_log["niter"] <= 10
    return log["niter"]


@pytest.mark.parametrize(
    ("n", "m", "dim", "epsilon"),
    [(20, 30, 2, 0.1), (50, 40, 3, 0.05), (10, 10, 1, 1.0), (35, 25, 5, 0.2), (60, 60, 2, 0.02)],
)
def test_dense_problems_agree_with_pot(n, m, dim, epsilon, rng):
    x, y = rng.random((n, dim)), rng.random((m, dim))
    a, b = rng.random(n) + 0.05, rng.random(m) + 0.05
    a, b = a / a.sum(), b / b.sum()
    cost = ot.dist(x, y)
    res = sinkhorn(a, b, cost, epsilon=epsilon, **OUR)
    _check_against_pot(res, 0, a, b, cost, epsilon)
    # The same problem given by its supports.
    by_points = sinkhorn(a, b, x=x, y=y, epsilon=epsilon, **OUR)
    np.testing.assert_allclose(by_points.plan(), res.plan(), atol=1e-10)


def test_dense_problems_with_zero_weights_agree_with_pot(rng):
    x, y = rng.random((25, 2)), rng.random((30, 2))
    a, b = rng.random(25), rng.random(30)
    a[::4] = 0.0
    b[1::5] = 0.0
    a, b = a / a.sum(), b / b.sum()
    cost = ot.dist(x, y)
    res = sinkhorn(a, b, cost, epsilon=0.05, **OUR)
    _check_against_pot(res, 0, a, b, cost, 0.05)


def test_batch_of_shared_support_problems_agrees_with_pot(rng):
    x, y = rng.random((15, 2)), rng.random((20, 2))
    a, b = rng.random((4, 15)) + 0.05, rng.random((4, 20)) + 0.05
    a, b = a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True)
    cost = ot.dist(x, y)
    res = sinkhorn(a, b, cost, epsilon=0.05, **OUR)
    for k in range(4):
        _check_against_pot(res, k, a[k], b[k], cost, 0.05)


def _downsampled_mnist(indices):
    images, _ = load_mnist()
    picked = images[list(indices)].astype(np.float64) / 255.0
    # 28 x 28 -> 14 x 14 by 2 x 2 sums (keeps the problem small for POT's dense solver).
    return picked.reshape(len(picked), 14, 2, 14, 2).sum((2, 4))


@pytest.mark.parametrize("epsilon", [0.01, 0.05])
def test_mnist_grid_images_agree_with_pot(epsilon):
    images = _downsampled_mnist(range(6))
    pairs = skmetaot.pairs_from_images(images[:3], images[3:])
    assert pairs.grid_x is not None  # the separable kernel is used
    res = sinkhorn(pairs, epsilon=epsilon, **OUR)
    cost = ot.dist(pairs.x.numpy(), pairs.y.numpy())
    for k in range(3):
        a, b = pairs.a[k].numpy(), pairs.b[k].numpy()
        assert (a == 0).any() and (b == 0).any()  # zero pixels are zero-weight atoms
        _check_against_pot(res, k, a, b, cost, epsilon)


def test_random_grid_images_agree_with_pot(image_pairs):
    pairs = skmetaot.as_pairs(image_pairs)
    assert pairs.grid_x is not None
    res = sinkhorn(pairs, epsilon=0.03, **OUR)
    cost = ot.dist(pairs.x.numpy(), pairs.y.numpy())
    for k in range(len(image_pairs)):
        _check_against_pot(res, k, pairs.a[k].numpy(), pairs.b[k].numpy(), cost, 0.03)


def test_rectangular_grids_agree_with_pot(rng):
    pairs = skmetaot.pairs_from_images(rng.random((2, 6, 4)), rng.random((2, 3, 7)))
    assert pairs.grid_x is not None and pairs.grid_y is not None
    res = sinkhorn(pairs, epsilon=0.05, **OUR)
    cost = ot.dist(pairs.x.numpy(), pairs.y.numpy())
    for k in range(2):
        _check_against_pot(res, k, pairs.a[k].numpy(), pairs.b[k].numpy(), cost, 0.05)


# -- to_warmstart ---------------------------------------------------------------------------
def test_to_warmstart_values_and_kinds():
    f, g = np.array([0.5, -np.inf, 1.0]), np.array([2.0, -1.0])
    log_u, log_v = to_warmstart(f, g, 0.5)
    assert isinstance(log_u, np.ndarray)
    np.testing.assert_array_equal(log_u, [1.0, -np.inf, 2.0])
    np.testing.assert_array_equal(log_v, [4.0, -2.0])
    tu, tv = to_warmstart(torch.tensor(f), torch.tensor(g), 0.5)
    assert isinstance(tu, torch.Tensor) and isinstance(tv, torch.Tensor)
    np.testing.assert_array_equal(tu.numpy(), log_u)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, np.inf, np.nan])
def test_to_warmstart_rejects_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        to_warmstart(np.zeros(3), np.zeros(2), epsilon)


def test_to_warmstart_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        to_warmstart(np.array([0.0, np.nan]), np.zeros(2), 0.1)


def test_to_warmstart_docstring_example():
    a, b = np.full(3, 1 / 3), np.full(3, 1 / 3)
    cost = ot.dist(np.arange(3.0)[:, None])
    res = sinkhorn(a, b, cost, epsilon=0.5, tol=1e-10)
    _, log = ot.sinkhorn(a, b, cost, 0.5, method="sinkhorn_log", log=True,
                         warmstart=to_warmstart(res.f, res.g, 0.5))
    assert log["niter"] == 0


# -- to_otresult ----------------------------------------------------------------------------
def _check_otresults(results, res, costs, epsilon):
    plans = res.plan()
    assert isinstance(results, list) and len(results) == len(costs)
    for k, (out, cost) in enumerate(zip(results, costs, strict=True)):
        assert isinstance(out, ot.utils.OTResult)
        plan = np.asarray(out.plan)
        np.testing.assert_allclose(plan, plans[k], rtol=1e-12, atol=1e-300)
        f, g = out.potentials
        np.testing.assert_array_equal(np.asarray(f), np.asarray(res.f[k]))
        np.testing.assert_array_equal(np.asarray(g), np.asarray(res.g[k]))
        linear = float((cost * plan).sum())
        assert out.value_linear == pytest.approx(linear, rel=1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            neg_entropy = float(np.where(plan > 0, plan * np.log(plan), 0.0).sum())
        # ot.solve(..., reg_type="entropy")'s value: <C, P> + eps sum P log P.
        assert out.value == pytest.approx(linear + epsilon * neg_entropy, rel=1e-10, abs=1e-14)
        assert out.log["niter"] == int(res.n_iter[k])
        assert out.log["err"] == pytest.approx(float(res.errors[k]), rel=1e-12)
        assert out.status == ("converged" if bool(res.converged[k]) else "max_iter")


def test_to_otresult_shared_support(rng):
    x, y = rng.random((8, 2)), rng.random((6, 2))
    a, b = rng.random((3, 8)) + 0.1, rng.random((3, 6)) + 0.1
    a[1, 2] = 0.0
    res = sinkhorn(a, b, x=x, y=y, epsilon=0.05, tol=1e-10)
    cost = ot.dist(x, y)
    _check_otresults(to_otresult(res), res, [cost] * 3, 0.05)
    # And it agrees with POT's own OTResult fields for the same problem.
    pot = ot.solve(cost, a[0] / a[0].sum(), b[0] / b[0].sum(), reg=0.05, max_iter=100_000,
                   tol=1e-13)
    ours = to_otresult(res)[0]
    np.testing.assert_allclose(np.asarray(ours.plan), pot.plan, atol=1e-8)
    assert ours.value_linear == pytest.approx(pot.value_linear, rel=1e-7)


def test_to_otresult_grid_and_max_iter(image_pairs):
    pairs = skmetaot.as_pairs(image_pairs)
    res = sinkhorn(pairs, epsilon=0.05, tol=1e-12, max_iter=5)
    results = to_otresult(res)
    cost = ot.dist(pairs.x.numpy(), pairs.y.numpy())
    _check_otresults(results, res, [cost] * len(image_pairs), 0.05)
    assert all(r.status == "max_iter" for r in results)
    assert all(r.log["niter"] == 5 for r in results)


def test_to_otresult_varying_sizes(cloud_pairs):
    res = sinkhorn(cloud_pairs, epsilon=0.05, tol=1e-10)
    costs = [ot.dist(x, y) for (x, _), (y, _) in cloud_pairs]
    results = to_otresult(res)
    assert [np.asarray(r.plan).shape for r in results] == [c.shape for c in costs]
    _check_otresults(results, res, costs, 0.05)


def test_to_otresult_per_problem_costs(rng):
    cost = rng.random((3, 5, 4))
    res = sinkhorn(np.ones((3, 5)), np.ones((3, 4)), cost, epsilon=0.1, tol=1e-10)
    _check_otresults(to_otresult(res), res, list(cost), 0.1)


def test_to_otresult_keeps_torch(rng):
    x, y = torch.from_numpy(rng.random((5, 2))), torch.from_numpy(rng.random((4, 2)))
    res = sinkhorn(torch.ones(2, 5), torch.ones(2, 4), x=x, y=y, epsilon=0.1, tol=1e-10)
    results = to_otresult(res)
    assert isinstance(results[0].plan, torch.Tensor)
    assert all(isinstance(p, torch.Tensor) for p in results[1].potentials)
    np.testing.assert_allclose(results[1].plan.numpy(), res.plan()[1].numpy())


def test_result_to_pot_and_its_public_state(cloud_pairs):
    res = sinkhorn(cloud_pairs, epsilon=0.05, tol=1e-10)
    costs = [ot.dist(x, y) for (x, _), (y, _) in cloud_pairs]
    _check_otresults(res.to_pot(), res, costs, 0.05)
    # The solver's tensors are the result's: padded potentials and the same counters.
    assert isinstance(res.state, skmetaot.solvers.SinkhornState)
    np.testing.assert_array_equal(res.state.n_iter.numpy(), res.n_iter)
    np.testing.assert_allclose(res.state.f[0, : len(res.f[0])].numpy(), res.f[0])
    assert res.pairs.n_pairs == len(cloud_pairs)


def test_result_values_match_pot_and_the_otresults(cloud_pairs, rng):
    # The values of ragged pairs, batched, equal each OTResult's and POT's own solve.
    res = sinkhorn(cloud_pairs, epsilon=0.05, tol=1e-11, max_iter=20_000)
    value, linear = res.values()
    assert value.shape == linear.shape == (len(cloud_pairs),)
    for k, out in enumerate(res.to_pot()):
        assert value[k] == pytest.approx(out.value, rel=1e-12)
        assert linear[k] == pytest.approx(out.value_linear, rel=1e-12)
    (x, a), (y, b) = cloud_pairs[1]
    pot = ot.solve(ot.dist(x, y), a / a.sum(), b / b.sum(), reg=0.05, reg_type="entropy",
                   max_iter=100_000, tol=1e-13)
    assert value[1] == pytest.approx(pot.value, rel=1e-7)
    assert linear[1] == pytest.approx(pot.value_linear, rel=1e-7)
    # One problem gives floats; torch in gives torch out.
    one = sinkhorn(a, b, x=x, y=y, epsilon=0.05, tol=1e-11, max_iter=20_000)
    assert isinstance(one.values()[0], float)
    assert one.values()[0] == pytest.approx(value[1], rel=1e-9)
    x_t, y_t = torch.from_numpy(rng.random((5, 2))), torch.from_numpy(rng.random((4, 2)))
    res_t = sinkhorn(torch.ones(2, 5), torch.ones(2, 4), x=x_t, y=y_t, epsilon=0.1, tol=1e-10)
    assert isinstance(res_t.values()[1], torch.Tensor)
