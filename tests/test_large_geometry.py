"""Large problems in bounded memory: the online geometry and the dense geometry without kernel.

Both must compute what the dense geometry with its float64 kernel computes (the reference the
rest of the suite checks against POT), through the same batched solver, while holding O(n + m)
(online) or the cost alone (dense beyond its kernel budget).
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch

import skmetaot.geometry
from skmetaot import as_pairs, sinkhorn
from skmetaot.costs import euclidean, sqeuclidean
from skmetaot.geometry import DenseGeometry, OnlineGeometry, make_geometry
from skmetaot.pot import to_otresult
from skmetaot.solvers.entropic import pair_geometry

DTYPES = [torch.float64, torch.float32]


def _l1(u, v) -> torch.Tensor:
    return (u[..., :, None, :] - v[..., None, :, :]).abs().sum(-1)


COSTS = {"sqeuclidean": sqeuclidean, "euclidean": euclidean, "l1": _l1}


def _clouds(n=70, m=50, d=3, batch=None, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    x = torch.rand(*lead, n, d, generator=gen, dtype=dtype)
    y = torch.rand(*lead, m, d, generator=gen, dtype=dtype) + 0.3
    return x, y


def _potentials(batch, size, dtype, seed=1):
    gen = torch.Generator().manual_seed(seed)
    values = 3 * torch.randn(batch, size, generator=gen, dtype=dtype)
    values[0, : size // 3] = float("-inf")  # atoms without mass
    values[-1] = float("-inf")  # a problem without mass on this side
    return values


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cost", sorted(COSTS))
@pytest.mark.parametrize("batched", [False, True])
def test_online_reductions_equal_the_dense_ones(dtype, cost, batched):
    x, y = _clouds(batch=3 if batched else None, dtype=dtype)
    epsilon = 0.05
    online = OnlineGeometry(x, y, epsilon, COSTS[cost] if cost == "l1" else cost)
    dense = DenseGeometry(COSTS[cost](x, y), epsilon)
    f, g = _potentials(3, 70, dtype), _potentials(3, 50, dtype, seed=2)
    # float32: the expanded |x - y|^2 rounds relative to the clouds' spread, over epsilon.
    atol = 1e-9 if dtype == torch.float64 else 2e-4
    for got, want in ((online.lse_source(f), dense.lse_source(f)),
                      (online.lse_target(g), dense.lse_target(g))):
        assert got.dtype == dtype and not torch.isnan(got).any()
        torch.testing.assert_close(torch.isneginf(got), torch.isneginf(want))
        finite = torch.isfinite(want)
        torch.testing.assert_close(got[finite], want[finite], rtol=0, atol=atol)
        assert torch.isneginf(got[-1]).all()  # no mass at all: -inf, not NaN
    moment = online.transport_cost(f, g)
    assert moment[-1] == 0  # the problem without mass has an empty plan
    torch.testing.assert_close(moment, dense.transport_cost(f, g), rtol=1e-4, atol=1e-300)
    torch.testing.assert_close(online.cost_matrix(), dense.cost_matrix())


def test_online_reductions_differentiate_like_the_dense_ones():
    x, y = _clouds()
    online, dense = OnlineGeometry(x, y, 0.1), DenseGeometry(sqeuclidean(x, y), 0.1)
    grads = []
    for geometry in (online, dense):
        f = _potentials(3, 70, torch.float64).requires_grad_(True)
        out = geometry.lse_source(f)
        out[torch.isfinite(out)].sum().backward()
        grads.append(f.grad)
    assert not torch.isnan(grads[0]).any()
    torch.testing.assert_close(grads[0], grads[1])


def test_online_restrict_and_select_keep_the_supports_consistent():
    x, y = _clouds(batch=4)
    geometry = OnlineGeometry(x, y, 0.1)
    used_x, used_y = torch.rand(70) > 0.4, torch.rand(50) > 0.6
    sub, source_index, target_index = geometry.restrict(used_x, used_y)
    torch.testing.assert_close(sub.cost_matrix(),
                               geometry.cost_matrix()[:, source_index][:, :, target_index])
    picked = sub.select(torch.tensor([3, 1]))
    torch.testing.assert_close(picked.cost_matrix(), sub.cost_matrix()[[3, 1]])
    shared = OnlineGeometry(x[0], y[0], 0.1)
    assert shared.select(torch.tensor([0])) is shared
    assert shared.restrict(torch.ones(70, dtype=torch.bool),
                           torch.ones(50, dtype=torch.bool))[0] is shared


@pytest.mark.parametrize("epsilon", [1e-3, 5e-2])
def test_dense_geometry_without_its_kernel_reduces_exactly(epsilon):
    # Beyond KERNEL_ELEMENTS the dense geometry keeps no exp(-C/eps) and reduces by blocks:
    # the same numbers as the fast path, including where that path underflows (eps = 1e-3).
    x, y = _clouds(n=300, m=200)
    cost = sqeuclidean(x, y)
    with mock.patch.object(skmetaot.geometry, "KERNEL_ELEMENTS", 0):
        blocks = DenseGeometry(cost, epsilon)
    fast = DenseGeometry(cost, epsilon)
    assert blocks._kernel_exp is None and fast._kernel_exp is not None
    f, g = _potentials(3, 300, torch.float64), _potentials(3, 200, torch.float64, seed=2)
    for name, values in (("lse_source", f), ("lse_target", g)):
        got, want = getattr(blocks, name)(values), getattr(fast, name)(values)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(blocks.transport_cost(f, g), fast.transport_cost(f, g))
    # and under autograd (the meta-training path)
    f.requires_grad_(True)
    out = blocks.lse_source(f)
    out[torch.isfinite(out)].sum().backward()
    assert not torch.isnan(f.grad).any()


def test_dense_geometry_holds_its_cost_and_at_most_one_kernel():
    x, y = _clouds(n=300, m=200, dtype=torch.float32)
    cost = sqeuclidean(x, y)
    geometry = DenseGeometry(cost, 0.1)
    held = [v for v in vars(geometry).values() if isinstance(v, torch.Tensor)]
    assert geometry.cost is cost  # the caller's matrix, not a copy
    assert sum(t.numel() * t.element_size() for t in held if t is not cost) <= cost.numel() * 8
    with mock.patch.object(skmetaot.geometry, "KERNEL_ELEMENTS", cost.numel() - 1):
        large = DenseGeometry(cost, 0.1)
    assert [v for v in vars(large).values() if isinstance(v, torch.Tensor)] == [cost]


def test_online_geometry_holds_no_cost_matrix():
    x, y = _clouds(n=400, m=300, d=2)
    geometry = OnlineGeometry(x, y, 0.1)
    held = sum(v.numel() for v in vars(geometry).values() if isinstance(v, torch.Tensor))
    assert held <= 3 * (400 + 300) * 3  # supports and norms: O((n + m) d), not n m


def test_auto_picks_the_online_geometry_above_the_threshold():
    x, y = _clouds(n=40, m=30)
    assert isinstance(make_geometry(epsilon=0.1, x=x, y=y), DenseGeometry)
    with mock.patch.object(skmetaot.geometry, "ONLINE_ELEMENTS", 40 * 30 - 1):
        assert isinstance(make_geometry(epsilon=0.1, x=x, y=y), OnlineGeometry)
        # a given cost matrix stays dense, grids stay separable
        assert isinstance(make_geometry(epsilon=0.1, cost_matrix=sqeuclidean(x, y)),
                          DenseGeometry)
        pairs = as_pairs((x.numpy(), y.numpy()))
        geometry, _ = pair_geometry(pairs, [0], epsilon=0.1, cost="sqeuclidean",
                                    cost_matrix=None)
        assert isinstance(geometry, OnlineGeometry)
    assert isinstance(make_geometry(epsilon=0.1, x=x, y=y, kind="online"), OnlineGeometry)
    assert isinstance(make_geometry(epsilon=0.1, x=x, y=y, kind="dense"), DenseGeometry)


@pytest.mark.parametrize("form", ["shared", "clouds"])
def test_online_solves_equal_dense_solves(form):
    rng = np.random.default_rng(0)
    if form == "shared":  # histograms on shared supports, zero weights included
        x, y = rng.random((60, 2)), rng.random((45, 2))
        a, b = rng.random((3, 60)), rng.random((3, 45))
        a[0, :10] = 0.0
        runs = {kind: sinkhorn(a, b, x=x, y=y, epsilon=0.02, tol=1e-8, geometry=kind)
                for kind in ("online", "dense")}
    else:  # per-pair supports of different sizes (padded batches)
        pairs = [(rng.random((n, 2)), rng.random((m, 2))) for n, m in [(30, 20), (25, 40)]]
        runs = {kind: sinkhorn(pairs, epsilon=0.02, tol=1e-8, geometry=kind)
                for kind in ("online", "dense")}
    online, dense = runs["online"], runs["dense"]
    np.testing.assert_array_equal(online.n_iter, dense.n_iter)
    for got, want in ((online.f, dense.f), (online.g, dense.g)):
        for u, v in zip(got, want, strict=True):
            np.testing.assert_array_equal(np.isneginf(u), np.isneginf(v))
            np.testing.assert_allclose(u[np.isfinite(v)], v[np.isfinite(v)], atol=1e-8)
    for u, v in zip(online.plan(), dense.plan(), strict=True):
        np.testing.assert_allclose(u, v, atol=1e-10)
    for u, v in zip(to_otresult(online), to_otresult(dense), strict=True):
        assert u.value_linear == pytest.approx(v.value_linear, rel=1e-8)
        assert u.value == pytest.approx(v.value, rel=1e-8, abs=1e-12)


def test_online_float32_solve_stays_close_to_float64():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(500, 3)) + 100.0, rng.normal(size=(400, 3)) + 101.0  # far from 0
    a, b = np.full(500, 1 / 500), np.full(400, 1 / 400)
    wide = sinkhorn(a, b, x=x, y=y, epsilon=0.5, tol=1e-6, geometry="online")
    narrow = sinkhorn(a, b, x=x, y=y, epsilon=0.5, tol=1e-4, geometry="online",
                      dtype="float32")
    assert narrow.f.dtype == np.float32 and bool(narrow.converged)
    np.testing.assert_allclose(narrow.plan(), wide.plan(), atol=1e-6)
