"""Ground costs against numpy/scipy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import skmetaot
from skmetaot.costs import (
    SPHERICAL_SHRINK,
    euclidean,
    get_cost,
    is_sqeuclidean,
    pairwise_cost,
    spherical,
    sqeuclidean,
)


def _unit(points):
    return points / np.linalg.norm(points, axis=-1, keepdims=True)


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sqeuclidean_and_euclidean_match_cdist(dim, dtype, rng):
    x, y = rng.normal(size=(7, dim)), rng.normal(size=(9, dim))
    xt, yt = torch.from_numpy(x.astype(dtype)), torch.from_numpy(y.astype(dtype))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    sq = sqeuclidean(xt, yt)
    assert sq.dtype == xt.dtype and sq.shape == (7, 9)
    np.testing.assert_allclose(sq.numpy(), cdist(x, y, "sqeuclidean"), **tol)
    np.testing.assert_allclose(euclidean(xt, yt).numpy(), cdist(x, y, "euclidean"), **tol)


def test_costs_are_batched(rng):
    x, y = rng.random((3, 5, 2)), rng.random((3, 4, 2))
    sq = sqeuclidean(torch.from_numpy(x), torch.from_numpy(y))
    assert sq.shape == (3, 5, 4)
    for k in range(3):
        np.testing.assert_allclose(sq[k].numpy(), cdist(x[k], y[k], "sqeuclidean"), atol=1e-12)
    # A shared support broadcasts against a batch.
    shared = euclidean(torch.from_numpy(x), torch.from_numpy(y[0]))
    assert shared.shape == (3, 5, 4)
    np.testing.assert_allclose(shared[2].numpy(), cdist(x[2], y[0]), atol=1e-12)


def test_sqeuclidean_is_never_negative_and_euclidean_never_nan(rng):
    # Far from the origin the expanded form |x|^2 + |y|^2 - 2<x, y> would lose digits; it is
    # expanded around the clouds' centre, and the clamp keeps what rounding is left non-negative
    # (so the square root stays finite).
    x = 1e4 + rng.random((20, 3))
    sq = sqeuclidean(torch.from_numpy(x), torch.from_numpy(x))
    assert torch.all(sq >= 0)
    assert torch.all(sq.diagonal() <= 1e-4)
    dist = euclidean(torch.from_numpy(x), torch.from_numpy(x))
    assert torch.isfinite(dist).all()
    assert torch.all(dist.diagonal() <= 1e-2)


def test_spherical_matches_reference(rng):
    x, y = _unit(rng.normal(size=(6, 3))), _unit(rng.normal(size=(8, 3)))
    expected = np.arccos(np.clip(x @ y.T / (1 + SPHERICAL_SHRINK), -1, 1))
    got = spherical(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    # Up to the shrink, it is the angle between the points (scipy's cosine distance).
    angle = np.arccos(np.clip(1 - cdist(x, y, "cosine"), -1, 1))
    np.testing.assert_allclose(got.numpy(), angle, atol=2e-2)


def test_spherical_identical_and_antipodal_points(rng):
    x = torch.from_numpy(_unit(rng.normal(size=(10, 3)))).requires_grad_(True)
    same = spherical(x, x)
    diagonal = same.diagonal()
    assert torch.isfinite(same).all()
    # The shrink keeps the arccos argument inside [-1, 1]: the distance to oneself is ~0.
    assert torch.all(diagonal >= 0) and torch.all(diagonal < 2e-2)
    np.testing.assert_allclose(diagonal.detach().numpy(),
                               np.arccos(1 / (1 + SPHERICAL_SHRINK)), rtol=1e-6)
    # ... and its gradient stays finite.
    diagonal.sum().backward()
    assert torch.isfinite(x.grad).all()
    opposite = spherical(x.detach(), -x.detach()).diagonal()
    np.testing.assert_allclose(opposite.numpy(), np.pi, atol=2e-2)
    assert torch.isfinite(opposite).all()
    # Rounding must never push the argument out of range, even for unnormalised input.
    big = torch.tensor([[0.0, 0.0, 1.0 + 1e-3]], dtype=torch.float64)
    assert torch.isfinite(spherical(big, big)).all()
    assert torch.isfinite(spherical(big, -big)).all()


def test_spherical_docstring_value():
    north = torch.tensor([[0.0, 0.0, 1.0]])
    east = torch.tensor([[1.0, 0.0, 0.0]])
    assert float(spherical(north, east)) == pytest.approx(np.pi / 2, abs=1e-3)


def test_get_cost_names_and_callables():
    assert get_cost("sqeuclidean") is sqeuclidean
    assert get_cost("euclidean") is euclidean
    assert get_cost("spherical") is spherical
    assert skmetaot.sqeuclidean is sqeuclidean

    def l1(x, y):
        return (x[..., :, None, :] - y[..., None, :, :]).abs().sum(-1)

    assert get_cost(l1) is l1
    assert is_sqeuclidean("sqeuclidean") and is_sqeuclidean(sqeuclidean)
    assert not is_sqeuclidean("euclidean") and not is_sqeuclidean(l1)


@pytest.mark.parametrize("bad", ["cityblock", "", "SQEUCLIDEAN", 3, None])
def test_unknown_cost_raises(bad):
    with pytest.raises(ValueError, match="is not supported"):
        get_cost(bad)


def test_pairwise_cost_with_callable(rng):
    x, y = rng.random((5, 3)), rng.random((4, 3))

    def l1(xs, ys):
        return (xs[..., :, None, :] - ys[..., None, :, :]).abs().sum(-1)

    got = pairwise_cost(torch.from_numpy(x), torch.from_numpy(y), l1)
    np.testing.assert_allclose(got.numpy(), cdist(x, y, "cityblock"), atol=1e-12)
    named = pairwise_cost(torch.from_numpy(x), torch.from_numpy(y), "euclidean")
    np.testing.assert_allclose(named.numpy(), cdist(x, y), atol=1e-12)


def test_pairwise_cost_checks_the_callable(rng):
    x, y = torch.from_numpy(rng.random((5, 2))), torch.from_numpy(rng.random((4, 2)))
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*\(5, 4\)"):
        pairwise_cost(x, y, lambda xs, ys: sqeuclidean(ys, xs))
    with pytest.raises(ValueError, match="NaN or infinite"):
        pairwise_cost(x, y, lambda xs, ys: sqeuclidean(xs, ys).log() * 0 / 0)
    with pytest.raises(ValueError, match="is not supported"):
        pairwise_cost(x, y, "manhattan")


@pytest.mark.parametrize("name", ["sqeuclidean", "euclidean"])
def test_sinkhorn_with_named_cost_equals_explicit_matrix(name, rng):
    x, y = rng.random((6, 2)), rng.random((5, 2))
    metric = "sqeuclidean" if name == "sqeuclidean" else "euclidean"
    matrix = cdist(x, y, metric)
    kwargs = dict(epsilon=0.1, tol=1e-11, max_iter=5000)
    by_name = skmetaot.sinkhorn(np.ones(6), np.ones(5), x=x, y=y, cost=name, **kwargs)
    by_matrix = skmetaot.sinkhorn(np.ones(6), np.ones(5), matrix, **kwargs)
    np.testing.assert_allclose(by_name.plan(), by_matrix.plan(), atol=1e-10)


def test_sinkhorn_with_callable_and_spherical_costs(rng):
    x, y = _unit(rng.normal(size=(6, 3))), _unit(rng.normal(size=(7, 3)))
    kwargs = dict(epsilon=0.2, tol=1e-11, max_iter=5000)

    def l1(xs, ys):
        return (xs[..., :, None, :] - ys[..., None, :, :]).abs().sum(-1)

    custom = skmetaot.sinkhorn(np.ones(6), np.ones(7), x=x, y=y, cost=l1, **kwargs)
    reference = skmetaot.sinkhorn(np.ones(6), np.ones(7), cdist(x, y, "cityblock"), **kwargs)
    np.testing.assert_allclose(custom.plan(), reference.plan(), atol=1e-10)

    sphere = skmetaot.sinkhorn(np.ones(6), np.ones(7), x=x, y=y, cost="spherical", **kwargs)
    matrix = np.arccos(np.clip(x @ y.T / (1 + SPHERICAL_SHRINK), -1, 1))
    reference = skmetaot.sinkhorn(np.ones(6), np.ones(7), matrix, **kwargs)
    np.testing.assert_allclose(sphere.plan(), reference.plan(), atol=1e-10)
