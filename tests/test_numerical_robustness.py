"""Numerical robustness: float32 at tiny epsilon, costs over six decades, zero weights.

Everything here checks the same contract under hostile numerics: no NaN ever; potentials finite
on atoms with mass and -inf (by design) on zero-weight atoms; plans finite and non-negative;
marginal errors finite and at most 2 (the L1 error of a plan of mass one, since g = g(f) makes
the b-marginal exact); training losses and gradients finite.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import skmetaot.geometry
from skmetaot import MetaSinkhornTransport, conjugate, pairs_from_images, sinkhorn
from skmetaot.amortize import entropic_dual_value, unrolled_marginal_error
from skmetaot.costs import euclidean, spherical, sqeuclidean
from skmetaot.datasets import load_mnist, make_sphere_supply_demand
from skmetaot.geometry import DenseGeometry, GridGeometry
from skmetaot.measures import HistogramPairs, image_grid
from skmetaot.solvers import gaussian_init, sinkhorn_convergence

DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Unit roundoff of each dtype.
ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}


# -- helpers ----------------------------------------------------------------------------------
def _rounding(magnitude: float, dtype: str) -> float:
    """Relative rounding of ``exp(s)`` when ``s`` sums terms of size ``magnitude`` in ``dtype``.

    An exponent made of terms of that size carries an absolute error of a few units of
    roundoff times it; its exponential is off by a factor ``exp`` of that.
    """
    return math.expm1(min(50.0, 16 * ROUNDOFF[dtype] * (magnitude + 1)))


def _assert_solution_is_sane(f: np.ndarray, g: np.ndarray, errors: np.ndarray, a: np.ndarray,
                             b: np.ndarray, rounding: float = 0.0) -> None:
    """Potentials finite on mass and -inf off it, never NaN; errors finite in [0, 2].

    ``rounding`` (relative) widens the upper bound 2 for the float32 plans of exponents so large
    that their rounding shows.
    """
    assert not np.isnan(f).any() and not np.isnan(g).any()
    np.testing.assert_array_equal(np.isfinite(f), a > 0)
    np.testing.assert_array_equal(np.isfinite(g), b > 0)
    assert np.all(f[a == 0] == -np.inf) and np.all(g[b == 0] == -np.inf)
    errors = np.asarray(errors, dtype=np.float64)
    assert np.all(np.isfinite(errors))
    assert np.all(errors >= 0) and np.all(errors <= 2 * (1 + rounding) + 1e-3)


def _assert_plans_are_sane(plans: np.ndarray) -> None:
    assert np.all(np.isfinite(plans)) and np.all(plans >= 0)


def _mnist_images(count: int, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``count`` source and target digits in [0, 1] (zero-pixel backgrounds), plus edge cases."""
    images, _ = load_mnist("test")
    first = images[:count].astype(dtype) / 255
    second = images[count: 2 * count].astype(dtype) / 255
    # A one-pixel image in a corner against one in the opposite corner: the largest cost (2)
    # over the smallest epsilon, on the atoms that carry all the mass.
    dirac_a, dirac_b = np.zeros((28, 28), dtype), np.zeros((28, 28), dtype)
    dirac_a[0, 0], dirac_b[-1, -1] = 1.0, 1.0
    # A digit against a near-uniform image (no zero pixel on that side).
    uniform = np.full((28, 28), 1.0, dtype) + images[2 * count].astype(dtype) / 255
    return (np.concatenate([first, dirac_a[None], first[:1]]),
            np.concatenate([second, dirac_b[None], uniform[None]]))


# -- 1. float32, epsilon = 1e-4 on the 28 x 28 grid of [0, 1]^2 -------------------------------
MNIST_EPSILON = 1e-4
#: Checkpoints of the error curves (the last one is the iteration budget).
MNIST_ITERATIONS = [1, 2, 5, 10, 20, 50, 100, 200]


def test_mnist_float32_tiny_epsilon_stays_finite_and_converges() -> None:
    images_a, images_b = _mnist_images(6)
    pairs = pairs_from_images(images_a, images_b)
    a, b = pairs.a.numpy(), pairs.b.numpy()
    assert pairs.grid_x is not None and (a == 0).any(1).all()  # zero pixels in every digit
    result = sinkhorn(pairs, epsilon=MNIST_EPSILON, dtype="float32",
                      max_iter=MNIST_ITERATIONS[-1], tol=1e-300)
    assert result.f.dtype == np.float32 and int(result.n_iter.max()) == MNIST_ITERATIONS[-1]
    _assert_solution_is_sane(result.f, result.g, result.errors, a, b)
    plans = result.plan()
    _assert_plans_are_sane(plans)
    # The b-marginal is exact up to float32 rounding of exp((f + g - C) / eps) at eps = 1e-4.
    np.testing.assert_allclose(plans.sum(-2), b, rtol=0, atol=1e-5)
    # The error curve: finite at every checkpoint and never increasing between checkpoints (not
    # a theorem for the L1 error, but true here with margin); the one-pixel pair is solved
    # exactly at once, error 0 throughout.
    curve = sinkhorn_convergence(pairs, MNIST_ITERATIONS, epsilon=MNIST_EPSILON, dtype="float32")
    assert np.all(np.isfinite(curve))
    assert np.all(np.diff(curve, axis=0) <= 1e-5)
    np.testing.assert_allclose(curve[-1], result.errors, rtol=1e-3, atol=1e-5)
    assert np.all(curve[-1] <= 0.5 * curve[0])


def test_mnist_float32_tiny_epsilon_dense_cost_matches_the_grid_kernel() -> None:
    # The same problems through an explicit (784, 784) float32 cost matrix: the dense kernel
    # mostly underflows at eps = 1e-4 and falls back to the exact log-sum-exp.
    images_a, images_b = _mnist_images(2)
    pairs = pairs_from_images(images_a, images_b)
    a, b = pairs.a.numpy(), pairs.b.numpy()
    grid = image_grid(28, 28, dtype=torch.float32).numpy()
    cost = ((grid[:, None, :] - grid[None, :, :]) ** 2).sum(-1)
    kwargs = dict(epsilon=MNIST_EPSILON, dtype="float32", max_iter=60, tol=1e-300)
    dense = sinkhorn(a, b, cost, **kwargs)
    on_grid = sinkhorn(pairs, **kwargs)
    _assert_solution_is_sane(dense.f, dense.g, dense.errors, a, b)
    plans = dense.plan()
    _assert_plans_are_sane(plans)
    np.testing.assert_allclose(plans.sum(-2), b, rtol=0, atol=1e-5)
    for got, want in ((dense.f, on_grid.f), (dense.g, on_grid.g)):
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=0.005 * MNIST_EPSILON)
    np.testing.assert_allclose(dense.errors, on_grid.errors, rtol=1e-3, atol=1e-5)


def test_mnist_float32_tiny_epsilon_agrees_with_float64() -> None:
    # float32 loses nothing essential: the potentials match float64 to a small fraction of eps.
    images_a, images_b = _mnist_images(3, np.float64)
    pairs = pairs_from_images(images_a, images_b)
    kwargs = dict(epsilon=MNIST_EPSILON, max_iter=200, tol=1e-300)
    single = sinkhorn(pairs, dtype="float32", **kwargs)
    double = sinkhorn(pairs, dtype="float64", **kwargs)
    a = pairs.a.numpy()
    mass = a > 0
    # Potentials are defined up to (f + k, g - k): compare after centring.
    diff = np.where(mass, single.f.astype(np.float64), 0.0) - np.where(mass, double.f, 0.0)
    shift = np.array([diff[k, mass[k]].mean() for k in range(len(a))])
    centred = np.where(mass, diff - shift[:, None], 0.0)
    assert np.abs(centred).max() < 0.02 * MNIST_EPSILON
    np.testing.assert_allclose(single.errors, double.errors, rtol=1e-2, atol=1e-4)


# -- 2. float32, epsilon = 1e-3 on the sphere ------------------------------------------------
SPHERE_ITERATIONS = [1, 2, 5, 10, 20, 50, 100, 200, 300]


def test_sphere_supply_demand_float32_stays_finite_and_converges() -> None:
    pairs = make_sphere_supply_demand(4, n_supply=100, n_demand=300, random_state=0,
                                      dtype="float32")
    a, b = pairs.a.numpy(), pairs.b.numpy()
    assert (a == 0).any(1).all()  # half the supply points are switched off
    kwargs = dict(epsilon=1e-3, cost="spherical", dtype="float32")
    result = sinkhorn(pairs, max_iter=SPHERE_ITERATIONS[-1], tol=1e-300, **kwargs)
    _assert_solution_is_sane(result.f, result.g, result.errors, a, b)
    plans = result.plan()
    _assert_plans_are_sane(plans)
    np.testing.assert_allclose(plans.sum(-2), b, rtol=0, atol=1e-5)
    curve = sinkhorn_convergence(pairs, SPHERE_ITERATIONS, **kwargs)
    assert np.all(np.isfinite(curve))
    assert np.all(np.diff(curve, axis=0) <= 1e-5)
    np.testing.assert_allclose(curve[-1], result.errors, rtol=1e-3, atol=1e-5)
    assert np.all(curve[-1] < 0.5 * curve[0])
    # The same problems in float64 go the same way.
    double = sinkhorn(pairs, max_iter=SPHERE_ITERATIONS[-1], tol=1e-300,
                      **{**kwargs, "dtype": "float64"})
    np.testing.assert_allclose(result.errors, double.errors, rtol=1e-3, atol=1e-5)


# -- 3. fuzz of the solver over cost scales, sizes, dtypes and zero weights --------------------
COSTS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "sqeuclidean": sqeuclidean, "euclidean": euclidean, "spherical": spherical}


def _scaled_cost(name: str, scale: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    base = COSTS[name]

    def cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return scale * base(x, y)

    return cost


def _points(rng: np.random.Generator, size: int, dim: int, cost: str) -> np.ndarray:
    if cost == "spherical":
        points = rng.normal(size=(size, 3))
        return points / np.linalg.norm(points, axis=1, keepdims=True)
    points = rng.random((size, dim))
    if size > 1 and rng.random() < 0.3:  # repeated atoms (zero cost between distinct atoms)
        points[rng.integers(size, size=size // 2)] = points[0]
    return points


def _weights(rng: np.random.Generator, shape: tuple[int, int], zero_fraction: float,
             decades: float) -> np.ndarray:
    """Log-uniform weights over ``decades`` decades, with zeros; every row keeps some mass."""
    w = 10.0 ** (-decades * rng.random(shape))
    w[rng.random(shape) < zero_fraction] = 0.0
    for row in np.flatnonzero(w.sum(1) == 0):
        w[row, rng.integers(shape[1])] = 1.0
    return w / w.sum(1, keepdims=True)


#: Cost multipliers 1e-3..1e3, evenly over the decades.
scales = st.integers(-30, 30).map(lambda k: 10.0 ** (k / 10))
#: The usual epsilon half the time, else 1e-4..1 (absolute, in cost units).
epsilons = st.one_of(st.just(1e-2), st.integers(-40, 0).map(lambda k: 10.0 ** (k / 10)))


@st.composite
def ot_problems(draw: st.DrawFn, max_size: int = 200, max_batch: int = 3) -> dict:
    """A batch of OT problems on shared supports with a cost scaled by 1e-3..1e3."""
    cost = draw(st.sampled_from(sorted(COSTS)))
    n, m = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    dim = draw(st.integers(1, 3))
    batch = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    zeros = draw(st.sampled_from([0.0, 0.3, 0.9]))
    # Weights over up to 45 decades: the smallest are subnormal, or zero, in float32.
    decades = draw(st.sampled_from([0.0, 3.0, 10.0, 45.0]))
    return dict(
        cost=cost,
        scale=draw(scales),
        x=_points(rng, n, dim, cost), y=_points(rng, m, dim, cost),
        a=_weights(rng, (batch, n), zeros, decades), b=_weights(rng, (batch, m), zeros, decades),
        epsilon=draw(epsilons),
        dtype=draw(st.sampled_from(sorted(DTYPES))),
        seed=int(rng.integers(2**32)),
    )


def _magnitude(*terms: np.ndarray | torch.Tensor) -> float:
    """Sum of the largest finite absolute values of ``terms``."""
    total = 0.0
    for term in terms:
        values = np.abs(np.asarray(term, dtype=np.float64))
        total += values[np.isfinite(values)].max(initial=0.0)
    return total


def _check_solved_pair(f: np.ndarray, g: np.ndarray, error: float, plan: np.ndarray,
                       cost: np.ndarray, a: np.ndarray, b: np.ndarray, epsilon: float,
                       dtype: str) -> None:
    """The invariants of one solved problem, with float32 rounding of the plan accounted for."""
    # exp((f + g - C) / eps): the rounding of exponents this large shows in float32 plans.
    rounding = _rounding(_magnitude(f, g, cost) / epsilon, dtype)
    _assert_solution_is_sane(f, g, np.asarray([error]), a, b, rounding)
    _assert_plans_are_sane(plan)
    assert plan.shape == (len(a), len(b))
    # The b-marginal is exact (g = g(f)) up to that rounding.
    column_error = np.abs(plan.sum(0) - b).sum()
    assert column_error <= rounding + 1e3 * ROUNDOFF[dtype] * max(len(a), len(b))


MAX_ITER = 200


@settings(max_examples=300)
@given(ot_problems(), st.sampled_from(["matrix", "points", "clouds"]),
       st.sampled_from(["zeros", "gaussian", "given"]))
def test_sinkhorn_fuzz_never_produces_nan(problem: dict, mode: str, init: str) -> None:
    scale, epsilon, dtype = problem["scale"], problem["epsilon"], problem["dtype"]
    x, y, a, b = problem["x"], problem["y"], problem["a"], problem["b"]
    rng = np.random.default_rng(problem["seed"])
    cost_fn = _scaled_cost(problem["cost"], scale)
    if mode == "clouds":  # a collection with per-pair supports and sizes (padded batches)
        sizes = [(len(x), len(y))] + [(int(rng.integers(1, len(x) + 1)),
                                       int(rng.integers(1, len(y) + 1))) for _ in a[1:]]
        supports = [(x[rng.permutation(len(x))[:n]], y[rng.permutation(len(y))[:m]])
                    for n, m in sizes]
        weights = [(a_k[:n] / a_k[:n].sum() if a_k[:n].sum() > 0 else np.ones(n) / n,
                    b_k[:m] / b_k[:m].sum() if b_k[:m].sum() > 0 else np.ones(m) / m)
                   for (n, m), a_k, b_k in zip(sizes, a, b, strict=True)]
    else:
        supports = [(x, y)] * len(a)
        weights = list(zip(a, b, strict=True))
    if init == "given":  # arbitrary potentials of the cost's size, shifted far off
        init = [scale * rng.normal(size=len(w_a)) + scale * 10.0 ** rng.uniform(-3, 3)
                for w_a, _ in weights]
        init = np.stack(init) if mode != "clouds" else init
    kwargs = dict(epsilon=epsilon, dtype=dtype, max_iter=MAX_ITER, init=init)
    if mode == "matrix":
        cost = cost_fn(torch.from_numpy(x), torch.from_numpy(y)).numpy()
        result = sinkhorn(a, b, cost, **kwargs)
    elif mode == "points":
        result = sinkhorn(a, b, x=x, y=y, cost=cost_fn, **kwargs)
    else:
        result = sinkhorn([((x_k, a_k), (y_k, b_k)) for (x_k, y_k), (a_k, b_k)
                           in zip(supports, weights, strict=True)], cost=cost_fn, **kwargs)
    assert np.all((result.n_iter >= 1) & (result.n_iter <= MAX_ITER))
    np.testing.assert_array_equal(result.converged, result.errors < 1e-3)
    plans = result.plan()
    for k, ((x_k, y_k), (a_k, b_k)) in enumerate(zip(supports, weights, strict=True)):
        cost_k = cost_fn(torch.from_numpy(x_k), torch.from_numpy(y_k)).numpy()
        _check_solved_pair(result.f[k], result.g[k], result.errors[k], plans[k], cost_k,
                           a_k.astype(dtype), b_k.astype(dtype), epsilon, dtype)


# -- 3b. fuzz of meta-training ---------------------------------------------------------------
@settings(max_examples=60)
@given(ot_problems(max_size=40, max_batch=6),
       st.sampled_from([0, 2]), st.sampled_from([None, "gaussian"]))
def test_meta_sinkhorn_training_loss_stays_finite(problem: dict, unroll: int,
                                                  baseline: str | None) -> None:
    # The loss -<f, a> - <g(f), b> is finite for every finite f (g(f) is finite on b > 0 and
    # zero-weight atoms are left out), so a few small steps must never diverge: a
    # TrainingDiverged here would be a defect, not a clean failure.
    cost_fn = _scaled_cost("sqeuclidean", problem["scale"])
    pairs = HistogramPairs(problem["a"], problem["b"], problem["x"], problem["y"])
    est = MetaSinkhornTransport(
        epsilon=problem["epsilon"], cost=cost_fn, hidden_layer_sizes=(8,), max_iter=3,
        batch_size=4, unroll_steps=unroll, baseline=baseline, dtype=problem["dtype"],
        device="cpu", random_state=0,
    ).fit(pairs)
    losses = np.asarray(est.history_["loss"])
    assert len(losses) == 3 and np.all(np.isfinite(losses))
    assert all(torch.isfinite(p).all() for p in est.model_.parameters())
    f, g = est.predict_potentials(pairs)
    a, b = pairs.a.numpy(), pairs.b.numpy()
    _assert_solution_is_sane(f, g, np.zeros(len(a)), a, b)
    _assert_plans_are_sane(est.predict_plan(pairs))


@pytest.mark.parametrize("baseline, model", [(None, None), ("gaussian", None),
                                             ("sinkhorn", "conv")])
def test_meta_sinkhorn_training_on_mnist_float32_tiny_epsilon(baseline: str | None,
                                                               model: str | None) -> None:
    # The grid kernel under autograd at eps = 1e-4 in float32, zero pixels everywhere, with the
    # unrolled Sinkhorn term differentiating through -inf potentials on those pixels (and, for
    # the U-Net, through its convolutions over those pixels' features).
    images_a, images_b = _mnist_images(6)
    pairs = pairs_from_images(images_a, images_b)
    est = MetaSinkhornTransport(
        epsilon=MNIST_EPSILON, hidden_layer_sizes=(8,), model=model, max_iter=4, batch_size=4,
        unroll_steps=3, baseline=baseline, dtype="float32", device="cpu", random_state=0,
    ).fit(pairs)
    losses = np.asarray(est.history_["loss"])
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    f, g = est.predict_potentials(pairs)
    a, b = pairs.a.numpy(), pairs.b.numpy()
    _assert_solution_is_sane(f, g, np.zeros(len(a)), a, b)
    _assert_plans_are_sane(est.predict_plan(pairs[:2]))


# -- 3c. fuzz of the amortization losses ------------------------------------------------------
@st.composite
def loss_problems(draw: st.DrawFn) -> dict:
    """Loss inputs on a dense or a grid geometry, zero weights differing between problems."""
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale, epsilon = draw(scales), draw(epsilons)
    batch = draw(st.integers(1, 4))
    if draw(st.booleans()):  # product grids with the (scaled) squared Euclidean cost
        axes_x = [torch.from_numpy(np.sort(rng.random(draw(st.integers(1, 6))))).to(dtype)
                  * scale ** 0.5 for _ in range(2)]
        axes_y = [torch.from_numpy(np.sort(rng.random(draw(st.integers(1, 6))))).to(dtype)
                  * scale ** 0.5 for _ in range(2)]
        geometry = GridGeometry(axes_x, axes_y, epsilon)
    else:
        n, m = draw(st.integers(1, 60)), draw(st.integers(1, 60))
        x, y = torch.from_numpy(rng.random((n, 2))), torch.from_numpy(rng.random((m, 2)))
        geometry = DenseGeometry((scale * sqeuclidean(x, y)).to(dtype), epsilon)
    n, m = geometry.cost_matrix().shape
    zeros = draw(st.sampled_from([0.0, 0.3, 0.9]))
    decades = draw(st.sampled_from([0.0, 3.0, 10.0]))
    a = torch.from_numpy(_weights(rng, (batch, n), zeros, decades)).to(dtype)
    b = torch.from_numpy(_weights(rng, (batch, m), zeros, decades)).to(dtype)
    # Potentials of the cost's magnitude; anything at all on zero-weight atoms (ignored there:
    # predictions put -inf).
    f = torch.from_numpy(rng.normal(size=(batch, n)) * scale).to(dtype)
    off_support = draw(st.sampled_from([-math.inf, math.inf, math.nan, 0.0,
                                        float(torch.finfo(dtype).max)]))
    f = torch.where(a > 0, f, torch.full_like(f, off_support))
    return dict(geometry=geometry, a=a, b=b, f=f, n_steps=draw(st.integers(0, 3)))


@settings(max_examples=200)
@given(loss_problems())
def test_amortization_losses_are_finite_with_finite_gradients(problem: dict) -> None:
    geometry, a, b, n_steps = problem["geometry"], problem["a"], problem["b"], problem["n_steps"]
    f = problem["f"].clone().requires_grad_(True)
    value = entropic_dual_value(geometry, f, a, b)
    error = unrolled_marginal_error(geometry, f, a, b, n_steps)
    assert value.shape == error.shape == (a.shape[0],)
    assert torch.isfinite(value).all() and torch.isfinite(error).all()
    # At most 2 (a plan of mass one against a), up to the rounding of exp(F + k) with
    # F = f / eps: float32 cannot resolve exponents of 1e4 or more to better than 1e-3.
    dtype = "float32" if a.dtype == torch.float32 else "float64"
    rounding = _rounding(_magnitude(f.detach()[a > 0], geometry.cost_matrix())
                         / geometry.epsilon, dtype)
    assert ((error >= 0) & (error <= 2 * (1 + rounding) + 1e-3)).all()
    (value_grad,) = torch.autograd.grad(value.sum(), f)
    (error_grad,) = torch.autograd.grad(error.sum(), f)
    for grad in (value_grad, error_grad):
        assert torch.isfinite(grad).all()
        # Zero-weight source atoms are out of the problem: no gradient reaches them.
        assert (grad[a == 0] == 0).all()
    # d<f, a> + <g(f), b> / df = a - P 1: bounded by the two marginals.
    assert (value_grad.abs().sum(-1) <= 2 * (1 + rounding) + 1e-3).all()


# -- 3d. supports far from the origin (float32) ----------------------------------------------
# Points on a dyadic grid moved by a power of two stay exactly representable in float32, so the
# moved problem is the same problem: any difference is rounding of the computation alone.
@st.composite
def translated_supports(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    """Dyadic points in [0, 1]^d, and an offset 2^k (k <= 12) that moves them exactly."""
    dim = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, m = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    x = rng.integers(0, 1025, size=(n, dim)) / 1024
    y = rng.integers(0, 1025, size=(m, dim)) / 1024
    return x, y, 2.0 ** draw(st.integers(0, 12))


@settings(max_examples=50)
@example(supports=(np.eye(3)[:, :2] + 0.5, np.eye(2) / 4, 1024.0))
@given(translated_supports())
def test_sqeuclidean_float32_keeps_its_digits_far_from_the_origin(supports: tuple) -> None:
    # Regression: the expanded form |x|^2 + |y|^2 - 2<x, y> rounded relative to |x|^2, so at
    # 1000 + [0, 1]^2 float32 costs were off by ~0.4 (and the Sinkhorn plans by ~1.3 in L1).
    x, y, offset = supports
    exact = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    x_far, y_far = torch.from_numpy(x + offset).float(), torch.from_numpy(y + offset).float()
    atol = 1e-6 * x.shape[1]  # float32 rounding relative to the clouds' spread (at most d)
    np.testing.assert_allclose(sqeuclidean(x_far, y_far).double().numpy(), exact, rtol=1e-5,
                               atol=atol)
    # sqrt(c + delta) - sqrt(c) <= sqrt(delta): near-coincident points are only that close.
    np.testing.assert_allclose(euclidean(x_far, y_far).double().numpy(), np.sqrt(exact),
                               rtol=1e-5, atol=math.sqrt(atol))
    diagonal = sqeuclidean(*[torch.from_numpy(x + offset).float()] * 2).diagonal()
    assert torch.all(diagonal <= 1e-6 * x.shape[1])


@settings(max_examples=30)
@example(supports=(np.eye(3)[:, :2] + 0.5, np.eye(2) / 4, 1024.0))
@given(translated_supports())
def test_float32_sinkhorn_and_gaussian_init_are_translation_invariant(supports: tuple) -> None:
    # Moving both supports together changes neither the cost nor the problem.
    x, y, offset = supports
    a = np.full((1, len(x)), 1.0 / len(x))
    b = np.full((1, len(y)), 1.0 / len(y))
    kwargs = dict(epsilon=1e-2, dtype="float32", max_iter=300, tol=1e-4, init="gaussian")
    here = sinkhorn(a, b, x=x, y=y, **kwargs)
    there = sinkhorn(a, b, x=x + offset, y=y + offset, **kwargs)
    np.testing.assert_allclose(there.plan(), here.plan(), rtol=0, atol=1e-4)
    # The Gaussian initialisation itself (regression: its moments and |x|^2 - 2<x, m_b> rounded
    # relative to the distance from the origin, off by ~0.3 at 1000 + [0, 1]^2 in float32).
    start = [gaussian_init(torch.from_numpy(x_).float(), torch.from_numpy(a).float(),
                           torch.from_numpy(y_).float(), torch.from_numpy(b).float())
             for x_, y_ in ((x, y), (x + offset, y + offset))]
    np.testing.assert_allclose(start[1].numpy(), start[0].numpy(), rtol=0, atol=1e-5)


# -- 4. fuzz of the conjugate solver ----------------------------------------------------------
def _scaled_quadratic(dim: int, scale: float, seed: int) -> tuple[Callable, np.ndarray,
                                                                   np.ndarray]:
    """``scale * (x^T A x / 2 + c^T x)`` with SPD A of spectrum in [0.5, 5]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    matrix = (q * np.logspace(np.log10(0.5), np.log10(5.0), dim)) @ q.T
    linear = rng.normal(size=dim)
    matrix_t, linear_t = torch.from_numpy(matrix), torch.from_numpy(linear)

    def potential(x: torch.Tensor) -> torch.Tensor:
        return scale * (0.5 * ((x @ matrix_t.to(x)) * x).sum(-1) + x @ linear_t.to(x))

    return potential, matrix, linear


@settings(max_examples=150)
@given(st.integers(1, 10), st.floats(-3.0, 3.0), st.integers(0, 2**32 - 1),
       st.sampled_from(sorted(DTYPES)), st.sampled_from(["lbfgs", "adam"]),
       st.integers(1, 8), st.sampled_from([1e-2, 1.0, 1e2]))
def test_conjugate_fuzz_never_produces_nan(dim: int, log_scale: float, seed: int, dtype: str,
                                           method: str, batch: int, spread: float) -> None:
    scale = 10.0 ** log_scale
    potential, matrix, linear = _scaled_quadratic(dim, scale, seed)
    y = np.random.default_rng(seed + 1).normal(size=(batch, dim)) * spread
    res = conjugate(potential, y.astype(dtype), method=method, max_iter=100)
    for name in ("x", "value", "grad_norm"):
        values = np.asarray(getattr(res, name))
        assert values.dtype == np.dtype(dtype) and np.all(np.isfinite(values)), name
    assert np.all(res.n_iter <= 100)
    np.testing.assert_array_equal(res.converged, res.grad_norm <= 1e-3)
    # The reported gradient norm is that of the returned point (in float64).
    x = res.x.astype(np.float64)
    grad = scale * (x @ matrix + linear) - y.astype(dtype)
    np.testing.assert_allclose(res.grad_norm, np.linalg.norm(grad, axis=1),
                               rtol=1e-3 if dtype == "float32" else 1e-8,
                               atol=1e-3 * scale * (1 + np.abs(x).max()) if dtype == "float32"
                               else 1e-8 * scale * (1 + np.abs(x).max()))
    if method == "lbfgs" and dtype == "float64":
        # A strongly convex quadratic: L-BFGS reaches the tolerance well within 100 steps.
        assert np.all(res.converged)
        x_star = np.linalg.solve(matrix, (y / scale - linear).T).T
        np.testing.assert_allclose(x, x_star, rtol=0, atol=2 * 1e-3 / (0.5 * scale))


# -- 5. large-problem paths (issue 22): online geometry, dense without kernel, the warning ---
@settings(max_examples=80)
@given(ot_problems(max_size=80), st.sampled_from(["online", "dense-blocks"]))
def test_large_problem_paths_fuzz_never_produce_nan_and_say_non_convergence(
        problem: dict, path: str) -> None:
    # The online geometry (from supports; the squared Euclidean cost takes its one-GEMM path,
    # scaled through the supports) and the dense geometry reducing by blocks (no kernel),
    # under the same hostile numerics as the fuzz above. The warning comes exactly when some
    # problem stopped on max_iter, once, with the count.
    scale, epsilon, dtype = problem["scale"], problem["epsilon"], problem["dtype"]
    x, y, a, b = problem["x"], problem["y"], problem["a"], problem["b"]
    cost_fn = _scaled_cost(problem["cost"], scale)
    kwargs = dict(epsilon=epsilon, dtype=dtype, max_iter=MAX_ITER)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if path == "online" and problem["cost"] == "sqeuclidean":
            root = math.sqrt(scale)
            result = sinkhorn(a, b, x=root * x, y=root * y, geometry="online", **kwargs)
        elif path == "online":
            result = sinkhorn(a, b, x=x, y=y, cost=cost_fn, geometry="online", **kwargs)
        else:
            cost = cost_fn(torch.from_numpy(x), torch.from_numpy(y)).numpy()
            with mock.patch.object(skmetaot.geometry, "KERNEL_ELEMENTS", 0):
                result = sinkhorn(a, b, cost, **kwargs)
    plans = result.plan()
    cost_k = cost_fn(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    for k in range(len(a)):
        _check_solved_pair(result.f[k], result.g[k], result.errors[k], plans[k], cost_k,
                           a[k].astype(dtype), b[k].astype(dtype), epsilon, dtype)
    said = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    failed = int((~result.converged).sum())
    assert len(said) == (failed > 0)
    if failed:
        assert f"{failed} of {len(a)} problem" in str(said[0].message)


# -- 6. W2 numbers a user can trust (issue 22): units and failed training steps --------------
@settings(max_examples=60, deadline=None)
@given(st.integers(-6, 6), st.floats(-3, 3), st.floats(-3, 3), st.integers(1, 40),
       st.integers(0, 2**16))
def test_standardisation_is_exact_at_every_scale(exponent: int, shift_x: float, shift_y: float,
                                                 n: int, seed: int) -> None:
    # One similarity for both measures: equivariant, invertible, and the identity potential
    # |u|^2 / 2 comes back as |x|^2 / 2 with its dual, whatever the shift and the scale.
    from skmetaot.estimators._standardise import Standardisation

    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n + 3, 2)) + rng.normal(size=2)
    a, b = rng.random(n) + 0.1, rng.random(n + 3) + 0.1
    c, t = 10.0 ** exponent, 10.0 ** exponent * np.array([shift_x, shift_y])
    unit = Standardisation.from_points(*map(torch.from_numpy, (x, a, y, b)))
    moved = Standardisation.from_points(*map(torch.from_numpy, (c * x + t, a, c * y + t, b)))
    np.testing.assert_allclose(moved.scale, c * unit.scale, rtol=1e-12)
    np.testing.assert_allclose(moved.shift, c * unit.shift.numpy() + t, rtol=1e-12,
                               atol=1e-12 * c)
    u = moved.apply(torch.from_numpy(c * x + t))
    np.testing.assert_allclose(u, unit.apply(torch.from_numpy(x)), atol=1e-9)
    np.testing.assert_allclose(moved.undo(u), c * x + t, rtol=1e-12, atol=1e-12 * c)
    v = moved.apply(torch.from_numpy(c * y + t))
    values = moved.values(0.5 * (u ** 2).sum(-1), torch.from_numpy(c * x + t))
    np.testing.assert_allclose(values, 0.5 * ((c * x + t) ** 2).sum(-1), rtol=1e-9)
    dual = moved.dual(-0.5 * ((u ** 2).sum(-1).mean() + (v ** 2).sum(-1).mean()),
                      u.mean(0), v.mean(0))
    direct = -0.5 * (((c * x + t) ** 2).sum(-1).mean() + ((c * y + t) ** 2).sum(-1).mean())
    np.testing.assert_allclose(dual, direct, rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(-6, 6), st.floats(-3, 3), st.sampled_from(["transform", "inverse"]))
def test_transport_potential_answers_in_the_users_units(exponent: int, shift: float,
                                                        side: str) -> None:
    from skmetaot import TransportPotential

    c = 10.0 ** exponent
    potential = TransportPotential(lambda u: 0.5 * (u ** 2).sum(-1), 2, dtype=torch.float64,
                                   shift=[c * shift, -c * shift], scale=c, conjugate_tol=1e-8)
    x = c * np.random.default_rng(exponent + 7).normal(size=(16, 2)) + c * shift
    mapped = potential.transform(x) if side == "transform" else potential.inverse_transform(x)
    np.testing.assert_allclose(mapped, x, rtol=1e-7, atol=1e-7 * c)
    np.testing.assert_allclose(potential(x), 0.5 * (x ** 2).sum(-1), rtol=1e-9)
    np.testing.assert_allclose(potential.conjugate(x), 0.5 * (x ** 2).sum(-1), rtol=1e-9)


FAILURES = ("nan-loss", "inf-loss", "huge-loss", "raises", "nan-parameters", "wild-parameters")


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(FAILURES), st.integers(0, 30), st.integers(1, 5))
def test_training_recovers_from_any_failed_step(failure: str, first: int, count: int) -> None:
    # Minimise (w - 3)^2 from w = 0 while `count` consecutive steps fail from step `first`.
    # Whatever fails, the kept parameters are finite and never worse than the start (|w - 3|
    # <= 3), each failure costs one recovery, and training stops (TrainingDiverged) only
    # after three.
    from skmetaot.amortize import TrainingDiverged, TrainingHistory, train

    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    history = TrainingHistory()
    failing = set(range(first, first + count))

    class Faulty(torch.optim.Adam):
        """An optimiser whose update writes NaN or a wild value on the failing steps."""

        def step(self, closure=None):
            out = super().step(closure)
            if failure.endswith("parameters") and history.n_steps in failing:
                with torch.no_grad():
                    model.weight.fill_(float("nan") if failure == "nan-parameters" else 1e4)
            return out

    def step_loss(step: int) -> torch.Tensor:
        loss = ((model.weight - 3.0) ** 2).sum()
        if step in failing and failure == "raises":
            raise FloatingPointError("a numerical failure inside the step")
        if step in failing and failure.endswith("loss"):
            return loss + {"nan-loss": float("nan"), "inf-loss": float("inf"),
                           "huge-loss": 1e9}[failure]
        return loss

    try:
        train(model, step_loss, Faulty(model.parameters()), n_steps=40, learning_rate=0.1,
              history=history, max_abs_loss=1e6)
        diverged = False
    except TrainingDiverged:
        diverged = True
    weight = float(model.weight.detach())
    assert math.isfinite(weight) and abs(weight - 3.0) <= 3.0 + 1e-6
    assert len(history.recoveries) <= 3
    assert diverged == (len(_expected_recoveries(failure, failing, 40)) > 3)
    if not diverged:
        assert history.recoveries == _expected_recoveries(failure, failing, 40)


def _expected_recoveries(failure: str, failing: set[int], n_steps: int) -> list[int]:
    """The steps a run recovers: each failing one, except for wild (finite) parameters.

    Those are caught by the next step's loss, which is then skipped without an update (so
    it injects nothing); one written by the very last update goes unseen.
    """
    if failure != "wild-parameters":
        return sorted(s for s in failing if s < n_steps)
    recovered, pending = [], False
    for step in range(n_steps):
        if pending:
            recovered.append(step)
            pending = False
        elif step in failing:
            pending = True
    return recovered
