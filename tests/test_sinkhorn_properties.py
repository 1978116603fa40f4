"""Property-based tests of the Sinkhorn solver and its kernels (hypothesis)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial.distance import cdist

from skmetaot import HistogramPairs, sinkhorn
from skmetaot.geometry import DenseGeometry, GridGeometry, softmin_last, softmin_matmul
from skmetaot.metrics import marginal_error

TOL = 1e-8
MAX_ITER = 20_000
PROPERTY = settings(max_examples=200, deadline=None)

unit = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
# Weights: zeros are frequent, tiny and large values too (they are rescaled to sum to one).
weight = st.one_of(st.just(0.0), st.floats(1e-6, 1e3, allow_subnormal=False))


@st.composite
def weights(draw, size):
    w = draw(hnp.arrays(np.float64, size, elements=weight))
    if not w.sum() > 0:  # positive total mass
        w[draw(st.integers(0, size - 1))] = 1.0
    return w / w.sum()


@st.composite
def problems(draw, max_size=60, max_dim=5):
    """A random OT problem: points in [0, 1]^d, weights with zeros, eps over three decades."""
    n = draw(st.integers(1, max_size))
    m = draw(st.integers(1, max_size))
    d = draw(st.integers(1, max_dim))
    x = draw(hnp.arrays(np.float64, (n, d), elements=unit))
    y = draw(hnp.arrays(np.float64, (m, d), elements=unit))
    a, b = draw(weights(n)), draw(weights(m))
    # Relative to the cost scale d (the squared diameter of [0, 1]^d).
    epsilon = d * 10.0 ** draw(st.floats(-2.0, 1.0))
    return x, a, y, b, epsilon


def _solve(x, a, y, b, epsilon, **kwargs):
    kwargs = {"tol": TOL, "max_iter": MAX_ITER, **kwargs}
    return sinkhorn(a, b, x=x, y=y, epsilon=epsilon, **kwargs)


@PROPERTY
@given(problems())
def test_solution_invariants(problem):
    x, a, y, b, epsilon = problem
    res = _solve(x, a, y, b, epsilon)
    f, g = res.f, res.g
    plan = res.plan()
    assert plan.shape == (len(a), len(b))
    # Non-negative plan; marginals within the requested tolerance, in L1 (both sides summed).
    assert np.all(plan >= 0) and not np.isnan(plan).any()
    error = marginal_error(plan, a, b)
    if bool(res.converged):
        assert 1 <= int(res.n_iter) <= MAX_ITER
        assert 0 <= float(res.errors) < TOL and error < TOL
        assert np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum() < TOL
    else:  # only allowed when the iteration budget is spent (very slow problems)
        assert int(res.n_iter) == MAX_ITER and float(res.errors) >= TOL
    # The reported error is that of the returned plan.
    assert abs(float(res.errors) - error) <= 1e-12
    # g = g(f): the b-marginal is exact.
    np.testing.assert_allclose(plan.sum(0), b, rtol=0, atol=1e-10)
    # Potentials: finite on positive weights, -inf (never NaN) on zero weights.
    assert not np.isnan(f).any() and not np.isnan(g).any()
    assert np.all(np.isfinite(f[a > 0])) and np.all(f[a == 0] == -np.inf)
    assert np.all(np.isfinite(g[b > 0])) and np.all(g[b == 0] == -np.inf)
    # The plan is the primal of the potentials.
    cost = cdist(x, y, "sqeuclidean")
    with np.errstate(invalid="ignore"):
        expected = np.exp((f[:, None] + g[None, :] - cost) / epsilon)
    np.testing.assert_allclose(plan, np.nan_to_num(expected), rtol=1e-9, atol=1e-300)


@PROPERTY
@given(problems(), st.data())
def test_permuting_atoms_permutes_the_plan(problem, data):
    x, a, y, b, epsilon = problem
    perm_x = data.draw(st.permutations(range(len(a))))
    perm_y = data.draw(st.permutations(range(len(b))))
    base = _solve(x, a, y, b, epsilon)
    permuted = _solve(x[perm_x], a[perm_x], y[perm_y], b[perm_y], epsilon)
    np.testing.assert_allclose(permuted.plan(), base.plan()[np.ix_(perm_x, perm_y)],
                               rtol=0, atol=10 * TOL)
    positive = a[perm_x] > 0
    # Potentials are defined up to (f + k, g - k): compare after centring.
    shift = np.mean(permuted.f[positive] - base.f[perm_x][positive])
    np.testing.assert_allclose(permuted.f[positive], base.f[perm_x][positive] + shift,
                               rtol=0, atol=1e-5 * max(1.0, epsilon))


@PROPERTY
@given(problems(max_size=30), st.data())
def test_shifting_the_initial_potential_does_not_change_the_plan(problem, data):
    x, a, y, b, epsilon = problem
    f0 = data.draw(hnp.arrays(np.float64, len(a), elements=st.floats(-2.0, 2.0)))
    shift = data.draw(st.floats(-50.0, 50.0))
    first = _solve(x, a, y, b, epsilon, init=f0)
    second = _solve(x, a, y, b, epsilon, init=f0 + shift)
    np.testing.assert_allclose(second.plan(), first.plan(), rtol=0, atol=10 * TOL)
    assert abs(int(second.n_iter) - int(first.n_iter)) <= 1


@PROPERTY
@given(problems(max_size=30), st.data())
def test_one_update_from_any_init_gives_an_exact_b_marginal(problem, data):
    # max_iter=1 returns (f0, g(f0)) for an arbitrary f0: the b-marginal is already exact.
    x, a, y, b, epsilon = problem
    f0 = data.draw(hnp.arrays(np.float64, len(a), elements=st.floats(-3.0, 3.0)))
    res = _solve(x, a, y, b, epsilon, init=f0, max_iter=1)
    assert int(res.n_iter) == 1
    plan = res.plan()
    np.testing.assert_allclose(plan.sum(0), b, rtol=0, atol=1e-10)
    assert abs(float(res.errors) - marginal_error(plan, a, b)) <= 1e-10 * max(1.0, plan.sum())
    np.testing.assert_array_equal(np.isfinite(res.f), a > 0)


# -- kernels --------------------------------------------------------------------------------
@st.composite
def grids(draw, max_axes=3, max_len=6):
    n_axes = draw(st.integers(1, max_axes))
    axes_x, axes_y = [], []
    for _ in range(n_axes):
        for axes in (axes_x, axes_y):
            length = draw(st.integers(1, max_len))
            axes.append(np.sort(draw(hnp.arrays(np.float64, length, elements=unit,
                                                unique=True))))
    return axes_x, axes_y


def _potentials(draw, batch, size, scale):
    values = draw(hnp.arrays(np.float64, (batch, size),
                             elements=st.floats(-1.0, 1.0, allow_subnormal=False)))
    values = values * scale
    mask = draw(hnp.arrays(np.bool_, (batch, size)))
    values[mask] = -np.inf
    return values


@PROPERTY
@given(grids(), st.sampled_from([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]),
       st.sampled_from([1.0, 1e2, 1e4]), st.integers(1, 3), st.data())
def test_grid_kernel_matches_dense_kernel(axes, epsilon, scale, batch, data):
    axes_x, axes_y = axes
    tx = [torch.from_numpy(u) for u in axes_x]
    ty = [torch.from_numpy(v) for v in axes_y]
    x = torch.cartesian_prod(*tx).reshape(-1, len(tx))
    y = torch.cartesian_prod(*ty).reshape(-1, len(ty))
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    grid, dense = GridGeometry(tx, ty, epsilon), DenseGeometry(cost, epsilon)
    np.testing.assert_allclose(grid.cost_matrix().numpy(), cost.numpy(), rtol=1e-12, atol=1e-14)
    source = torch.from_numpy(_potentials(data.draw, batch, len(x), scale))
    target = torch.from_numpy(_potentials(data.draw, batch, len(y), scale))
    for got, want in ((grid.lse_source(source), dense.lse_source(source)),
                      (grid.lse_target(target), dense.lse_target(target))):
        got, want = got.numpy(), want.numpy()
        assert not np.isnan(got).any()
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10,
                                   atol=1e-10 * max(1.0, float(np.abs(want[finite]).max(
                                       initial=0.0))))
    # The dense kernel itself is the plain log-sum-exp.
    reference = torch.logsumexp(source[:, None, :] - cost.T / epsilon, -1)
    np.testing.assert_allclose(dense.lse_source(source).numpy(), reference.numpy(),
                               rtol=1e-12, atol=1e-9)


@PROPERTY
@given(grids(), st.sampled_from([1e-2, 1e-1, 1.0]), st.integers(1, 3), st.data())
def test_grid_kernel_gradient_matches_dense_kernel(axes, epsilon, batch, data):
    # Meta-training differentiates the grid's fused soft-min (its own backward pass).
    tx, ty = ([torch.from_numpy(u) for u in side] for side in axes)
    x = torch.cartesian_prod(*tx).reshape(-1, len(tx))
    y = torch.cartesian_prod(*ty).reshape(-1, len(ty))
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    grid, dense = GridGeometry(tx, ty, epsilon), DenseGeometry(cost, epsilon)
    source = torch.from_numpy(_potentials(data.draw, batch, len(x), 1.0))
    upstream = torch.randn(batch, len(y), dtype=torch.float64,
                           generator=torch.Generator().manual_seed(len(x)))
    grads = []
    for geometry in (grid, dense):
        values = source.clone().requires_grad_()
        out = geometry.lse_source(values)
        torch.where(torch.isfinite(out), out * upstream, 0.0).sum().backward()
        grads.append(values.grad)
    assert torch.isfinite(grads[0]).all()
    assert not grads[0][torch.isneginf(source)].any()
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-8, atol=1e-10)


@PROPERTY
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 3), st.booleans(),
       st.sampled_from([1e-2, 1e-1, 1.0]), st.data())
def test_dense_kernel_gradient_is_the_log_sum_exp_gradient(n, m, batch, batched, epsilon, data):
    # The fused matrix-product soft-min has its own backward pass; dead rows get no gradient.
    gen = torch.Generator().manual_seed(n * 64 + m * 8 + batch)
    cost = torch.rand(batch, n, m, generator=gen, dtype=torch.float64)
    cost = cost if batched else cost[0]
    source = torch.from_numpy(_potentials(data.draw, batch, n, 1.0))
    upstream = torch.randn(batch, m, generator=gen, dtype=torch.float64)
    grads = []
    for exact in (False, True):
        values = source.clone().requires_grad_()
        out = (torch.logsumexp(values[:, None, :] - cost.transpose(-1, -2) / epsilon, -1)
               if exact else DenseGeometry(cost, epsilon).lse_source(values))
        torch.where(torch.isfinite(out), out * upstream, 0.0).sum().backward()
        grads.append(torch.nan_to_num(values.grad, nan=0.0) if exact else values.grad)
    assert torch.isfinite(grads[0]).all()
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-8, atol=1e-12)


@PROPERTY
@given(grids(), st.sampled_from([1e-2, 1.0]), st.data())
def test_restricted_grid_is_the_grid_of_the_kept_coordinates(axes, epsilon, data):
    axes_x, axes_y = ([torch.from_numpy(u) for u in side] for side in axes)
    x = torch.cartesian_prod(*axes_x).reshape(-1, len(axes_x))
    y = torch.cartesian_prod(*axes_y).reshape(-1, len(axes_y))
    source_used = torch.from_numpy(data.draw(hnp.arrays(np.bool_, len(x))))
    target_used = torch.from_numpy(data.draw(hnp.arrays(np.bool_, len(y))))
    grid = GridGeometry(axes_x, axes_y, epsilon)
    sub, source_index, target_index = grid.restrict(source_used, target_used)
    for points, used, index, sub_axes in ((x, source_used, source_index, sub.axes_x),
                                          (y, target_used, target_index, sub.axes_y)):
        # Every used atom is kept, and the kept indices are the sub-grid's points in order.
        assert set(used.nonzero()[:, 0].tolist()) <= set(index.tolist())
        kept = torch.cartesian_prod(*sub_axes).reshape(-1, len(sub_axes))
        torch.testing.assert_close(points[index], kept, rtol=0, atol=0)
    # The sliced kernels equal those computed afresh on the kept coordinates.
    fresh = GridGeometry(sub.axes_x, sub.axes_y, epsilon)
    for name in ("_costs", "_kernels"):
        for got, want in zip(getattr(sub, name), getattr(fresh, name), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


@PROPERTY
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 8)),
                  elements=st.one_of(st.just(-np.inf), st.floats(-1e4, 1e4))),
       hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(8)),
                  elements=st.floats(0.0, 1e4)))
def test_softmin_last_matches_logsumexp(values, kernel):
    kernel = torch.from_numpy(kernel[:, : values.shape[1]].copy())
    values_t = torch.from_numpy(values)
    got = softmin_last(values_t, kernel).numpy()
    want = torch.logsumexp(values_t[..., None, :] - kernel, -1).numpy()
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


@PROPERTY
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 8)),
                  elements=st.one_of(st.just(-np.inf), st.floats(-1e3, 1e3))),
       hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(8)),
                  elements=st.one_of(st.floats(0.0, 5.0), st.floats(600.0, 2000.0))))
def test_softmin_matmul_matches_logsumexp_with_underflow(values, kernel):
    # exp(-kernel) underflows to 0 for kernel > ~745: the exact fallback must take over.
    kernel = torch.from_numpy(kernel[:, : values.shape[1]].copy())
    values_t = torch.from_numpy(values)
    # A kernel shared by the batch, and one kernel per problem.
    shared = (kernel, torch.exp(-kernel).T.contiguous())
    batched_kernel = kernel.expand(len(values), *kernel.shape) + torch.arange(
        len(values), dtype=kernel.dtype)[:, None, None]
    per_problem = (batched_kernel, torch.exp(-batched_kernel).transpose(-1, -2).contiguous())
    for kern, kern_exp in (shared, per_problem):
        want = torch.logsumexp(values_t[..., None, :] - kern, -1).numpy()
        # The no-autograd fast path, and the differentiable path (values requiring grad).
        for inputs in (values_t, values_t.clone().requires_grad_(True)):
            got = softmin_matmul(inputs, kern, kern_exp).detach().numpy()
            assert not np.isnan(got).any()
            np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
            finite = np.isfinite(want)
            np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-9)


def test_softmin_last_float32_with_terms_far_below_underflow():
    # exp's arguments are clamped above float32 underflow (a ~25x faster path in torch): the
    # result must still be the float32 log-sum-exp, and a row of -inf must stay -inf.
    rng = np.random.default_rng(0)
    values = torch.tensor(rng.normal(size=(3, 50)) * 500, dtype=torch.float32)
    values[1, :] = -float("inf")
    values[2, 10:] = -float("inf")
    kernel = torch.tensor(rng.random((40, 50)) * 3000, dtype=torch.float32)
    got = softmin_last(values, kernel)
    want = torch.logsumexp(values.double()[..., None, :] - kernel.double(), -1)
    assert torch.isneginf(got[1]).all()
    np.testing.assert_allclose(got[[0, 2]].numpy(), want[[0, 2]].numpy(), rtol=1e-6)
    grad_values = values[[0, 2]].clone().requires_grad_()
    (grad,) = torch.autograd.grad(softmin_last(grad_values, kernel).sum(), grad_values)
    assert torch.isfinite(grad).all()


def test_soft_min_kernels_are_differentiable():
    rng = np.random.default_rng(0)
    values = torch.tensor(rng.normal(size=(2, 5)), requires_grad=True)
    kernel = torch.tensor(rng.random((3, 5)) * 800)  # partly underflowing exp(-kernel)
    for out in (softmin_last(values, kernel),
                softmin_matmul(values, kernel, torch.exp(-kernel).T.contiguous())):
        (grad,) = torch.autograd.grad(out.sum(), values)
        want = torch.autograd.grad(torch.logsumexp(values[:, None, :] - kernel, -1).sum(),
                                   values)[0]
        assert torch.isfinite(grad).all()
        np.testing.assert_allclose(grad.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)


def test_softmin_last_backward_matches_autograd_of_logsumexp():
    # The hand-written backward (weights recomputed, floored above underflow) against autograd,
    # for both inputs, with atoms without mass (-inf) and a dead row (all -inf).
    rng = np.random.default_rng(1)
    values = torch.tensor(rng.normal(size=(3, 2, 6)) * 50)
    values[0, 1, :] = -float("inf")
    values[1, :, 2] = -float("inf")
    kernel = torch.tensor(rng.random((3, 4, 6)) * 900)
    upstream = torch.tensor(rng.normal(size=(3, 2, 4)))
    got_v, got_k = values.clone().requires_grad_(), kernel.clone().requires_grad_()
    out = softmin_last(got_v, got_k[:, None])
    out = torch.where(torch.isfinite(out), out, 0.0)
    grads = torch.autograd.grad((out * upstream).sum(), (got_v, got_k))
    want_v, want_k = values.clone().requires_grad_(), kernel.clone().requires_grad_()
    ref = torch.logsumexp(want_v[..., None, :] - want_k[:, None], -1)
    ref = torch.where(torch.isfinite(ref), ref, 0.0)
    wants = torch.autograd.grad((ref * upstream).sum(), (want_v, want_k))
    # logsumexp's own gradient is NaN on the dead row, and so on all of problem 0's kernel.
    pieces = [(grads[0], torch.nan_to_num(wants[0], nan=0.0)), (grads[1][1:], wants[1][1:])]
    for grad, want in pieces:
        assert torch.isfinite(grad).all()
        np.testing.assert_allclose(grad.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)
    assert torch.isfinite(grads[1]).all()
    assert (grads[0][1, :, 2] == 0).all() and (grads[0][0, 1] == 0).all()


@st.composite
def grid_problems(draw):
    rows, cols = draw(st.integers(2, 7)), draw(st.integers(2, 7))
    n = rows * cols
    grid = np.stack(np.meshgrid(np.linspace(0, 1, rows), np.linspace(0, 1, cols),
                                indexing="ij"), -1).reshape(-1, 2)
    a, b = draw(weights(n)), draw(weights(n))
    epsilon = 2 * 10.0 ** draw(st.floats(-2.0, 1.0))
    return grid, a, b, epsilon


@PROPERTY
@given(grid_problems())
def test_grid_sinkhorn_matches_dense_sinkhorn(problem):
    grid, a, b, epsilon = problem
    assert HistogramPairs(a[None], b[None], grid, grid).grid_x is not None  # separable kernel
    # Both run the same iteration (up to rounding), converged or not: compare at any stage.
    kwargs = dict(epsilon=epsilon, tol=1e-10, max_iter=2_000)
    on_grid = sinkhorn(a, b, x=grid, y=grid, **kwargs)
    dense = sinkhorn(a, b, cdist(grid, grid, "sqeuclidean"), **kwargs)
    assert abs(int(on_grid.n_iter) - int(dense.n_iter)) <= 1
    assert abs(float(on_grid.errors) - float(dense.errors)) <= 1e-9
    for got, want, w in ((on_grid.f, dense.f, a), (on_grid.g, dense.g, b)):
        np.testing.assert_array_equal(np.isneginf(got), w == 0)
        np.testing.assert_array_equal(np.isneginf(want), w == 0)
        np.testing.assert_allclose(got[w > 0], want[w > 0], rtol=0,
                                   atol=1e-6 * max(1.0, epsilon))
    np.testing.assert_allclose(on_grid.plan(), dense.plan(), rtol=0, atol=1e-9)


def test_soft_min_gradient_is_finite_when_the_fast_path_underflows():
    # Regression: entries that underflow in the float64 product used to send 0 * inf = NaN
    # into the backward pass even though the exact fallback replaced their value.
    torch.manual_seed(0)
    x = torch.rand(20, 3, dtype=torch.float64)
    y = torch.rand(50, 3, dtype=torch.float64)
    geometry = DenseGeometry(((x[:, None] - y[None]) ** 2).sum(-1), 1e-4)
    potential = (torch.randn(4, 20, dtype=torch.float64) * 500).requires_grad_(True)
    out = geometry.lse_source(potential)
    out.sum().backward()
    assert torch.isfinite(potential.grad).all()
    reference = torch.logsumexp(potential.detach()[:, :, None] - geometry.scaled, dim=1)
    torch.testing.assert_close(out.detach(), reference)


def test_soft_min_gradient_is_finite_on_rows_without_mass():
    # Rows that are all -inf (atoms without mass) give -inf with a zero gradient, not 0/0 = NaN.
    torch.manual_seed(0)
    axes = [torch.linspace(0, 1, size, dtype=torch.float64) for size in (5, 4)]
    grid = torch.cartesian_prod(*axes)
    cost = ((grid[:, None] - grid[None]) ** 2).sum(-1)
    for geometry in (DenseGeometry(cost, 1e-2), GridGeometry(axes, axes, 1e-2)):
        potential = torch.randn(3, 20, dtype=torch.float64)
        potential[:, :8] = float("-inf")  # whole grid rows without mass
        potential[1] = float("-inf")  # a problem with no mass at all on this side
        potential.requires_grad_(True)
        out = geometry.lse_source(potential)
        assert torch.isneginf(out[1]).all()
        out[torch.isfinite(out)].sum().backward()
        assert not torch.isnan(potential.grad).any()
