"""Non-convergence is said: one ConvergenceWarning per call, silenced by warn=False or a filter."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skmetaot import HistogramPairs, MetaSinkhornTransport, as_pairs, sinkhorn
from skmetaot.geometry import DenseGeometry
from skmetaot.solvers import sinkhorn_convergence, solve_batch, solve_pairs

MESSAGE = re.compile(r"Sinkhorn did not converge: (\d+) of (\d+) problems? stopped at "
                     r"max_iter=(\d+) with an L1 marginal error above tol=(\S+) \(worst (\S+), "
                     r"problem (\d+)\)\. Increase max_iter or epsilon, or pass warn=False")


def _problem(n: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, 2)), rng.random((n, 2))
    return np.full(n, 1 / n), x, y, ((x[:, None] - y[None]) ** 2).sum(-1)


def _convergence_warnings(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in caught if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize(("scale", "epsilon"), [(1.0, 1e-3), (1e6, 1e-2)])
def test_sinkhorn_warns_when_it_stops_on_max_iter(scale, epsilon):
    # The user's two cases: a small epsilon at the default tolerance, and costs scaled by 1e6.
    a, _, _, cost = _problem()
    result, caught = _convergence_warnings(lambda: sinkhorn(a, a, scale * cost, epsilon=epsilon))
    assert not bool(result.converged)
    (warning,) = caught
    match = MESSAGE.match(str(warning.message))
    assert match, str(warning.message)
    assert match.group(1, 2, 3, 6) == ("1", "1", "1000", "0")
    assert float(match.group(5)) == pytest.approx(float(result.errors), rel=1e-2)
    assert warning.filename == __file__  # points at the caller, so filters by module work


def test_warn_false_and_the_warnings_filter_silence_it():
    a, _, _, cost = _problem()
    b = np.random.default_rng(2).random((2, len(a)))
    pairs = HistogramPairs(np.stack([a, a]), b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = sinkhorn(a, a, cost, epsilon=1e-3, warn=False)
        assert not bool(result.converged)
        state = solve_pairs(pairs, epsilon=1e-4, max_iter=3, warn=False)
        assert not bool(state.converged.any())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        sinkhorn(a, a, cost, epsilon=1e-3)


def test_converged_solves_do_not_warn():
    a, x, y, cost = _problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = sinkhorn(np.stack([a, a]), np.stack([a, a]), cost, epsilon=0.1, tol=1e-6)
        assert bool(result.converged.all())
        sinkhorn(a, a, x=x, y=y, epsilon=0.1, geometry="online")


def test_one_warning_per_call_across_batches_naming_the_count_and_the_worst():
    # Five pairs solved one per batch, some of which do not converge in 30 iterations: the
    # warning is issued once, for the whole call, with the count and the worst problem.
    rng = np.random.default_rng(1)
    pairs = as_pairs([(rng.random((30, 2)), rng.random((40, 2))) for _ in range(5)])
    state, caught = _convergence_warnings(lambda: solve_pairs(
        pairs, epsilon=3e-3, tol=1e-3, max_iter=30, batch_size=1))
    failed = int((~state.converged).sum())
    assert failed >= 1
    (warning,) = caught
    match = MESSAGE.match(str(warning.message))
    assert match and match.group(1, 2, 3) == (str(failed), "5", "30")
    worst = int(torch.argmax(torch.where(state.converged, 0.0, state.errors.double())))
    assert int(match.group(6)) == worst
    assert float(match.group(5)) == pytest.approx(float(state.errors[worst]), rel=1e-2)


def test_solve_batch_warns_and_can_be_silenced():
    x = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    geometry = DenseGeometry((x - x.T) ** 2, epsilon=1e-3)
    a = torch.full((2, 20), 1 / 20, dtype=torch.float64)
    b = torch.softmax(torch.randn(2, 20, dtype=torch.float64), -1)
    run = lambda **kw: solve_batch(geometry, a, b, torch.zeros_like(a), tol=1e-9,  # noqa: E731
                                   max_iter=5, **kw)
    _, caught = _convergence_warnings(run)
    assert len(caught) == 1 and "2 of 2 problems" in str(caught[0].message)
    _, caught = _convergence_warnings(lambda: run(warn=False))
    assert caught == []


def test_convergence_curves_do_not_warn():
    # sinkhorn_convergence runs to fixed iteration counts on purpose.
    rng = np.random.default_rng(0)
    pairs = [(rng.random((10, 2)), rng.random((12, 2))) for _ in range(2)]
    _, caught = _convergence_warnings(lambda: sinkhorn_convergence(pairs, [1, 2, 5],
                                                                   epsilon=0.01))
    assert caught == []


def test_refine_that_stops_on_max_iter_warns():
    rng = np.random.default_rng(0)
    images = rng.random((8, 2, 4, 4)) + 0.1
    est = MetaSinkhornTransport(hidden_layer_sizes=(8,), max_iter=2, batch_size=4,
                                epsilon=1e-3, random_state=0, device="cpu").fit(images)
    results, caught = _convergence_warnings(lambda: est.refine(images[:3], max_iter=2))
    assert [r.status for r in results] == ["max_iter"] * 3
    assert len(caught) == 1 and MESSAGE.match(str(caught[0].message))
    assert "3 of 3 problems stopped at max_iter=2" in str(caught[0].message)
    results, caught = _convergence_warnings(lambda: est.refine(images[:3], tol=1e-2,
                                                               max_iter=100_000))
    assert all(r.status == "converged" for r in results) and caught == []


def test_a_stop_just_under_tol_stays_converged_in_float32():
    # The loop runs in float64; an error just under tol can round up to tol in float32. Such
    # a problem stopped converged and must say so (it once read as unconverged, with a warning
    # that it had reached max_iter).
    gen = torch.Generator().manual_seed(3)
    cost = torch.rand(7, 6, generator=gen, dtype=torch.float64)
    a = torch.rand(1, 7, generator=gen, dtype=torch.float64)
    b = torch.rand(1, 6, generator=gen, dtype=torch.float64)
    # Weights that float32 holds exactly: the float32 and float64 runs iterate alike.
    a, b = ((w / w.sum(1, keepdim=True)).float().double() for w in (a, b))
    geometry = DenseGeometry(cost, 0.05)
    errors = [float(solve_batch(geometry, a, b, None, tol=0.0, max_iter=k,
                                warn=False).errors[0]) for k in range(1, 40)]
    k, tol = next((k, np.nextafter(e, 1.0)) for k, e in enumerate(errors)
                  if float(np.float32(e)) > e and all(x > np.float32(e) for x in errors[:k]))
    a32, b32 = a.float(), b.float()
    assert float(np.float32(errors[k])) >= tol  # the float32 error reads as not below tol
    state, caught = _convergence_warnings(lambda: solve_batch(geometry, a32, b32, None,
                                                              tol=tol, max_iter=1000))
    assert caught == []
    assert bool(state.converged[0]) and int(state.n_iter[0]) == k + 1
