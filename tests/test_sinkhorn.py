"""Behaviour of the batched log-domain Sinkhorn solver :func:`skmetaot.sinkhorn`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

import skmetaot
from skmetaot import SinkhornResult, sinkhorn
from skmetaot.metrics import marginal_error

_RNG = np.random.default_rng(99)
X = _RNG.random((5, 2))
Y = _RNG.random((6, 2))
A = np.full(5, 0.2)
B = np.full(6, 1 / 6)
C = cdist(X, Y, "sqeuclidean")


def _normalised(weights):
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum(-1, keepdims=True)


# -- validation -----------------------------------------------------------------------------
SINKHORN_ERRORS = {
    "epsilon-zero": (dict(epsilon=0.0), ValueError, r"epsilon.*positive"),
    "epsilon-negative": (dict(epsilon=-0.1), ValueError, r"epsilon.*positive"),
    "epsilon-inf": (dict(epsilon=np.inf), ValueError, r"epsilon.*finite"),
    "epsilon-nan": (dict(epsilon=np.nan), ValueError, r"epsilon.*finite"),
    "epsilon-string": (dict(epsilon="0.1"), ValueError, r"epsilon"),
    "tol-zero": (dict(tol=0.0), ValueError, r"tol.*positive"),
    "tol-negative": (dict(tol=-1e-3), ValueError, r"tol.*positive"),
    "tol-nan": (dict(tol=np.nan), ValueError, r"tol.*positive"),
    "tol-None": (dict(tol=None), ValueError, r"tol"),
    "max_iter-zero": (dict(max_iter=0), ValueError, r"max_iter.*positive integer"),
    "max_iter-negative": (dict(max_iter=-5), ValueError, r"max_iter.*positive integer"),
    "max_iter-float": (dict(max_iter=10.5), ValueError, r"max_iter.*integer"),
    "max_iter-bool": (dict(max_iter=True), ValueError, r"max_iter.*integer"),
    "max_iter-string": (dict(max_iter="100"), ValueError, r"max_iter"),
    "init-unknown": (dict(init="meta-learned"), ValueError, r"init='meta-learned'.*not supported"),
    "init-wrong-length": (dict(init=np.zeros(4)), ValueError, r"init f.*shape"),
    "init-nan": (dict(init=np.r_[np.nan, np.zeros(4)]), ValueError, r"init f.*finite"),
    "dtype-unknown": (dict(dtype="int32"), ValueError, r"dtype.*not supported"),
    "batch_size-negative": (dict(batch_size=-2), ValueError, r"batch_size"),
}


@pytest.mark.parametrize("case", list(SINKHORN_ERRORS), ids=list(SINKHORN_ERRORS))
def test_sinkhorn_parameter_errors(case):
    kwargs, exc_type, pattern = SINKHORN_ERRORS[case]
    with pytest.raises(exc_type, match=pattern):
        sinkhorn(A, B, C, **kwargs)


INPUT_ERRORS = {
    "C-transposed": (lambda: sinkhorn(A, B, C.T), ValueError, r"C has shape \(6, 5\).*\(5, 6\)"),
    "C-1d": (lambda: sinkhorn(A, B, C.ravel()), ValueError, r"C has shape \(30,\)"),
    "C-batch-mismatch": (
        lambda: sinkhorn(np.stack([A, A]), np.stack([B, B]), np.stack([C] * 3)),
        ValueError, r"C has shape \(3, 5, 6\).*\(2, 5, 6\)"),
    "C-nan": (lambda: sinkhorn(A, B, np.where(C > 0.5, np.nan, C)), ValueError, r"C.*NaN"),
    "neither-C-nor-supports": (lambda: sinkhorn(A, B), ValueError, r"cost matrix C.*x and y"),
    "only-x": (lambda: sinkhorn(A, B, x=X), ValueError, r"cost matrix C.*x and y"),
    "unknown-cost": (
        lambda: sinkhorn(A, B, x=X, y=Y, cost="manhattan"), ValueError, r"cost='manhattan'"),
    "unknown-cost-on-pairs": (
        lambda: sinkhorn([(X, Y)], cost="cosine"), ValueError, r"cost='cosine'"),
    "a-b-count-mismatch": (
        lambda: sinkhorn(np.stack([A] * 2), np.stack([B] * 3), C), ValueError,
        r"a has shape \(2, 5\) but b has \(3, 6\).*1-D a or b"),
    "b-broadcast-vs-cost-batch": (
        lambda: sinkhorn(np.stack([A] * 2), B, np.stack([C] * 3)), ValueError,
        r"C has shape \(3, 5, 6\)"),
    "a-nan-pair1": (
        lambda: sinkhorn(np.stack([A, np.r_[np.nan, A[1:]]]), np.stack([B, B]), C),
        ValueError, r"pair 1.*source weights.*NaN"),
    "b-negative": (lambda: sinkhorn(A, np.r_[-1.0, B[1:]], C), ValueError, r"pair 0.*negative"),
    "a-zero-mass": (lambda: sinkhorn(0 * A, B, C), ValueError, r"pair 0.*zero total mass"),
    "a-empty": (lambda: sinkhorn(np.zeros(0), B, np.zeros((0, 6))), ValueError, r"empty"),
    "x-nan": (lambda: sinkhorn(A, B, x=np.where(X > 0.9, np.nan, X), y=Y), ValueError, r"x.*NaN"),
    "x-1d": (lambda: sinkhorn(A, B, x=X[:, 0], y=Y), ValueError, r"x.*2-D"),
    "x-wrong-length": (lambda: sinkhorn(A, B, x=X[:4], y=Y), ValueError, r"4 points.*5"),
    "x-y-dim-mismatch": (
        lambda: sinkhorn(A, B, x=X, y=np.ones((6, 3))), ValueError, r"dimension mismatch"),
    "a-None": (lambda: sinkhorn(None, B, C), TypeError, r"a must be an array"),
    "a-dict": (lambda: sinkhorn({"a": A}, B, C), TypeError, r"a must be an array"),
    "a-string": (lambda: sinkhorn("weights", B, C), TypeError, r"a must be an array"),
    "b-object": (lambda: sinkhorn(A, B.astype(object), C), TypeError, r"b must be.*object"),
    "a-complex": (lambda: sinkhorn(A.astype(complex), B, C), TypeError, r"a must be real"),
    "C-complex": (lambda: sinkhorn(A, B, C.astype(complex)), TypeError, r"C.*complex"),
    "pairs-None": (lambda: sinkhorn(None), TypeError, r"NoneType"),
    "pairs-bad-point-rank": (
        lambda: sinkhorn([(X, Y), (X[:, 0], Y)]), TypeError, r"pair 1"),
}


@pytest.mark.parametrize("case", list(INPUT_ERRORS), ids=list(INPUT_ERRORS))
def test_sinkhorn_input_errors(case):
    func, exc_type, pattern = INPUT_ERRORS[case]
    with pytest.raises(exc_type, match=pattern):
        func()


@pytest.mark.parametrize("epsilon", [0.5, 1, np.float64(0.5), np.float32(0.5)])
def test_numeric_epsilon_types_are_accepted(epsilon):
    res = sinkhorn(A, B, C, epsilon=epsilon, tol=1e-9)
    assert bool(res.converged)
    assert res.epsilon == pytest.approx(float(epsilon))


# -- results --------------------------------------------------------------------------------
def test_single_problem_shapes_and_marginals():
    res = sinkhorn(A, B, C, epsilon=0.05, tol=1e-10, max_iter=10_000)
    assert isinstance(res, SinkhornResult)
    assert res.f.shape == (5,) and res.g.shape == (6,)
    assert np.ndim(res.n_iter) == 0 and bool(res.converged)
    assert res.plans is None
    plan = res.plan()
    assert plan.shape == (5, 6)
    np.testing.assert_allclose(plan.sum(1), A, atol=1e-10)
    np.testing.assert_allclose(plan.sum(0), B, atol=1e-13)
    np.testing.assert_allclose(plan, np.exp((res.f[:, None] + res.g[None] - C) / 0.05),
                               rtol=1e-12)
    assert float(res.errors) < 1e-10
    assert float(res.errors) == pytest.approx(marginal_error(plan, A, B), abs=1e-13)
    with_plan = sinkhorn(A, B, C, epsilon=0.05, tol=1e-10, max_iter=10_000, return_plan=True)
    np.testing.assert_allclose(with_plan.plans, plan)


def test_weights_are_rescaled_and_zero_weights_give_minus_inf(rng):
    a = np.array([2.0, 0.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 3.0, 1.0, 1.0, 1.0, 0.0])
    res = sinkhorn(a, b, C, epsilon=0.05, tol=1e-10, max_iter=10_000)
    plan = res.plan()
    np.testing.assert_allclose(plan.sum(1), a / a.sum(), atol=1e-10)
    np.testing.assert_allclose(plan.sum(0), b / b.sum(), atol=1e-13)
    assert np.all(res.f[a == 0] == -np.inf) and np.all(np.isfinite(res.f[a > 0]))
    assert np.all(res.g[b == 0] == -np.inf) and np.all(np.isfinite(res.g[b > 0]))
    assert np.all(plan[a == 0] == 0) and np.all(plan[:, b == 0] == 0)
    assert not np.isnan(plan).any()


def _clouds(rng, batch=6, n=7, m=9, d=2):
    x, y = rng.random((batch, n, d)), rng.random((batch, m, d))
    # Different spreads give different iteration counts.
    scale = np.linspace(0.2, 2.0, batch)[:, None, None]
    return x * scale, y, rng.random((batch, n)) + 0.1, rng.random((batch, m)) + 0.1


def _one_at_a_time(a, b, **kwargs):
    return [sinkhorn(a[k], b[k], **{key: (v[k] if key in ("C", "x", "y") else v)
                                    for key, v in kwargs.items()}) for k in range(len(a))]


def _assert_same_as_single(res, singles, a, b):
    plans = res.plan()
    for k, single in enumerate(singles):
        assert int(res.n_iter[k]) == int(single.n_iter)
        np.testing.assert_allclose(res.f[k], single.f, atol=1e-9)
        np.testing.assert_allclose(res.g[k], single.g, atol=1e-9)
        np.testing.assert_allclose(plans[k], single.plan(), atol=1e-10)
        assert float(res.errors[k]) == pytest.approx(marginal_error(plans[k], a[k], b[k]),
                                                     abs=1e-12)


def test_batched_point_clouds_equal_one_at_a_time(rng):
    x, y, a, b = _clouds(rng)
    kwargs = dict(epsilon=0.02, tol=1e-9, max_iter=20_000)
    res = sinkhorn(a, b, x=x, y=y, **kwargs)
    singles = _one_at_a_time(a, b, x=x, y=y, **kwargs)
    assert len(set(int(s.n_iter) for s in singles)) > 1
    _assert_same_as_single(res, singles, _normalised(a), _normalised(b))


def test_batched_cost_matrices_equal_one_at_a_time(rng):
    x, y, a, b = _clouds(rng)
    cost = np.stack([cdist(x[k], y[k], "sqeuclidean") for k in range(len(x))])
    kwargs = dict(epsilon=0.02, tol=1e-9, max_iter=20_000)
    res = sinkhorn(a, b, cost, **kwargs)
    singles = _one_at_a_time(a, b, C=cost, **kwargs)
    _assert_same_as_single(res, singles, _normalised(a), _normalised(b))


def test_batched_list_of_pairs_equal_one_at_a_time(rng):
    # The natural entry point for point clouds: a list of ((Xs, a), (Xt, b)).
    x, y, a, b = _clouds(rng)
    pairs = [((x[k], a[k]), (y[k], b[k])) for k in range(len(x))]
    kwargs = dict(epsilon=0.02, tol=1e-9, max_iter=20_000)
    res = sinkhorn(pairs, **kwargs)
    singles = [sinkhorn([pair], **kwargs) for pair in pairs]
    plans = res.plan()
    for k, single in enumerate(singles):
        assert int(res.n_iter[k]) == int(single.n_iter[0])
        np.testing.assert_allclose(plans[k], single.plan()[0], atol=1e-10)
        true_error = marginal_error(plans[k], a[k] / a[k].sum(), b[k] / b[k].sum())
        assert true_error < 1e-9


def test_batched_shared_support_equal_one_at_a_time(rng):
    a, b = rng.random((5, 8)), rng.random((5, 10))
    a[a < 0.2] = 0
    x, y = rng.random((8, 2)), rng.random((10, 2))
    kwargs = dict(epsilon=0.02, tol=1e-9, max_iter=20_000)
    res = sinkhorn(a, b, x=x, y=y, **kwargs)
    assert res.f.shape == (5, 8) and res.plan().shape == (5, 8, 10)
    singles = [sinkhorn(a[k], b[k], x=x, y=y, **kwargs) for k in range(5)]
    _assert_same_as_single(res, singles, _normalised(a), _normalised(b))


@pytest.mark.parametrize("form", ["one-b", "one-a", "one-row-b", "one-a-b-many-costs",
                                  "one-a-b-many-supports"])
def test_one_measure_broadcasts_over_a_batch(form, rng):
    # POT users pass one b with many a (and numpy broadcasts a length-1 batch axis): the
    # result is that of the same measure repeated for every problem.
    x, y, a, b = _clouds(rng, batch=4)
    cost = np.stack([cdist(x[k], y[k], "sqeuclidean") for k in range(4)])
    kwargs = dict(epsilon=0.05, tol=1e-10, max_iter=20_000)
    given, repeated = {
        "one-b": ((a, b[0], cost[0]), (a, np.stack([b[0]] * 4), cost[0])),
        "one-a": ((a[0], b, cost[0]), (np.stack([a[0]] * 4), b, cost[0])),
        "one-row-b": ((a, b[:1], cost[0]), (a, np.stack([b[0]] * 4), cost[0])),
        "one-a-b-many-costs": ((a[0], b[0], cost), (np.stack([a[0]] * 4),
                                                     np.stack([b[0]] * 4), cost)),
        "one-a-b-many-supports": ((a[0], b[0], None), (np.stack([a[0]] * 4),
                                                        np.stack([b[0]] * 4), None)),
    }[form]
    supports = dict(x=x, y=y) if form == "one-a-b-many-supports" else {}
    res = sinkhorn(*given, **supports, **kwargs)
    expected = sinkhorn(*repeated, **supports, **kwargs)
    assert res.f.shape == expected.f.shape == (4, 7) and res.g.shape == (4, 9)
    np.testing.assert_array_equal(res.n_iter, expected.n_iter)
    np.testing.assert_allclose(res.f, expected.f, atol=1e-12)
    np.testing.assert_allclose(res.plan(), expected.plan(), atol=1e-12)
    np.testing.assert_allclose(res.g, expected.g, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n_problems=st.integers(1, 4), n=st.integers(1, 6), m=st.integers(1, 6),
       shared=st.sampled_from(["a", "b", "a-row", "b-row", "a-and-b"]),
       per_problem_cost=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_broadcasting_equals_the_repeated_measure(n_problems, n, m, shared, per_problem_cost,
                                                  seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random((n_problems, n)) + 0.05, rng.random((n_problems, m)) + 0.05
    cost = rng.random((n_problems, n, m)) if per_problem_cost else rng.random((n, m))
    if shared in ("a", "a-row", "a-and-b"):
        a[:] = a[0]
    if shared in ("b", "b-row", "a-and-b"):
        b[:] = b[0]
    given_a = {"a": a[0], "a-row": a[:1], "a-and-b": a[0]}.get(shared, a)
    given_b = {"b": b[0], "b-row": b[:1], "a-and-b": b[0]}.get(shared, b)
    if shared == "a-and-b" and not per_problem_cost:
        given_a = a  # one a and one b over one cost is a single problem, not a batch
    kwargs = dict(epsilon=0.1, tol=1e-9, max_iter=5000)
    res, expected = sinkhorn(given_a, given_b, cost, **kwargs), sinkhorn(a, b, cost, **kwargs)
    assert res.f.shape == (n_problems, n) and res.g.shape == (n_problems, m)
    np.testing.assert_array_equal(res.n_iter, expected.n_iter)
    np.testing.assert_allclose(res.plan(), expected.plan(), atol=1e-12)


def test_batched_grid_images_equal_one_at_a_time(image_pairs):
    pairs = skmetaot.pairs_from_images(image_pairs[:, 0], image_pairs[:, 1])
    kwargs = dict(epsilon=0.02, tol=1e-9, max_iter=20_000)
    res = sinkhorn(pairs, **kwargs)
    assert res.f.shape == (3, 30)
    singles = [sinkhorn(pairs[k], **kwargs) for k in range(3)]
    for k, single in enumerate(singles):
        assert int(res.n_iter[k]) == int(single.n_iter[0])
        np.testing.assert_allclose(res.plan()[k], single.plan()[0], atol=1e-10)


def test_iteration_counts_are_per_problem_and_finished_problems_stop(rng):
    a, b = rng.random((4, 8)) + 0.1, rng.random((4, 10)) + 0.1
    x, y = rng.random((8, 2)), rng.random((10, 2))
    kwargs = dict(x=x, y=y, epsilon=0.02, tol=1e-9, max_iter=20_000)
    cold = sinkhorn(a, b, **kwargs)
    assert len(set(cold.n_iter.tolist())) > 1
    # From converged potentials, a problem stops after one iteration; the others do not.
    init = cold.f.copy()
    init[2] = 0.0
    warm = sinkhorn(a, b, init=init, **kwargs)
    assert warm.n_iter.tolist()[:2] == [1, 1] and int(warm.n_iter[3]) == 1
    assert int(warm.n_iter[2]) == int(cold.n_iter[2])
    assert warm.converged.all()
    np.testing.assert_allclose(warm.plan(), cold.plan(), atol=1e-9)


def test_max_iter_reached():
    res = sinkhorn(np.stack([A, A[::-1] + 0.1]), np.stack([B, B]), C, epsilon=0.01, tol=1e-12,
                   max_iter=3)
    assert res.n_iter.tolist() == [3, 3]
    assert not res.converged.any()
    assert np.all(res.errors >= 1e-12)
    plans = res.plan()
    for k in range(2):
        expected = marginal_error(plans[k], _normalised(np.stack([A, A[::-1] + 0.1]))[k], B)
        assert float(res.errors[k]) == pytest.approx(expected, rel=1e-9)
    # The b-marginal is exact even when not converged (g = g(f)).
    np.testing.assert_allclose(plans.sum(1), np.stack([B, B]), atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_numpy_in_numpy_out(dtype, rng):
    a, b = rng.random((3, 6)).astype(dtype) + 0.1, rng.random((3, 7)).astype(dtype) + 0.1
    x, y = rng.random((6, 2)).astype(dtype), rng.random((7, 2)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    res = sinkhorn(a, b, x=x, y=y, epsilon=0.05, tol=tol, max_iter=10_000)
    for value in (res.f, res.g, res.errors):
        assert isinstance(value, np.ndarray) and value.dtype == dtype
    assert isinstance(res.n_iter, np.ndarray) and isinstance(res.converged, np.ndarray)
    plan = res.plan()
    assert isinstance(plan, np.ndarray) and plan.dtype == dtype and plan.shape == (3, 6, 7)
    assert res.converged.all()
    np.testing.assert_allclose(marginal_error(plan, _normalised(a), _normalised(b)),
                               res.errors, atol=10 * tol)


def test_dtype_parameter_overrides_input():
    res = sinkhorn(A, B, C, epsilon=0.1, tol=1e-5, dtype="float32")
    assert res.f.dtype == np.float32 and res.plan().dtype == np.float32
    res64 = sinkhorn(A.astype(np.float32), B.astype(np.float32), C.astype(np.float32),
                     epsilon=0.1, tol=1e-10, dtype="float64")
    assert res64.f.dtype == np.float64
    np.testing.assert_allclose(res.plan(), res64.plan(), atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_in_torch_out(dtype, rng):
    a = torch.from_numpy(rng.random((3, 6)) + 0.1).to(dtype)
    b = torch.from_numpy(rng.random((3, 7)) + 0.1).to(dtype)
    x, y = torch.from_numpy(rng.random((6, 2))).to(dtype), torch.from_numpy(rng.random((7, 2)))
    res = sinkhorn(a, b, x=x, y=y.to(dtype), epsilon=0.05, tol=1e-4, max_iter=10_000)
    for value in (res.f, res.g, res.errors, res.n_iter, res.converged, res.plan()):
        assert isinstance(value, torch.Tensor) and value.device == a.device
    assert res.f.dtype == dtype and res.plan().dtype == dtype
    reference = sinkhorn(a.numpy(), b.numpy(), x=x.numpy(), y=y.to(dtype).numpy(), epsilon=0.05,
                         tol=1e-4, max_iter=10_000)
    np.testing.assert_allclose(res.plan().numpy(), reference.plan(), rtol=1e-5, atol=1e-7)


def test_torch_pairs_in_torch_out(rng):
    pairs = [(torch.from_numpy(rng.random((4, 2))), torch.from_numpy(rng.random((5, 2))))
             for _ in range(2)]
    res = sinkhorn(pairs, epsilon=0.1, tol=1e-8)
    assert isinstance(res.f, torch.Tensor) and res.f.shape == (2, 4)
    plans = res.plan()
    assert all(isinstance(p, torch.Tensor) for p in plans)


def test_varying_sizes_give_lists(cloud_pairs):
    res = sinkhorn(cloud_pairs, epsilon=0.05, tol=1e-9, max_iter=20_000)
    sizes = [(len(x), len(y)) for (x, _), (y, _) in cloud_pairs]
    assert isinstance(res.f, list) and isinstance(res.g, list)
    assert [len(f) for f in res.f] == [n for n, _ in sizes]
    assert [len(g) for g in res.g] == [m for _, m in sizes]
    assert res.n_iter.shape == (4,) and res.errors.shape == (4,)
    plans = res.plan()
    assert isinstance(plans, list) and [p.shape for p in plans] == sizes
    for k, ((_, a), (_, b)) in enumerate(cloud_pairs):
        assert np.all(np.isfinite(res.f[k])) and np.all(np.isfinite(res.g[k]))
        assert marginal_error(plans[k], a / a.sum(), b / b.sum()) < 1e-9
        np.testing.assert_allclose(plans[k].sum(0), b / b.sum(), atol=1e-13)


def test_varying_sizes_match_individual_solves(cloud_pairs):
    res = sinkhorn(cloud_pairs, epsilon=0.05, tol=1e-9, max_iter=20_000)
    for k, pair in enumerate(cloud_pairs):
        single = sinkhorn([pair], epsilon=0.05, tol=1e-9, max_iter=20_000)
        np.testing.assert_allclose(res.plan()[k], single.plan()[0], atol=1e-10)
        np.testing.assert_allclose(res.f[k], single.f[0], atol=1e-9)


def test_point_cloud_arrays_give_plan_arrays(rng):
    x, y, a, b = _clouds(rng, batch=3, n=4, m=5)
    res = sinkhorn(a, b, x=x, y=y, epsilon=0.1, tol=1e-8)
    assert isinstance(res.f, np.ndarray) and res.f.shape == (3, 4)
    plans = res.plan()
    assert isinstance(plans, np.ndarray) and plans.shape == (3, 4, 5)


def _gaussian_samples(rng, n=80, m=90):
    xs = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.6], [0.0, 0.5]])
    xt = rng.normal(size=(m, 2)) * np.array([1.5, 0.4]) + np.array([2.0, -1.0])
    return xs, xt


def test_gaussian_init_beats_zeros_on_gaussian_samples(rng):
    xs, xt = _gaussian_samples(rng)
    kwargs = dict(epsilon=0.1, tol=1e-6, max_iter=100_000)
    zeros = sinkhorn((xs, xt), init="zeros", **kwargs)
    gauss = sinkhorn((xs, xt), init="gaussian", **kwargs)
    default = sinkhorn((xs, xt), **kwargs)
    assert zeros.converged.all() and gauss.converged.all()
    assert int(default.n_iter[0]) == int(zeros.n_iter[0])
    assert int(gauss.n_iter[0]) < int(zeros.n_iter[0])
    np.testing.assert_allclose(gauss.plan(), zeros.plan(), atol=1e-6)


def test_gaussian_init_on_grids_and_degenerate_measures(image_pairs):
    res = sinkhorn(image_pairs, init="gaussian", epsilon=0.05, tol=1e-8, max_iter=10_000)
    assert res.converged.all() and np.isfinite(res.errors).all()
    # A single atom (zero covariance) must not break the Gaussian fit.
    point = sinkhorn(([[0.5, 0.5]], [[0.0, 0.0], [1.0, 1.0]]), init="gaussian", epsilon=0.1,
                     tol=1e-10)
    np.testing.assert_allclose(point.plan()[0], [[0.5, 0.5]], atol=1e-10)


def test_potential_inits_f_and_g(rng):
    a, b = rng.random((3, 8)) + 0.1, rng.random((3, 10)) + 0.1
    x, y = rng.random((8, 2)), rng.random((10, 2))
    kwargs = dict(x=x, y=y, epsilon=0.03, tol=1e-9, max_iter=20_000)
    cold = sinkhorn(a, b, **kwargs)
    from_f = sinkhorn(a, b, init=cold.f, **kwargs)
    from_g = sinkhorn(a, b, init=(None, cold.g), **kwargs)
    from_both = sinkhorn(a, b, init=(cold.f, cold.g), **kwargs)
    from_torch = sinkhorn(a, b, init=torch.from_numpy(cold.f), **kwargs)
    for res in (from_f, from_g, from_both, from_torch):
        assert res.n_iter.tolist() == [1, 1, 1]
        np.testing.assert_allclose(res.plan(), cold.plan(), atol=1e-9)
    # A rough guess still helps compared with a cold start, and reaches the same plan.
    rough = sinkhorn(a, b, init=cold.f + 0.01 * rng.normal(size=cold.f.shape), **kwargs)
    assert np.all(rough.n_iter < cold.n_iter)
    np.testing.assert_allclose(rough.plan(), cold.plan(), atol=1e-8)


def test_potential_init_for_varying_sizes(cloud_pairs):
    kwargs = dict(epsilon=0.05, tol=1e-9, max_iter=20_000)
    cold = sinkhorn(cloud_pairs, **kwargs)
    warm = sinkhorn(cloud_pairs, init=cold.f, **kwargs)
    assert warm.n_iter.tolist() == [1, 1, 1, 1]
    warm_g = sinkhorn(cloud_pairs, init=(None, cold.g), **kwargs)
    assert warm_g.n_iter.tolist() == [1, 1, 1, 1]
    for k in range(4):
        np.testing.assert_allclose(warm.plan()[k], cold.plan()[k], atol=1e-9)


def test_init_with_minus_inf_on_zero_weights_is_accepted():
    a = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    cold = sinkhorn(a, B, C, epsilon=0.05, tol=1e-10)
    assert cold.f[1] == -np.inf
    warm = sinkhorn(a, B, C, epsilon=0.05, tol=1e-10, init=cold.f)
    assert int(warm.n_iter) == 1
    with pytest.raises(ValueError, match="finite on atoms with positive weight"):
        sinkhorn(np.ones(5), B, C, epsilon=0.05, init=cold.f)


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_batch_size_gives_the_same_results(batch_size, rng):
    a, b = rng.random((5, 8)) + 0.1, rng.random((5, 10)) + 0.1
    x, y = rng.random((8, 2)), rng.random((10, 2))
    kwargs = dict(x=x, y=y, epsilon=0.03, tol=1e-9, max_iter=20_000)
    full = sinkhorn(a, b, **kwargs)
    chunked = sinkhorn(a, b, batch_size=batch_size, **kwargs)
    np.testing.assert_array_equal(chunked.n_iter, full.n_iter)
    np.testing.assert_allclose(chunked.f, full.f, atol=1e-12)
    np.testing.assert_allclose(chunked.plan(), full.plan(), atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batch_size_on_varying_size_pairs(batch_size, cloud_pairs):
    kwargs = dict(epsilon=0.05, tol=1e-9, max_iter=20_000)
    full = sinkhorn(cloud_pairs, **kwargs)
    chunked = sinkhorn(cloud_pairs, batch_size=batch_size, **kwargs)
    np.testing.assert_array_equal(chunked.n_iter, full.n_iter)
    for k in range(len(cloud_pairs)):
        assert len(chunked.f[k]) == len(full.f[k])
        np.testing.assert_allclose(chunked.f[k], full.f[k], atol=1e-10)
        np.testing.assert_allclose(chunked.plan()[k], full.plan()[k], atol=1e-10)


def test_grid_support_is_detected_and_used(rng):
    from skmetaot.geometry import GridGeometry
    from skmetaot.solvers.entropic import pair_geometry

    grid = np.stack(np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 5), indexing="ij"),
                    -1).reshape(-1, 2)
    a, b = rng.random((2, 20)), rng.random((2, 20))
    pairs = skmetaot.HistogramPairs(a, b, grid, grid)
    assert pairs.grid_x is not None and pairs.grid_y is not None
    geometry, _ = pair_geometry(pairs, [0, 1], epsilon=0.1, cost="sqeuclidean", cost_matrix=None)
    assert isinstance(geometry, GridGeometry)
    # Another cost on the same grid uses a dense kernel.
    dense, _ = pair_geometry(pairs, [0, 1], epsilon=0.1, cost="euclidean", cost_matrix=None)
    assert not isinstance(dense, GridGeometry)
    kwargs = dict(epsilon=0.05, tol=1e-10, max_iter=10_000)
    on_grid = sinkhorn(a, b, x=grid, y=grid, **kwargs)
    dense_res = sinkhorn(a, b, cdist(grid, grid, "sqeuclidean"), **kwargs)
    np.testing.assert_allclose(on_grid.plan(), dense_res.plan(), atol=1e-10)


def test_zero_weight_atoms_in_every_problem_are_dropped_consistently(rng):
    # Atoms that carry no mass in any problem are removed before solving; results are put back
    # on the full support.
    a, b = rng.random((3, 8)) + 0.1, rng.random((3, 10)) + 0.1
    a[:, [0, 5]] = 0.0
    b[:, 9] = 0.0
    x, y = rng.random((8, 2)), rng.random((10, 2))
    res = sinkhorn(a, b, x=x, y=y, epsilon=0.05, tol=1e-10, max_iter=10_000)
    assert res.f.shape == (3, 8) and res.g.shape == (3, 10)
    assert np.all(res.f[:, [0, 5]] == -np.inf) and np.all(res.g[:, 9] == -np.inf)
    reference = sinkhorn(a[:, [1, 2, 3, 4, 6, 7]], b[:, :9], x=x[[1, 2, 3, 4, 6, 7]], y=y[:9],
                         epsilon=0.05, tol=1e-10, max_iter=10_000)
    np.testing.assert_allclose(res.plan()[:, [1, 2, 3, 4, 6, 7]][:, :, :9], reference.plan(),
                               atol=1e-12)


def test_docstring_example():
    rng = np.random.default_rng(0)
    x, y = rng.random((5, 2)), rng.random((6, 2))
    res = sinkhorn(np.ones(5), np.ones(6), x=x, y=y, epsilon=0.1, tol=1e-8)
    np.testing.assert_allclose(res.plan().sum(0), np.full(6, 1 / 6), atol=1e-12)
