"""MetaSinkhornCloudTransport: potentials for pairs whose supports move and change size."""

from __future__ import annotations

import pickle

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skmetaot import MeasurePairs, MetaSinkhornCloudTransport
from skmetaot.amortize import potential_regression_error
from skmetaot.amortize.cloud_features import cloud_features
from skmetaot.datasets import (
    gaussian_mixture_cloud_sampler,
    make_gaussian_mixture_clouds,
    make_mnist_clouds,
    make_sphere_clouds,
    mnist_cloud_sampler,
    sphere_cloud_sampler,
)
from skmetaot.geometry import DenseGeometry
from skmetaot.sampling import CloudSampler, PairSampler
from skmetaot.solvers.sinkhorn import solve_batch


def _pairs(sizes, dim=2, seed=0, weights=True):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(n, dim)) for n, _ in sizes]
    ys = [rng.normal(size=(m, dim)) + 1.0 for _, m in sizes]
    a = [rng.uniform(0.5, 1.5, n) for n, _ in sizes] if weights else None
    b = [rng.uniform(0.5, 1.5, m) for _, m in sizes] if weights else None
    return MeasurePairs(xs, ys, a, b)


def _randomise(est, seed=0):
    """Give the zero-initialised last layer random weights, so the network is not a constant."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in est.model_.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=gen, dtype=parameter.dtype)
                            * 0.3)
    return est


@pytest.fixture(scope="module", params=["attention", "deepsets"])
def fitted(request):
    train = _pairs([(8, 11), (5, 7), (12, 6), (9, 9)], seed=1)
    est = MetaSinkhornCloudTransport(epsilon=0.5, encoder=request.param, width=8, n_heads=2,
                                     max_iter=3, batch_size=4, dtype="float64", device="cpu",
                                     random_state=0).fit(train)
    return _randomise(est)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 9), m=st.integers(2, 9), seed=st.integers(0, 10**6))
def test_equivariant_to_atom_permutations(fitted, n, m, seed):
    pairs = _pairs([(n, m)], seed=seed)
    rng = np.random.default_rng(seed)
    p, q = rng.permutation(n), rng.permutation(m)
    permuted = MeasurePairs([pairs.x[0][p]], [pairs.y[0][q]], [pairs.a[0][p]], [pairs.b[0][q]])
    f, g = fitted.predict_potentials(pairs)
    f_perm, g_perm = fitted.predict_potentials(permuted)
    np.testing.assert_allclose(f_perm[0], f[0][p], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(g_perm[0], g[0][q], rtol=1e-9, atol=1e-9)


def test_network_is_not_trivial(fitted):
    # The properties above could hold for a network that outputs zero: this one corrects its
    # baseline (Sinkhorn's first update) by a non-constant amount.
    x, a, y, b, cost = fitted._tensors(fitted._validate_pairs(_pairs([(6, 6)], seed=3)))
    baseline = cloud_features(cost, a, b, fitted.epsilon).first_f
    with torch.no_grad():
        correction = fitted._forward(x, a, y, b, cost) - baseline
    assert float(correction.std()) > 1e-3


def test_target_potential_is_the_c_transform(fitted):
    pairs = _pairs([(7, 5), (4, 9)], seed=4)
    plans = fitted.predict_plan(pairs)
    for plan, b in zip(plans, pairs.b, strict=True):
        np.testing.assert_allclose(plan.sum(0), b.numpy(), rtol=1e-10, atol=1e-12)


def test_padding_gives_the_unpadded_prediction(fitted):
    pairs = _pairs([(3, 4), (10, 12), (6, 2)], seed=5)
    together, g_together = fitted.predict_potentials(pairs)
    for k in range(len(pairs)):
        alone, g_alone = fitted.predict_potentials(pairs[k])
        np.testing.assert_allclose(together[k], alone[0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(g_together[k], g_alone[0], rtol=1e-10, atol=1e-10)


def test_zero_weights_and_duplicate_points_stay_finite(fitted):
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.5], [2.0, 1.0]])
    y = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    pairs = MeasurePairs([x], [y], [np.array([0.5, 0.0, 0.5, 0.0])], [np.array([0.0, 0.3, 0.7])])
    f, g = fitted.predict_potentials(pairs)
    assert np.isneginf(f[0][[1, 3]]).all() and np.isfinite(f[0][[0, 2]]).all()
    assert np.isneginf(g[0][0]) and np.isfinite(g[0][1:]).all()
    assert np.isfinite(fitted.predict_plan(pairs)[0]).all()
    assert np.isfinite(fitted.transform(pairs)[0]).all()
    assert np.isfinite(fitted.score(pairs))


def test_fit_predict_refine_score_transform():
    train = make_gaussian_mixture_clouds(16, 2, n_points=(10, 20), random_state=0)
    est = MetaSinkhornCloudTransport(epsilon=0.2, width=8, n_heads=2, max_iter=4,
                                     batch_size=4, device="cpu", random_state=0).fit(train)
    assert est.n_iter_ == 4 and len(est.history_["loss"]) == 4
    # Unseen supports, sizes and dimension (the model sees costs only).
    test = make_gaussian_mixture_clouds(3, 4, n_points=(15, 30), random_state=1)
    f, g = est.predict_potentials(test)
    assert [len(v) for v in f] == test.source_sizes and [len(v) for v in g] == test.target_sizes
    assert [p.shape for p in est.predict_plan(test)] == list(zip(test.source_sizes,
                                                                 test.target_sizes,
                                                                 strict=True))
    assert [t.shape for t in est.transform(test)] == [(n, 4) for n in test.source_sizes]
    results = est.refine(test, tol=1e-6, max_iter=5000)
    assert all(r.status == "converged" for r in results)
    assert [r.potentials[0].shape[0] for r in results] == test.source_sizes
    assert isinstance(est.score(test), float)


def test_refine_matches_pot():
    pairs = _pairs([(9, 7)], seed=6)
    est = MetaSinkhornCloudTransport(epsilon=0.5, width=8, n_heads=2, max_iter=2,
                                     dtype="float64", device="cpu", random_state=0).fit(pairs)
    (result,) = est.refine(pairs, tol=1e-10, max_iter=10000)
    a, b = pairs.a[0].numpy(), pairs.b[0].numpy()
    cost = ot.dist(pairs.x[0].numpy(), pairs.y[0].numpy())
    reference = ot.sinkhorn(a, b, cost, 0.5, method="sinkhorn_log", stopThr=1e-12,
                            numItermax=100000)
    np.testing.assert_allclose(result.plan, reference, atol=1e-8)


@pytest.mark.parametrize("cost", ["spherical", lambda x, y: torch.cdist(x, y, p=1)])
def test_other_costs(cost):
    pairs = make_sphere_clouds(4, n_supply=(5, 10), n_demand=(10, 20), random_state=0)
    est = MetaSinkhornCloudTransport(epsilon=0.1, cost=cost, width=8, n_heads=2, max_iter=2,
                                     batch_size=2, device="cpu", random_state=0).fit(pairs)
    f, _ = est.predict_potentials(pairs)
    assert all(np.isfinite(v[pairs.a[k].numpy() > 0]).all() for k, v in enumerate(f))
    assert all(r.log["niter"] >= 1 for r in est.refine(pairs, tol=1e-2))


def test_streams_train():
    est = MetaSinkhornCloudTransport(epsilon=0.2, width=8, n_heads=2, max_iter=3, batch_size=2,
                                     device="cpu", random_state=0)
    est.fit(gaussian_mixture_cloud_sampler(2, dims=(2, 3), n_points=(5, 10), random_state=0))
    assert est.n_iter_ == 3
    clouds = [np.random.default_rng(k).normal(size=(5 + k, 2)) for k in range(6)]
    est.fit(PairSampler(clouds, batch_size=2, random_state=0))
    assert est.n_iter_ == 3
    est.partial_fit(mnist_cloud_sampler(2, n_points=(10, 20), random_state=0), n_steps=2)
    assert est.n_iter_ == 5


def test_sklearn_conventions_and_pickle():
    est = MetaSinkhornCloudTransport(width=8, n_heads=2, max_iter=1, device="cpu")
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.predict_potentials(_pairs([(3, 3)]))
    pairs = _pairs([(4, 5), (6, 3)])
    est.set_params(random_state=0).fit(pairs)
    loaded = pickle.loads(pickle.dumps(est))
    for f, f_loaded in zip(est.predict_potentials(pairs)[0],
                           loaded.predict_potentials(pairs)[0], strict=True):
        np.testing.assert_array_equal(f, f_loaded)


@pytest.mark.parametrize(("params", "message"), [
    ({"encoder": "transformer"}, "encoder"),
    ({"baseline": "zeros"}, "baseline"),
    ({"width": 10, "n_heads": 4}, "multiple of n_heads"),
    ({"epsilon": -1.0}, "epsilon"),
    ({"n_layers": 0}, "n_layers"),
    ({"cost": "manhattan"}, "cost"),
    ({"learning_rate_schedule": "step"}, "learning_rate_schedule"),
    ({"regression_weight": -1.0}, "regression_weight"),
    ({"regression_weight": float("nan")}, "regression_weight"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        MetaSinkhornCloudTransport(device="cpu", **params).fit(_pairs([(3, 3)]))


def test_bad_pairs_name_the_pair():
    est = MetaSinkhornCloudTransport(width=8, n_heads=2, max_iter=1, device="cpu",
                                     random_state=0).fit(_pairs([(3, 3)]))
    bad = [(np.zeros((3, 2)), np.ones((4, 2))), (np.array([[0.0, np.nan]]), np.ones((2, 2)))]
    with pytest.raises(ValueError, match="pair 1"):
        est.predict_potentials(bad)
    negative = [((np.zeros((2, 2)), np.array([0.5, -0.5])), (np.ones((2, 2)), np.ones(2)))]
    with pytest.raises(ValueError, match="pair 0: source weights"):
        est.refine(negative)
    with pytest.raises(ValueError, match="init"):
        est.refine(_pairs([(3, 3)]), init="warm")
    with pytest.raises(ValueError, match="chunk_size"):
        est.predict_plan(_pairs([(3, 3)]), chunk_size=0)


def test_cloud_families():
    mnist = make_mnist_clouds(3, split="test", n_points=(100, 400), random_state=0)
    assert all(100 <= n <= 400 for n in mnist.source_sizes + mnist.target_sizes)
    assert all(float(x.min()) >= -0.1 and float(x.max()) <= 1.1 for x in mnist.x)
    sphere = make_sphere_clouds(3, random_state=0)
    assert all(torch.allclose(x.norm(dim=1), torch.ones(len(x), dtype=x.dtype)) for x in sphere.x)
    assert sphere.x[0].shape != sphere.x[1].shape or not torch.equal(sphere.x[0], sphere.x[1])
    assert make_gaussian_mixture_clouds(2, 10, random_state=0).dim == 10
    dims = {batch.dim for batch in gaussian_mixture_cloud_sampler(1, n_points=5, n_batches=20,
                                                                  random_state=0)}
    assert len(dims) > 1 and dims <= set(range(2, 11))
    first = [len(b) for b in sphere_cloud_sampler(2, n_batches=2, random_state=0)]
    assert first == [2, 2]
    with pytest.raises(ValueError, match="n_points"):
        make_mnist_clouds(2, n_points=(300, 100))
    with pytest.raises(ValueError, match="split"):
        mnist_cloud_sampler(2, split="validation")
    with pytest.raises(TypeError, match="draw_pairs"):
        CloudSampler(None)


def test_regression_loss_trains_towards_the_solved_potential():
    pairs = make_gaussian_mixture_clouds(4, 3, n_points=(8, 12), random_state=2)
    est = MetaSinkhornCloudTransport(epsilon=0.2, width=8, n_heads=2, max_iter=1, batch_size=4,
                                     device="cpu", random_state=0).fit(pairs)
    x, a, y, b, cost = est._tensors(pairs)
    a[0, :2] = 0.0  # atoms without mass take no part
    a = a / a.sum(1, keepdim=True)
    geometry = DenseGeometry(cost.double(), 0.2)
    a, b = a.double(), b.double()
    solved = solve_batch(geometry, a, b, None, tol=1e-10, max_iter=20000).f
    scale = torch.ones(4, dtype=torch.float64)
    at_solution = potential_regression_error(geometry, solved.nan_to_num(neginf=5.0), a, b,
                                             scale, tol=1e-10, max_iter=20000)
    assert float(at_solution.max()) < 1e-12  # zero at the solution, whatever f is off the mass
    f = torch.zeros_like(a, requires_grad=True)
    error = potential_regression_error(geometry, f, a, b, scale, tol=1e-10, max_iter=20000)
    shifted = potential_regression_error(geometry, f + 2.0, a, b, scale, tol=1e-10,
                                         max_iter=20000)
    torch.testing.assert_close(error, shifted)
    assert bool((error > 0).all())
    error.sum().backward()
    assert bool((f.grad[0, :2] == 0).all())  # no gradient without mass
    stepped = potential_regression_error(geometry, (f - 0.1 * f.grad).detach(), a, b, scale,
                                         tol=1e-10, max_iter=20000)
    assert bool((stepped < error.detach()).all())
    trained = MetaSinkhornCloudTransport(epsilon=0.2, width=8, n_heads=2, max_iter=2,
                                         batch_size=4, regression_weight=10.0, device="cpu",
                                         random_state=0).fit(pairs)
    assert np.isfinite(trained.history_["loss"]).all()
