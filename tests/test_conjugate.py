"""Batched convex-conjugate solvers :func:`solve_conjugate` and :func:`conjugate`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from skmetaot.solvers import ConjugateResult, conjugate, solve_conjugate

METHODS = {"lbfgs": 100, "adam": 1000}  # method -> max_iter that comfortably suffices
DTYPES = [torch.float32, torch.float64]


def _tol(dtype):
    return 1e-3 if dtype == torch.float32 else 1e-6


def _quadratic(d, seed, dtype=torch.float64, low=0.5, high=5.0):
    """f(x) = x^T A x / 2 + b^T x with SPD A of spectrum in [low, high]."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    eigs = torch.logspace(np.log10(low), np.log10(high), d, dtype=torch.float64)
    a = (q * eigs) @ q.T
    b = torch.randn(d, generator=gen, dtype=torch.float64)

    def f(x):
        return 0.5 * ((x @ a.to(x)) * x).sum(-1) + x @ b.to(x)

    return f, a, b


def _softplus_net(d, hidden, seed, dtype=torch.float64):
    """A small convex network-like potential: sum_k c_k softplus(W x + u)_k + |x|^2 / 2."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(hidden, d, generator=gen, dtype=dtype) / d**0.5
    u = torch.randn(hidden, generator=gen, dtype=dtype)
    c = torch.rand(hidden, generator=gen, dtype=dtype) + 0.1

    def f(x):
        return torch.nn.functional.softplus(x @ w.T.to(x) + u.to(x)) @ c.to(x) + 0.5 * (
            x * x
        ).sum(-1)

    return f


def _grad(f, x):
    x = x.detach().double().requires_grad_(True)
    return torch.autograd.grad(f(x).sum(), x)[0]


# -- closed forms -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("d", [1, 2, 8, 64])
def test_quadratic_closed_form(d, method, dtype):
    f, a, b = _quadratic(d, seed=d)
    y = torch.randn(16, d, dtype=torch.float64)
    tol = _tol(dtype)
    res = solve_conjugate(f, y.to(dtype), method=method, tol=tol, max_iter=METHODS[method])
    x_star = torch.linalg.solve(a, (y - b).T).T
    value_star = 0.5 * ((y - b) * x_star).sum(-1)
    assert res.x.dtype == dtype and res.value.dtype == dtype and res.n_iter.dtype == torch.int64
    assert res.converged.all() and (res.grad_norm <= tol).all()
    # strong convexity (lambda_min = 0.5): |x - x*| <= |grad J| / lambda_min
    assert torch.allclose(res.x.double(), x_star, atol=2.5 * tol, rtol=0)
    # |f*(y) - value| <= |grad J|^2 / (2 lambda_min), plus rounding in J
    rounding = (1e-5 if dtype == torch.float32 else 1e-12) * (1 + value_star.abs())
    assert ((res.value.double() - value_star).abs() <= tol**2 + rounding).all()
    assert torch.allclose(res.grad_norm.double(), (_grad(f, res.x) - y).norm(dim=-1), atol=tol)


@pytest.mark.parametrize("method", list(METHODS))
def test_logsumexp_optimality(method):
    mu = 0.5

    def f(x):
        return torch.logsumexp(x, -1) + 0.5 * mu * (x * x).sum(-1)

    y = torch.randn(32, 5, dtype=torch.float64)
    res = solve_conjugate(f, y, method=method, tol=1e-6, max_iter=METHODS[method] * 2)
    assert res.converged.all()
    # grad f(x) = softmax(x) + mu x = y at the argmin
    assert torch.allclose(torch.softmax(res.x, -1) + mu * res.x, y, atol=1e-6)
    assert torch.allclose(res.value, (res.x * y).sum(-1) - f(res.x), atol=1e-12)


@pytest.mark.parametrize("method", list(METHODS))
def test_separable_softplus_matches_bisection(method):
    def f(x):
        return torch.nn.functional.softplus(x).sum(-1) + 0.5 * (x * x).sum(-1)

    y = 3 * torch.randn(64, 3, dtype=torch.float64)
    res = solve_conjugate(f, y, method=method, tol=1e-7, max_iter=METHODS[method] * 3)
    # each coordinate solves sigmoid(x) + x = y, monotone in x: bisect on [y - 1, y]
    lo, hi = y - 1, y.clone()
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = torch.sigmoid(mid) + mid < y
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    assert res.converged.all()
    assert torch.allclose(res.x, 0.5 * (lo + hi), atol=1e-7)


# -- agreement with scipy ---------------------------------------------------------------------
@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), d=st.integers(1, 6), batch=st.integers(1, 4))
def test_agrees_with_scipy_lbfgsb(seed, d, batch):
    f = _softplus_net(d, hidden=8, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    y = 2 * torch.randn(batch, d, generator=gen, dtype=torch.float64)
    res = solve_conjugate(f, y, tol=1e-8, max_iter=200)
    assert res.converged.all()
    for row in range(batch):
        yb = y[row]

        def fun(x, yb=yb):
            xt = torch.from_numpy(x).requires_grad_(True)
            value = f(xt[None])[0] - xt @ yb
            return value.item(), torch.autograd.grad(value, xt)[0].numpy()

        ref = minimize(fun, np.zeros(d), jac=True, method="L-BFGS-B",
                       options={"gtol": 1e-10, "ftol": 1e-15})
        np.testing.assert_allclose(res.x[row].numpy(), ref.x, atol=1e-6)
        np.testing.assert_allclose(res.value[row].item(), -ref.fun, rtol=1e-10, atol=1e-10)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16))
def test_fenchel_young_inequality(seed):
    f = _softplus_net(4, hidden=6, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    res = solve_conjugate(f, y, tol=1e-8)
    x_other = 3 * torch.randn(8, 50, 4, generator=gen, dtype=torch.float64)
    # f(x') + f*(y) >= <x', y> for every x', with equality at the argmin
    gap = f(x_other.reshape(-1, 4)).reshape(8, 50) + res.value[:, None]
    assert (gap - (x_other * y[:, None]).sum(-1) >= -1e-10).all()
    assert torch.allclose(f(res.x) + res.value, (res.x * y).sum(-1), atol=1e-12)


# -- iterations, freezing, mixed batches ------------------------------------------------------
def test_lbfgs_needs_fewer_iterations_than_adam_when_ill_conditioned():
    f, a, b = _quadratic(16, seed=3, low=0.1, high=10.0)
    y = torch.randn(8, 16, dtype=torch.float64)
    lbfgs = solve_conjugate(f, y, tol=1e-4, max_iter=300)
    assert lbfgs.converged.all() and lbfgs.n_iter.max() <= 60
    for rate in (0.1, 0.5):
        adam = solve_conjugate(f, y, method="adam", tol=1e-4, max_iter=300, learning_rate=rate)
        assert lbfgs.n_iter.max() < adam.n_iter.min()


@pytest.mark.parametrize("method", list(METHODS))
def test_converged_problem_is_frozen_and_not_evaluated(method):
    f, a, b = _quadratic(4, seed=1)
    y = torch.randn(5, 4, dtype=torch.float64)
    x_init = torch.zeros_like(y)
    x_init[2] = torch.linalg.solve(a, y[2] - b)  # already optimal
    sizes = []

    def counted(x):
        sizes.append(x.shape[0])
        return f(x)

    res = solve_conjugate(counted, y, x_init, method=method, tol=1e-6, max_iter=METHODS[method])
    assert res.n_iter[2] == 0 and torch.equal(res.x[2], x_init[2])
    assert (res.n_iter[[0, 1, 3, 4]] > 0).all() and res.converged.all()
    assert sizes[0] == 5 and max(sizes[1:]) <= 4
    assert sizes[-1] < 4  # the batch shrank as problems finished


def _mixed_batch():
    # distances from y to the start span four decades: the problems finish at different times
    y = torch.randn(12, 6, dtype=torch.float64)
    scale = torch.logspace(-4, 0, 12, dtype=torch.float64)[:, None]
    return _softplus_net(6, hidden=10, seed=7), y, y - scale * torch.randn(12, 6).double()


@pytest.mark.parametrize("method", list(METHODS))
def test_mixed_batch_converges_at_different_iterations(method):
    f, y, x_init = _mixed_batch()
    res = solve_conjugate(f, y, x_init, method=method, tol=1e-6, max_iter=METHODS[method])
    assert res.converged.all() and res.n_iter.min() < res.n_iter.max()
    assert torch.allclose(_grad(f, res.x), y, atol=1e-6)


def test_early_finishers_keep_their_solution_while_others_iterate():
    f, y, x_init = _mixed_batch()
    full = solve_conjugate(f, y, x_init, tol=1e-6)
    cap = int(full.n_iter.min())
    early = full.n_iter <= cap
    assert (~early).any()
    capped = solve_conjugate(f, y, x_init, tol=1e-6, max_iter=cap)
    assert torch.equal(capped.x[early], full.x[early])
    assert torch.equal(capped.n_iter, torch.clamp(full.n_iter, max=cap))
    assert torch.equal(capped.converged, early)


def test_max_iter_reports_unconverged():
    f, _, _ = _quadratic(8, seed=2, low=0.01, high=100.0)
    y = torch.randn(4, 8, dtype=torch.float64)
    res = solve_conjugate(f, y, tol=1e-10, max_iter=2)
    assert (res.n_iter == 2).all() and not res.converged.any()
    assert torch.isfinite(res.x).all() and torch.isfinite(res.value).all()


# -- robustness -------------------------------------------------------------------------------
def test_non_finite_trial_points_backtrack():
    def barrier(x):  # finite only on (-1, 1)^d: NaN outside
        return -torch.log1p(-x * x).sum(-1)

    y = 5 * torch.randn(16, 3, dtype=torch.float64)
    res = solve_conjugate(barrier, y, torch.zeros_like(y), tol=1e-8, max_iter=200)
    assert res.converged.all() and torch.isfinite(res.value).all()
    assert (res.x.abs() < 1).all()
    # 2x / (1 - x^2) = y coordinate-wise
    assert torch.allclose(2 * res.x / (1 - res.x**2), y, atol=1e-7)


def test_adam_rejects_non_finite_steps():
    def barrier(x):
        return -torch.log1p(-x * x).sum(-1)

    y = 5 * torch.randn(8, 2, dtype=torch.float64)
    res = solve_conjugate(barrier, y, torch.zeros_like(y), method="adam", learning_rate=0.5,
                          tol=1e-4, max_iter=2000)
    assert torch.isfinite(res.x).all() and torch.isfinite(res.value).all()
    assert (res.x.abs() < 1).all() and res.converged.all()


def test_failed_line_search_stops_the_problem_without_nan():
    x0 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)

    def spike(x):  # finite only at the starting point
        ok = (x == x0).all(-1)
        return torch.where(ok, 0.5 * (x * x).sum(-1), torch.full_like(x[:, 0], float("nan")))

    res = solve_conjugate(spike, torch.zeros_like(x0), x0, max_linesearch=5)
    assert res.n_iter.tolist() == [1] and not res.converged.any()
    assert torch.equal(res.x, x0) and torch.isfinite(res.value).all()


def test_non_convex_potential_reaches_a_stationary_point():
    def f(x):  # 1 - 2 cos(x) < 0 near 0: not convex, but coercive
        return 0.5 * (x * x).sum(-1) + 2 * torch.cos(x).sum(-1)

    y = 2 * torch.randn(64, 4, dtype=torch.float64)
    x_init = torch.randn(64, 4, dtype=torch.float64)
    res = solve_conjugate(f, y, x_init, tol=1e-6, max_iter=200)
    assert res.converged.all() and torch.isfinite(res.x).all()
    start = f(x_init) - (x_init * y).sum(-1)
    assert (-res.value <= start + 1e-12).all()


# -- autograd hygiene -------------------------------------------------------------------------
class _Net(torch.nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.layer = torch.nn.Linear(d, 16)

    def forward(self, x):
        return torch.nn.functional.softplus(self.layer(x)).sum(-1) + 0.5 * (x * x).sum(-1)


@pytest.mark.parametrize("no_grad", [False, True])
def test_module_parameters_get_no_grad(no_grad):
    net = _Net(3)
    y = torch.randn(10, 3)
    with torch.set_grad_enabled(not no_grad):
        res = conjugate(net, y, tol=1e-4)
    assert all(p.grad is None for p in net.parameters())
    assert res.converged.all()
    for field in ("x", "value", "grad_norm"):
        assert not getattr(res, field).requires_grad
    assert res.x.grad_fn is None and res.value.grad_fn is None


def test_numpy_float64_with_float32_module():
    net = _Net(3)
    y = np.random.default_rng(0).normal(size=(6, 3))
    res = conjugate(net, y, tol=1e-4)
    assert isinstance(res.x, np.ndarray) and res.x.dtype == np.float64
    assert res.value.dtype == np.float64 and res.converged.all()


# -- numpy/torch boundary ---------------------------------------------------------------------
def _half_square(x):
    return 0.5 * (x * x).sum(-1)


@pytest.mark.parametrize("np_dtype", [np.float32, np.float64])
def test_numpy_in_numpy_out(np_dtype):
    y = np.random.default_rng(0).normal(size=(4, 3)).astype(np_dtype)
    res = conjugate(_half_square, y, x_init=np.zeros_like(y))
    assert isinstance(res, ConjugateResult)
    for field in ("x", "value", "grad_norm", "n_iter", "converged"):
        assert isinstance(getattr(res, field), np.ndarray)
    assert res.x.dtype == np_dtype and res.value.dtype == np_dtype
    assert res.n_iter.dtype == np.int64 and res.converged.dtype == np.bool_
    np.testing.assert_allclose(res.x, y, atol=1e-3)
    np.testing.assert_allclose(res.value, 0.5 * (y * y).sum(-1), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_torch_in_torch_out(dtype):
    y = torch.randn(4, 3, dtype=dtype)
    res = conjugate(_half_square, y, x_init=np.zeros((4, 3)))
    for field in ("x", "value", "grad_norm", "n_iter", "converged"):
        assert isinstance(getattr(res, field), torch.Tensor)
        assert getattr(res, field).device == y.device
    assert res.x.dtype == dtype and res.value.dtype == dtype
    assert torch.allclose(res.x, y, atol=1e-3)


def test_single_point():
    y = np.array([1.0, -2.0, 0.5])
    res = conjugate(_half_square, y, x_init=np.zeros(3))
    assert res.x.shape == (3,) and np.ndim(res.value) == 0 and np.ndim(res.n_iter) == 0
    assert bool(res.converged)
    np.testing.assert_allclose(res.value, 0.5 * y @ y, rtol=1e-6)
    res_t = conjugate(_half_square, torch.tensor(y))
    assert res_t.x.shape == (3,) and res_t.value.shape == ()


def test_object_with_potential_method():
    class Model:
        def potential(self, x):
            return _half_square(x)

    y = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(conjugate(Model(), y, x_init=np.zeros((1, 2))).x, y, atol=1e-6)


# -- validation -------------------------------------------------------------------------------
Y = torch.randn(3, 2, dtype=torch.float64)
ERRORS = {
    "method": (dict(method="newton"), ValueError, r"method='newton'"),
    "tol-zero": (dict(tol=0.0), ValueError, r"tol.*positive"),
    "tol-nan": (dict(tol=float("nan")), ValueError, r"tol"),
    "max_iter-zero": (dict(max_iter=0), ValueError, r"max_iter.*positive integer"),
    "max_iter-float": (dict(max_iter=2.5), ValueError, r"max_iter"),
    "history-zero": (dict(history_size=0), ValueError, r"history_size"),
    "lr-negative": (dict(learning_rate=-1.0), ValueError, r"learning_rate"),
    "y-3d": (dict(y=torch.zeros(2, 2, 2)), ValueError, r"y must have shape \(B, d\)"),
    "y-numpy": (dict(y=np.zeros((3, 2))), TypeError, r"torch tensor"),
    "y-nan": (dict(y=torch.tensor([[np.nan, 0.0]])), ValueError, r"y contains NaN"),
    "x_init-shape": (dict(x_init=torch.zeros(3, 3)), ValueError, r"x_init has shape \(3, 3\)"),
    "output-shape": (dict(potential=lambda x: x), ValueError, r"shape \(3,\), got \(3, 2\)"),
    "output-scalar": (dict(potential=lambda x: x.sum()), ValueError, r"got \(\)"),
    "not-callable": (dict(potential=3), TypeError, r"callable"),
    "no-autograd": (dict(potential=lambda x: torch.zeros(len(x))), TypeError, r"autograd"),
    "nan-at-init": (
        dict(potential=lambda x: torch.log(x[:, 0]) + 0.5 * (x * x).sum(-1),
             y=torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0]])),
        ValueError, r"not finite at x_init for problem\(s\) \[1\] of 3",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_solve_conjugate_errors(case):
    overrides, exc_type, pattern = ERRORS[case]
    kwargs = dict(potential=_half_square, y=Y) | overrides
    with pytest.raises(exc_type, match=pattern):
        solve_conjugate(**kwargs)


def test_conjugate_errors():
    with pytest.raises(TypeError, match="potential"):
        conjugate(object(), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"x_init has shape"):
        conjugate(_half_square, np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"y must have shape"):
        conjugate(_half_square, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        conjugate(_half_square, np.array([[np.nan, 1.0]]))
    with pytest.raises(TypeError):
        conjugate(_half_square, np.array([["a", "b"]]))


# -- the benchmark bar ------------------------------------------------------------------------
def test_large_batch_converges_within_50_iterations():
    d = 64
    f = _softplus_net(d, hidden=128, seed=0, dtype=torch.float32)
    y = 2 * torch.randn(1024, d)
    x_init = y + 0.5 * torch.randn(1024, d)
    res = conjugate(f, y, x_init, tol=1e-3, max_iter=50)
    assert res.converged.all()
    assert int(res.n_iter.max()) <= 50 and (res.grad_norm <= 1e-3).all()
