"""Sinkhorn's scaling-domain iterations on grids: the log domain's iterates, or a fallback to it."""

from __future__ import annotations

import pytest
import torch

from skmetaot.datasets import make_mnist_pairs
from skmetaot.geometry import DenseGeometry, GridGeometry
from skmetaot.solvers import scaling as SCALING
from skmetaot.solvers import solve_batch


def _grid(epsilon: float, size: int = 28) -> GridGeometry:
    axis = torch.linspace(0, 1, size, dtype=torch.float64)
    return GridGeometry([axis, axis], [axis, axis], epsilon)


def _spy_on_scaling(monkeypatch) -> list[bool]:
    """Record, per call of scaling_iterations, whether its result stood (not None)."""
    original, calls = SCALING.scaling_iterations, []

    def spy(*args, **kw):
        out = original(*args, **kw)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(SCALING, "scaling_iterations", spy)
    return calls


def _solve(monkeypatch, a, b, f, *, scaling: bool, epsilon: float = 1e-2, **kwargs):
    """solve_batch with the scaling path allowed or not; also whether it ran and stood."""
    monkeypatch.setattr(SCALING, "SCALING_RANGE", 230.0 if scaling else -1.0)
    original, calls = SCALING.scaling_iterations, _spy_on_scaling(monkeypatch)
    state = solve_batch(_grid(epsilon), a, b, f, tol=kwargs.pop("tol", 1e-3),
                        max_iter=kwargs.pop("max_iter", 2000), **kwargs)
    monkeypatch.setattr(SCALING, "scaling_iterations", original)
    return state, calls


def _assert_same(fast, slow, rtol=1e-9):
    assert fast.n_iter.tolist() == slow.n_iter.tolist()
    torch.testing.assert_close(fast.errors, slow.errors, rtol=1e-6, atol=1e-12)
    for name in ("f", "g"):
        got, want = getattr(fast, name), getattr(slow, name)
        # -inf exactly on the zero-weight atoms in both, the same numbers elsewhere.
        assert torch.equal(torch.isinf(got), torch.isinf(want))
        finite = torch.isfinite(want)
        torch.testing.assert_close(got[finite], want[finite], rtol=rtol, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n_pairs", [1, 6])
@pytest.mark.parametrize("warm", [False, True])
def test_scaling_iterates_are_the_log_domain_iterates(monkeypatch, dtype, n_pairs, warm):
    pairs = make_mnist_pairs(n_pairs, split="test", random_state=3, dtype=dtype)
    a, b = pairs.a, pairs.b
    gen = torch.Generator().manual_seed(0)
    f = 0.05 * torch.randn(a.shape, generator=gen, dtype=a.dtype) if warm else (
        torch.zeros_like(a))
    fast, calls = _solve(monkeypatch, a, b, f, scaling=True)
    slow, none = _solve(monkeypatch, a, b, f, scaling=False)
    assert calls == [True] and none == []
    assert fast.f.dtype == a.dtype and bool(fast.converged.all())
    _assert_same(fast, slow, rtol=1e-9 if dtype == "float64" else 1e-6)


def test_each_problem_of_a_batch_stops_on_its_own(monkeypatch):
    pairs = make_mnist_pairs(5, split="test", random_state=4)
    batch, calls = _solve(monkeypatch, pairs.a, pairs.b, torch.zeros_like(pairs.a),
                          scaling=True, tol=1e-2)
    assert calls == [True] and len(set(batch.n_iter.tolist())) > 1
    for k in range(5):
        alone, _ = _solve(monkeypatch, pairs.a[k:k + 1], pairs.b[k:k + 1],
                          torch.zeros_like(pairs.a[k:k + 1]), scaling=True, tol=1e-2)
        assert alone.n_iter.tolist() == [int(batch.n_iter[k])]
        torch.testing.assert_close(alone.f[0], batch.f[k])


def test_inexact_products_send_the_batch_back_to_the_log_domain(monkeypatch):
    pairs = make_mnist_pairs(3, split="test", random_state=5)
    f = torch.zeros_like(pairs.a)
    slow, _ = _solve(monkeypatch, pairs.a, pairs.b, f, scaling=False)
    monkeypatch.setattr(SCALING, "_EXACT_PER_TERM", 1.0)  # no product passes the guard
    fell_back, calls = _solve(monkeypatch, pairs.a, pairs.b, f, scaling=True)
    assert calls == [False]
    _assert_same(fell_back, slow, rtol=0)


def test_nan_sends_the_batch_back_to_the_log_domain(monkeypatch):
    pairs = make_mnist_pairs(2, split="test", random_state=6)
    original = GridGeometry.apply_kernel

    def poisoned(self, scaling, axis, **kwargs):
        out = original(self, scaling, axis, **kwargs)
        return out.fill_(float("nan")) if axis == 1 else out

    monkeypatch.setattr(GridGeometry, "apply_kernel", poisoned)
    state, calls = _solve(monkeypatch, pairs.a, pairs.b, torch.zeros_like(pairs.a),
                          scaling=True)
    assert calls == [False]
    assert bool(state.converged.all()) and not torch.isnan(state.f).any()


def test_small_epsilon_and_gradients_take_the_log_domain(monkeypatch):
    pairs = make_mnist_pairs(1, split="test", random_state=7)
    a, b = pairs.a, pairs.b
    # max C / eps = 2 / 1e-3 = 2000: kernel entries far below float64's range.
    state, calls = _solve(monkeypatch, a, b, torch.zeros_like(a), scaling=True,
                          epsilon=1e-3, tol=1e-2, max_iter=3000)
    assert calls == [] and bool(state.converged.all())
    f = torch.zeros_like(a, requires_grad=True)
    _, calls = _solve(monkeypatch, a, b, f, scaling=True, tol=1e-2)
    assert calls == []


def _dense_solve(monkeypatch, geometry, a, b, *, scaling: bool, **kwargs):
    monkeypatch.setattr(SCALING, "SCALING_RANGE", 230.0 if scaling else -1.0)
    original, calls = SCALING.scaling_iterations, _spy_on_scaling(monkeypatch)
    state = solve_batch(geometry, a, b, None, tol=kwargs.get("tol", 1e-6), max_iter=3000)
    monkeypatch.setattr(SCALING, "scaling_iterations", original)
    return state, calls


@pytest.mark.parametrize("batched", [False, True])
def test_dense_scaling_iterates_are_the_log_domain_iterates(monkeypatch, batched):
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 30, 2, generator=gen), torch.rand(4, 40, 2, generator=gen)
    cost = torch.cdist(x, y) ** 2 if batched else torch.cdist(x[0], y[0]) ** 2
    a = torch.rand(4, 30, generator=gen, dtype=torch.float64)
    b = torch.rand(4, 40, generator=gen, dtype=torch.float64)
    a[:, :5], b[1, 10:20] = 0.0, 0.0  # zero weights: some dropped, some inside the batch
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
    geometry = DenseGeometry(cost.double(), epsilon=0.02)
    fast, calls = _dense_solve(monkeypatch, geometry, a, b, scaling=True)
    slow, none = _dense_solve(monkeypatch, geometry, a, b, scaling=False)
    assert calls == [True] and none == []
    assert len(set(fast.n_iter.tolist())) > 1  # each problem stopped on its own
    _assert_same(fast, slow)


def test_dense_costs_beyond_the_range_take_the_log_domain(monkeypatch):
    gen = torch.Generator().manual_seed(2)
    cost = torch.rand(20, 25, generator=gen, dtype=torch.float64)
    geometry = DenseGeometry(cost, epsilon=cost.max().item() / 300)  # range 300 > 230
    a, b = torch.full((1, 20), 1 / 20, dtype=torch.float64), torch.full((1, 25), 0.04,
                                                                        dtype=torch.float64)
    state, calls = _dense_solve(monkeypatch, geometry, a, b, scaling=True, tol=1e-4)
    assert calls == [] and bool(state.converged.all())


def _small_epsilon_problem(batched: bool, n_pairs: int = 4):
    """Dense problems at eps = 2e-3 on [0, 1]^2 (max C / eps about 1,000: no plain scaling)."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.rand(n_pairs, 25, 2, generator=gen), torch.rand(n_pairs, 35, 2, generator=gen)
    cost = (torch.cdist(x, y) ** 2 if batched else torch.cdist(x[0], y[0]) ** 2).double()
    a = torch.rand(n_pairs, 25, generator=gen, dtype=torch.float64)
    b = torch.rand(n_pairs, 35, generator=gen, dtype=torch.float64)
    a[:, :3], b[0, 5:9] = 0.0, 0.0
    return (DenseGeometry(cost, epsilon=2e-3), a / a.sum(1, keepdim=True),
            b / b.sum(1, keepdim=True))


def _absorbing_solve(monkeypatch, geometry, a, b, *, absorb: bool, f_init=None, tol=1e-6):
    original, calls = SCALING.absorbing_iterations, []

    def spy(*args, **kw):
        calls.append(True)
        return original(*args, **kw)

    monkeypatch.setattr(SCALING, "absorbing_iterations", spy)
    if not absorb:
        monkeypatch.setattr(SCALING, "absorbing_applies", lambda *args: False)
    state = solve_batch(geometry, a, b, f_init, tol=tol, max_iter=20000)
    monkeypatch.undo()
    return state, calls


@pytest.mark.parametrize("batched", [False, True])
def test_absorbing_iterates_are_the_log_domain_iterates(monkeypatch, batched):
    geometry, a, b = _small_epsilon_problem(batched)
    assert geometry.scaling_range > SCALING.SCALING_RANGE
    fast, calls = _absorbing_solve(monkeypatch, geometry, a, b, absorb=True)
    slow, none = _absorbing_solve(monkeypatch, geometry, a, b, absorb=False)
    assert calls == [True] and none == []
    assert bool(fast.converged.all()) and len(set(fast.n_iter.tolist())) > 1
    _assert_same(fast, slow, rtol=1e-8)


def test_absorbing_from_a_warm_start_and_with_many_absorptions(monkeypatch):
    geometry, a, b = _small_epsilon_problem(False)
    gen = torch.Generator().manual_seed(4)
    f = 0.01 * torch.randn(a.shape, generator=gen, dtype=torch.float64)
    slow, _ = _absorbing_solve(monkeypatch, geometry, a, b, absorb=False, f_init=f)
    # A bound of e^2 forces a log-domain step and an absorption every few iterations.
    monkeypatch.setattr(SCALING, "_ABSORB_BOUND", 7.4)
    fast, calls = _absorbing_solve(monkeypatch, geometry, a, b, absorb=True, f_init=f)
    assert calls == [True]
    _assert_same(fast, slow, rtol=1e-8)


@pytest.mark.parametrize("batched", [False, True])
def test_absorbing_batches_beyond_the_cache_budget_run_in_chunks(monkeypatch, batched):
    geometry, a, b = _small_epsilon_problem(batched, n_pairs=5)
    a[1, 10:] = 0.0  # one problem's own zeros: its chunk restricts to its atoms with mass
    a = a / a.sum(1, keepdim=True)
    f = 0.01 * torch.randn(a.shape, generator=torch.Generator().manual_seed(5),
                           dtype=torch.float64)
    whole, calls = _absorbing_solve(monkeypatch, geometry, a, b, absorb=True, f_init=f)
    assert calls == [True]
    # Two problems' kernels per run: chunks of 2, 2 and 1, the same iterates as one run.
    monkeypatch.setattr(SCALING, "ABSORBED_CPU_BYTES", 2 * 8 * 25 * 35)
    assert SCALING.absorbing_chunk(geometry, torch.float64, a, b, f) == 2
    chunked, calls = _absorbing_solve(monkeypatch, geometry, a, b, absorb=True, f_init=f)
    assert calls == [True] * 3
    assert torch.equal(chunked.n_iter, whole.n_iter)
    _assert_same(chunked, whole, rtol=1e-10)
