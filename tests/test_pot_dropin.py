"""skmetaot.pot.sinkhorn / sinkhorn2 against POT's, argument by argument and return by return.

Two kinds of tests: POT's own calling patterns (from POT's test_bregman.py: positional reg,
verbose/warn, the convergence warning, several target histograms, backends, warm starts),
run the same way against ``ot`` and ``skmetaot.pot``; and direct comparisons of every return
form (plan, value, log entries, niter) with POT on random problems, in float64 to 1e-7 or
better.
"""

from __future__ import annotations

import warnings
from itertools import product

import numpy as np
import ot
import pytest
import torch

import skmetaot.pot as ot_fast
from skmetaot import sinkhorn as skmetaot_sinkhorn

IMPLEMENTATIONS = pytest.mark.parametrize("impl", [ot, ot_fast], ids=["pot", "skmetaot"])
METHODS = ["sinkhorn", "sinkhorn_log", "sinkhorn_stabilized"]
# POT takes log(0) on zero weights (harmlessly): silence that warning only.
pytestmark = pytest.mark.filterwarnings(
    "ignore:divide by zero encountered:RuntimeWarning")


def _problem(rng, n=30, m=40, dim=2, zeros=False):
    a, b = rng.random(n) + 0.05, rng.random(m) + 0.05
    if zeros:
        a[::5], b[1::7] = 0.0, 0.0
    M = ot.dist(rng.random((n, dim)), rng.random((m, dim)))
    return a / a.sum(), b / b.sum(), M


# -- POT's calling patterns, run against both -----------------------------------------------------
@IMPLEMENTATIONS
@pytest.mark.parametrize(("verbose", "warn"), list(product([True, False], [True, False])))
def test_pot_pattern_sinkhorn(impl, verbose, warn, capsys):
    rng = np.random.RandomState(0)
    x = rng.randn(100, 2)
    u = ot.utils.unif(100)
    M = ot.dist(x, x)
    G = impl.sinkhorn(u, u, M, 1, stopThr=1e-10, verbose=verbose, warn=warn)
    np.testing.assert_allclose(u, G.sum(1), atol=1e-05)
    np.testing.assert_allclose(u, G.sum(0), atol=1e-05)
    assert ("It." in capsys.readouterr().out) == verbose
    with pytest.warns(UserWarning):
        impl.sinkhorn(u, u, M, 1, stopThr=0, numItermax=1)


@IMPLEMENTATIONS
@pytest.mark.parametrize("method", METHODS)
def test_pot_pattern_convergence_warning(impl, method):
    a1 = ot.datasets.make_1D_gauss(100, m=30, s=10)
    a2 = ot.datasets.make_1D_gauss(100, m=40, s=10)
    M = ot.utils.dist0(100)
    with pytest.warns(UserWarning):
        impl.sinkhorn(a1, a2, M, 1.0, method=method, stopThr=0, numItermax=1)
    with pytest.warns(UserWarning):
        impl.sinkhorn2(a1, a2, M, 1, method=method, stopThr=0, numItermax=1, warn=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        impl.sinkhorn2(a1, a2, M, 1, method=method, stopThr=0, numItermax=1, warn=False)


@IMPLEMENTATIONS
def test_pot_pattern_not_implemented_method(impl):
    rng = np.random.RandomState(42)
    a1, a2 = rng.rand(100, 2).T
    M = ot.utils.dist0(100)
    for solver in (impl.sinkhorn, impl.sinkhorn2):
        with pytest.raises(ValueError):
            solver(a1, a2, M, 0.01, method="new_method")


@IMPLEMENTATIONS
@pytest.mark.parametrize("method", METHODS)
def test_pot_pattern_multi_b(impl, method):
    rng = np.random.RandomState(0)
    x = rng.randn(10, 2)
    u = ot.utils.unif(10)
    b = rng.rand(10, 3)
    b = b / np.sum(b, 0, keepdims=True)
    M = ot.dist(x, x)
    loss0, log = impl.sinkhorn(u, b, M, 0.1, method=method, stopThr=1e-10, log=True)
    loss = [impl.sinkhorn2(u, b[:, k], M, 0.1, method=method, stopThr=1e-10) for k in range(3)]
    np.testing.assert_allclose(loss0, loss, atol=1e-4)
    if impl is ot_fast:  # each column stops on its own error, as in POT's sinkhorn_log
        pot = ot.sinkhorn(u, b, M, 0.1, method="sinkhorn_log", stopThr=1e-10)
        np.testing.assert_allclose(loss0, pot, rtol=1e-10)
        assert log["log_u"].shape == (10, 3) and log["niter"].shape == (3,)


@IMPLEMENTATIONS
@pytest.mark.parametrize("solver", ["sinkhorn", "sinkhorn2"])
def test_pot_pattern_backends(impl, solver):
    rng = np.random.RandomState(0)
    x, y = rng.randn(100, 2), rng.randn(100, 2)
    a = ot.utils.unif(100)
    M = ot.dist(x, y)
    G = getattr(impl, solver)(a, a, M, 1)
    ab, M_t = torch.from_numpy(a), torch.from_numpy(M)
    Gb = getattr(impl, solver)(ab, ab, M_t, 1)
    assert isinstance(Gb, torch.Tensor) and Gb.dtype == torch.float64
    np.testing.assert_allclose(G, Gb.numpy(), atol=1e-12)


@IMPLEMENTATIONS
@pytest.mark.parametrize("method", METHODS)
def test_pot_pattern_warmstart_from_exact_duals(impl, method):
    rng = np.random.RandomState(0)
    a, b = ot.utils.unif(20), ot.utils.unif(30)
    M = ot.dist(rng.randn(20, 2), rng.randn(30, 2))
    _, log = ot.emd2(a, b, M, log=True)
    warmstart = (log["u"], log["v"])
    plan, _ = impl.sinkhorn(a, b, M, 1.0, method=method, log=True)
    warm, _ = impl.sinkhorn(a, b, M, 1.0, method=method, log=True, warmstart=warmstart)
    np.testing.assert_allclose(plan, warm, atol=1e-6)


# -- every argument and return form, against POT ---------------------------------------------
@pytest.mark.parametrize(("method", "setting"), list(product(
    ["sinkhorn", "sinkhorn_log"],
    [{}, {"numItermax": 15}, {"numItermax": 1}, {"stopThr": 1e-3}, {"stopThr": 1e-12,
                                                                     "numItermax": 5000}])))
def test_plans_and_logs_equal_pots(method, setting, rng):
    a, b, M = _problem(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the unconverged settings warn in both
        P_pot, log_pot = ot.sinkhorn(a, b, M, 0.05, method, log=True, **setting)
        P, log = ot_fast.sinkhorn(a, b, M, 0.05, method, log=True, **setting)
    np.testing.assert_allclose(P, P_pot, rtol=1e-7, atol=1e-12)
    assert log["niter"] == log_pot["niter"]
    assert len(log["err"]) == len(log_pot["err"])
    np.testing.assert_allclose(log["err"], log_pot["err"], rtol=1e-6, atol=1e-14)
    for key in set(log_pot) - {"niter", "err"}:  # u, v (and log_u, log_v for sinkhorn_log)
        np.testing.assert_allclose(log[key], log_pot[key], rtol=1e-7, atol=1e-12)
    assert ot_fast.sinkhorn(a, b, M, 0.05, method, warn=False, **setting).shape == (30, 40)


@pytest.mark.parametrize("method", METHODS)
def test_zero_weights_and_torch_float32(method, rng):
    a, b, M = _problem(rng, zeros=True)
    # POT's Sinkhorn-Knopp stops at once on zero target weights (0 / 0, "numerical errors"),
    # returning its starting plan; every method runs in the log domain here.
    P_pot = ot.sinkhorn(a, b, M, 0.1, method="sinkhorn_log", stopThr=1e-11)
    P = ot_fast.sinkhorn(a, b, M, 0.1, method=method, stopThr=1e-11)
    np.testing.assert_allclose(P, P_pot, atol=1e-10)
    assert not np.isnan(P).any() and (P[::5] == 0).all()
    a32, b32, M32 = (torch.tensor(v, dtype=torch.float32) for v in (a, b, M))
    P32 = ot_fast.sinkhorn(a32, b32, M32, 0.1, method=method, stopThr=1e-5)
    assert P32.dtype == torch.float32 and isinstance(P32, torch.Tensor)
    np.testing.assert_allclose(P32.numpy(), P, atol=1e-5)


def test_warmstart_equals_pots(rng):
    a, b, M = _problem(rng)
    warm = (rng.normal(size=30), rng.normal(size=40))
    for method in ("sinkhorn", "sinkhorn_log"):
        P_pot, log_pot = ot.sinkhorn(a, b, M, 0.05, method=method, log=True, warmstart=warm)
        P, log = ot_fast.sinkhorn(a, b, M, 0.05, method=method, log=True, warmstart=warm)
        np.testing.assert_allclose(P, P_pot, atol=1e-12)
        assert log["niter"] == log_pot["niter"]
    # Our converged potentials, converted, warm-start POT and ours alike.
    _, log = ot_fast.sinkhorn(a, b, M, 0.05, "sinkhorn_log", log=True, stopThr=1e-12,
                              numItermax=10_000)
    f, g = 0.05 * log["log_u"], 0.05 * log["log_v"]
    for impl in (ot, ot_fast):
        _, again = impl.sinkhorn(a, b, M, 0.05, method="sinkhorn_log", log=True,
                                 warmstart=ot_fast.to_warmstart(f, g, 0.05), stopThr=1e-11)
        assert again["niter"] == 0


def test_torch_inputs_give_torch_outputs_like_pot(rng):
    a, b, M = (torch.from_numpy(v) for v in _problem(rng))
    P_pot, log_pot = ot.sinkhorn(a, b, M, 0.05, method="sinkhorn_log", log=True)
    P, log = ot_fast.sinkhorn(a, b, M, 0.05, method="sinkhorn_log", log=True)
    assert isinstance(P, torch.Tensor) and P.device == a.device
    torch.testing.assert_close(P, P_pot, rtol=1e-7, atol=1e-12)
    assert all(isinstance(log[k], torch.Tensor) for k in ("u", "v", "log_u", "log_v"))
    assert all(isinstance(e, torch.Tensor) and e.ndim == 0 for e in log["err"])
    assert log["niter"] == log_pot["niter"]
    value = ot_fast.sinkhorn2(a, b, M, 0.05)
    assert isinstance(value, torch.Tensor) and value.ndim == 0
    assert float(value) == pytest.approx(float(ot.sinkhorn2(a, b, M, 0.05)), rel=1e-10)


def test_sinkhorn2_value_and_log(rng):
    a, b, M = _problem(rng)
    value, log = ot_fast.sinkhorn2(a, b, M, 0.05, log=True)
    value_pot, log_pot = ot.sinkhorn2(a, b, M, 0.05, log=True)
    assert value == pytest.approx(value_pot, rel=1e-10) and np.ndim(value) == 0
    assert log["niter"] == log_pot["niter"]
    np.testing.assert_allclose(log["u"], log_pot["u"], rtol=1e-7)


def test_empty_weights_are_uniform_as_in_pot(rng):
    _, _, M = _problem(rng)
    np.testing.assert_allclose(ot_fast.sinkhorn([], [], M, 0.1), ot.sinkhorn([], [], M, 0.1),
                               atol=1e-12)
    assert ot_fast.sinkhorn2([], [], M, 0.1) == pytest.approx(ot.sinkhorn2([], [], M, 0.1))


def test_batched_problems_equal_one_pot_call_each(rng):
    _, _, M = _problem(rng)
    A, B = rng.dirichlet(np.ones(30), size=5), rng.dirichlet(np.ones(40), size=5)
    plans, log = ot_fast.sinkhorn(A, B, M, 0.05, log=True)
    values = ot_fast.sinkhorn2(A, B, M, 0.05)
    costs = np.stack([M + k * 0.01 for k in range(5)])
    per_cost = ot_fast.sinkhorn2(A, B, costs, 0.05)
    one_b = ot_fast.sinkhorn(A, B[0], M, 0.05)  # one target for every source
    assert plans.shape == (5, 30, 40) and values.shape == (5,) and log["niter"].shape == (5,)
    for k in range(5):
        P_pot, log_pot = ot.sinkhorn(A[k], B[k], M, 0.05, log=True)
        np.testing.assert_allclose(plans[k], P_pot, atol=1e-12)
        assert log["niter"][k] == log_pot["niter"] and len(log["err"][k]) == len(log_pot["err"])
        assert values[k] == pytest.approx(ot.sinkhorn2(A[k], B[k], M, 0.05), rel=1e-10)
        assert per_cost[k] == pytest.approx(ot.sinkhorn2(A[k], B[k], costs[k], 0.05), rel=1e-10)
        np.testing.assert_allclose(one_b[k], ot.sinkhorn(A[k], B[0], M, 0.05), atol=1e-12)


def test_l1_stopping_is_ours(rng):
    a, b, M = _problem(rng)
    P, log = ot_fast.sinkhorn(a, b, M, 0.05, log=True, stopping="l1", stopThr=1e-8)
    error = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
    assert error < 1e-8 and log["err"][0] == pytest.approx(error, rel=1e-6, abs=1e-15)
    np.testing.assert_allclose(P.sum(1), a, atol=1e-15)  # the last update is POT's u-update
    np.testing.assert_allclose(P, ot.sinkhorn(a, b, M, 0.05, stopThr=1e-12), atol=1e-8)


def test_extra_keywords_are_ignored_as_pot_does(rng):
    a, b, M = _problem(rng)
    P = ot_fast.sinkhorn(a, b, M, 0.05, method="sinkhorn_stabilized", tau=1e3,
                         print_period=5)
    np.testing.assert_allclose(P, ot.sinkhorn(a, b, M, 0.05), atol=1e-12)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "greenkhorn"}, "method='greenkhorn'"),
    ({"reg": 0.0}, "reg must be a finite positive number"),
    ({"reg": float("nan")}, "reg must be"),
    ({"numItermax": 0}, "numItermax must be a positive integer"),
    ({"stopThr": -1.0}, "stopThr must be"),
    ({"stopping": "l2"}, "stopping='l2'"),
    ({"warmstart": (np.zeros(3), np.zeros(40))}, r"warmstart\[0\] \(log_u\) has shape"),
    ({"warmstart": np.zeros(30)}, "warmstart must be a pair"),
    ({"b": np.ones(39) / 39}, "b has 39 entries per problem"),
    ({"a": -np.ones(30)}, "a has negative weights"),
    ({"M": np.zeros((2, 30, 40))}, "a holds 5, M holds 2"),
])
def test_bad_arguments_name_the_argument(kwargs, match, rng):
    a, b, M = _problem(rng)
    args = {"a": a, "b": b, "M": M, "reg": 0.05}
    if "M" in kwargs:
        args["a"] = rng.dirichlet(np.ones(30), size=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ot_fast.sinkhorn(**args)


# -- OTResult conventions ---------------------------------------------------------------------
@pytest.mark.parametrize("zeros", [False, True])
def test_otresult_value_is_ot_solves_entropic_value(zeros, rng):
    a, b, M = _problem(rng, n=12, m=9, zeros=zeros)
    keep_a, keep_b = a > 0, b > 0
    (ours,) = ot_fast.to_otresult(skmetaot_sinkhorn(a, b, M, epsilon=0.2, tol=1e-13,
                                                    max_iter=100_000))
    pot = ot.solve(M[np.ix_(keep_a, keep_b)], a[keep_a], b[keep_b], reg=0.2,
                   reg_type="entropy", tol=1e-14, max_iter=100_000)
    assert ours.value == pytest.approx(float(pot.value), rel=1e-9)
    assert ours.value_linear == pytest.approx(float(pot.value_linear), rel=1e-9)
    # Potentials: ours in cost units, POT's scaled by 1 / reg, up to a constant.
    f, g = ours.potentials
    log_u, log_v = pot.potentials
    shift = np.mean(f[keep_a] / 0.2 - log_u)
    np.testing.assert_allclose(f[keep_a] / 0.2 - shift, log_u, atol=1e-7)
    np.testing.assert_allclose(g[keep_b] / 0.2 + shift, log_v, atol=1e-7)
    # ot.solve's default reg_type="KL" differs by the documented constant.
    kl = ot.solve(M[np.ix_(keep_a, keep_b)], a[keep_a], b[keep_b], reg=0.2, tol=1e-14,
                  max_iter=100_000)
    ent = np.sum(a[keep_a] * np.log(a[keep_a])) + np.sum(b[keep_b] * np.log(b[keep_b]))
    assert float(kl.value) == pytest.approx(ours.value - 0.2 * ent, rel=1e-8)
