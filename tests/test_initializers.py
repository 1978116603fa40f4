"""Initializers (issue 19.3): one interface for every start of Sinkhorn, fitted estimators included.

Each form of ``init`` (names, potentials, objects, fitted meta estimators) goes through
``as_initializer`` and gives the same solve as before; ``sinkhorn(pairs, init=model)`` is the
solve of ``model.refine``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from skmetaot import (
    GaussianInitializer,
    GivenPotentials,
    Initializer,
    MetaSinkhornCloudTransport,
    MetaSinkhornTransport,
    ZerosInitializer,
    sinkhorn,
)
from skmetaot.datasets import make_mnist_pairs
from skmetaot.solvers import PairBatch, as_initializer, solve_pairs

KW = dict(epsilon=0.05, tol=1e-6, max_iter=5000)


@pytest.fixture(scope="module")
def grid_pairs():
    """Four MNIST pairs: shared 28 x 28 grid supports (the separable kernel)."""
    return make_mnist_pairs(4, split="test", random_state=0)


@pytest.fixture(scope="module")
def dense_problem():
    """Three problems on shared random supports with a given cost matrix (a dense kernel)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((7, 2)), rng.random((9, 2))
    a, b = rng.random((3, 7)) + 0.05, rng.random((3, 9)) + 0.05
    a[0, 2] = 0.0  # a zero-weight atom: the start is ignored there
    return a, b, ((x[:, None] - y[None]) ** 2).sum(-1)


@pytest.fixture(scope="module")
def fitted():
    return MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=5, device="cpu",
                                 random_state=0).fit(make_mnist_pairs(32, random_state=0))


@pytest.fixture(scope="module")
def clouds():
    rng = np.random.default_rng(1)
    return [(rng.normal(size=(int(rng.integers(8, 14)), 2)),
             1 + 0.5 * rng.normal(size=(int(rng.integers(8, 14)), 2))) for _ in range(5)]


@pytest.fixture(scope="module")
def fitted_clouds(clouds):
    return MetaSinkhornCloudTransport(width=16, n_layers=1, max_iter=5, batch_size=4,
                                      epsilon=0.1, device="cpu", random_state=0).fit(clouds)


def _same(first, second):
    np.testing.assert_array_equal(np.asarray(first.n_iter), np.asarray(second.n_iter))
    pairs = zip(first.f, second.f, strict=True) if isinstance(first.f, list) else [
        (first.f, second.f)]
    for mine, theirs in pairs:
        np.testing.assert_array_equal(mine, theirs)


# -- the built-in initializers are the strings and arrays they stand for ----------------------
@pytest.mark.parametrize(("name", "initializer"), [("zeros", ZerosInitializer()),
                                                   ("gaussian", GaussianInitializer())])
def test_named_initializers_on_a_grid(grid_pairs, name, initializer):
    _same(sinkhorn(grid_pairs, init=initializer, **KW), sinkhorn(grid_pairs, init=name, **KW))


@pytest.mark.parametrize(("name", "initializer"), [("zeros", ZerosInitializer()),
                                                   ("gaussian", GaussianInitializer())])
def test_named_initializers_on_a_dense_problem(dense_problem, name, initializer):
    a, b, C = dense_problem
    _same(sinkhorn(a, b, C, init=initializer, **KW), sinkhorn(a, b, C, init=name, **KW))


def test_default_is_zeros(grid_pairs):
    _same(sinkhorn(grid_pairs, **KW), sinkhorn(grid_pairs, init=ZerosInitializer(), **KW))


@pytest.mark.parametrize("problem", ["grid", "dense"])
def test_given_potentials_restart_from_a_solution(grid_pairs, dense_problem, problem):
    args = (grid_pairs,) if problem == "grid" else dense_problem
    cold = sinkhorn(*args, **KW)
    from_f = sinkhorn(*args, init=GivenPotentials(cold.f), **KW)
    from_g = sinkhorn(*args, init=GivenPotentials(g=cold.g), **KW)
    _same(from_f, sinkhorn(*args, init=cold.f, **KW))
    _same(from_g, sinkhorn(*args, init=(None, cold.g), **KW))
    assert (np.asarray(from_f.n_iter) <= 1).all() and (np.asarray(from_g.n_iter) <= 1).all()


def test_initializers_on_per_pair_supports(cloud_pairs):
    gauss = sinkhorn(cloud_pairs, init=GaussianInitializer(), **KW)
    _same(gauss, sinkhorn(cloud_pairs, init="gaussian", **KW))
    warm = sinkhorn(cloud_pairs, init=GivenPotentials(gauss.f), **KW)
    assert (np.asarray(warm.n_iter) <= 1).all()


def test_as_initializer_forms():
    zeros = ZerosInitializer()
    assert as_initializer(zeros) is zeros
    assert isinstance(as_initializer(None), ZerosInitializer)
    assert isinstance(as_initializer("gaussian"), GaussianInitializer)
    for potentials in (np.zeros((2, 3)), torch.zeros(2, 3), [np.zeros(3)], (None, np.zeros(3))):
        assert isinstance(as_initializer(potentials), GivenPotentials)


# -- a fitted meta estimator is an initializer: sinkhorn(pairs, init=model) is model.refine ----
def test_sinkhorn_from_a_fitted_estimator_is_its_refinement(fitted):
    test = make_mnist_pairs(6, split="test", random_state=1)
    refined = fitted.refine(test, tol=1e-4, max_iter=2000)
    # refine solves in the estimator's dtype (float32 by default), as sinkhorn does here.
    warm = sinkhorn(test, epsilon=fitted.epsilon, tol=1e-4, max_iter=2000, init=fitted,
                    dtype="float32")
    assert warm.n_iter.tolist() == [r.log["niter"] for r in refined]
    np.testing.assert_array_equal(warm.f, np.stack([r.potentials[0] for r in refined]))
    test = test.to(torch.float32)
    state = fitted.refine_state(test, tol=1e-4, max_iter=2000, chunk_size=4)
    by_batch = solve_pairs(test, epsilon=fitted.epsilon, tol=1e-4, max_iter=2000, init=fitted,
                           batch_size=4)
    assert torch.equal(state.n_iter, by_batch.n_iter) and torch.equal(state.f, by_batch.f)


def test_fitted_estimator_init_in_another_dtype(fitted):
    test = make_mnist_pairs(2, split="test", random_state=2, dtype="float32")
    warm = sinkhorn(test, epsilon=fitted.epsilon, tol=1e-3, init=fitted)
    assert warm.f.dtype == np.float32 and warm.converged.all()


def test_refine_takes_names_only(fitted):
    # refine solves batch by batch (iter_refine): other starts go through sinkhorn(init=...).
    with pytest.raises(TypeError, match=r"init of type GaussianInitializer is not one of"):
        fitted.refine_state(make_mnist_pairs(1, random_state=0), init=GaussianInitializer())


def test_sinkhorn_from_a_fitted_cloud_estimator(clouds, fitted_clouds):
    est = fitted_clouds
    state = est.refine_state(clouds, tol=1e-5, max_iter=3000, chunk_size=2)
    warm = sinkhorn(clouds, epsilon=est.epsilon, tol=1e-5, max_iter=3000, init=est,
                    batch_size=2, dtype="float32")
    assert warm.n_iter.tolist() == state.n_iter.tolist()
    for k, f in enumerate(warm.f):
        np.testing.assert_array_equal(f, state.f[k, :len(f)].numpy())


def test_fitted_estimator_refuses_pairs_it_cannot_predict(fitted, clouds):
    with pytest.raises(ValueError, match="needs histograms on supports shared"):
        sinkhorn(clouds, init=fitted)
    other = make_mnist_pairs(2, random_state=0)
    other.x = other.x + 1.0
    with pytest.raises(ValueError, match="supports differ"):
        sinkhorn(other, init=fitted)


# -- a user's own initializer -----------------------------------------------------------------
class ShiftedSolution(Initializer):
    """A solution's f plus a constant (a solution too), returned as numpy for the solver."""

    def __init__(self, f):
        self.f = f

    def init_f(self, batch: PairBatch):
        return 3.0 + np.nan_to_num(np.asarray(self.f)[batch.indices], neginf=0.0)


def test_custom_initializer(grid_pairs):
    cold = sinkhorn(grid_pairs, **KW)
    warm = sinkhorn(grid_pairs, init=ShiftedSolution(cold.f), batch_size=3, **KW)
    assert warm.converged.all() and (warm.n_iter <= 1).all()


class WrongWidth(Initializer):
    def init_f(self, batch: PairBatch):
        return torch.zeros(batch.a.shape[0], batch.a.shape[1] + 1)


class NaNStart(Initializer):
    def init_f(self, batch: PairBatch):
        return torch.full_like(batch.a, float("nan"))


def test_custom_initializer_output_is_checked(grid_pairs):
    with pytest.raises(ValueError, match=r"init=WrongWidth\(\) gave f of shape \(4, 785\).*"
                                         r"expected \(4, 784\)"):
        sinkhorn(grid_pairs, init=WrongWidth())
    with pytest.raises(ValueError, match="init f must be finite"):
        sinkhorn(grid_pairs, init=NaNStart())


def test_initializer_is_abstract():
    with pytest.raises(TypeError):
        Initializer()


# -- bad values of init -----------------------------------------------------------------------
@pytest.mark.parametrize(("init", "exc", "match"), [
    ("magic", ValueError, r"init='magic' is not supported; init accepts 'zeros', 'gaussian'"),
    (3.0, TypeError, r"init of type float is not supported; init accepts"),
    ({"f": 0}, TypeError, r"init of type dict is not supported"),
    (StandardScaler(), TypeError, r"init of type StandardScaler is not supported"),
    ((np.zeros(4), None, None), ValueError, r"init as a tuple must be \(f, g\)"),
    ((None, None), ValueError, r"init: GivenPotentials needs f or g"),
    (MetaSinkhornTransport(), NotFittedError,
     r"init=MetaSinkhornTransport\(\.\.\.\) is not fitted"),
])
def test_bad_init(init, exc, match):
    a, b = np.full(4, 0.25), np.full(3, 1 / 3)
    with pytest.raises(exc, match=match):
        sinkhorn(a, b, np.ones((4, 3)), init=init)


def test_refine_names_its_init(fitted):
    with pytest.raises(ValueError, match=r"init='magic' is not one of 'meta', 'zeros'"):
        fitted.refine_state(make_mnist_pairs(1, random_state=0), init="magic")
