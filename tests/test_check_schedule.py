"""Sparse convergence checks: the loop stops where an every-iteration check stops it."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skmetaot.datasets import make_mnist_pairs
from skmetaot.geometry import GridGeometry
from skmetaot.solvers import check_schedule as CHECKS
from skmetaot.solvers import scaling as SCALING
from skmetaot.solvers import solve_batch
from skmetaot.solvers.check_schedule import CheckSchedule


def _grid(epsilon: float = 1e-2, size: int = 28) -> GridGeometry:
    axis = torch.linspace(0, 1, size, dtype=torch.float64)
    return GridGeometry([axis, axis], [axis, axis], epsilon)


def _checked(errors: list[float], tol: float, last: int) -> tuple[list[int], int | None]:
    """The iterations a schedule measures on a given error sequence, and where it stops."""
    schedule, seen = CheckSchedule(tol, last), []
    for iteration in range(last + 1):
        if schedule.due(iteration):
            seen.append(iteration)
            if errors[iteration] < tol:
                return seen, iteration
            schedule.measured(iteration, errors[iteration])
    return seen, None


@settings(max_examples=60, deadline=None)
@given(start=st.floats(0.05, 5.0), rate=st.floats(0.3, 0.99), tol=st.floats(1e-6, 1e-2))
def test_geometric_errors_are_checked_before_they_cross(start, rate, tol):
    # On errors falling at a constant rate the prediction is exact, so the schedule never
    # passes the crossing: it finds the first iteration below tol without going back.
    errors = [start * rate ** k for k in range(4000)]
    crossing = next(k for k, e in enumerate(errors) if e < tol)
    seen, stop = _checked(errors, tol, last=3999)
    assert stop == crossing
    assert seen == sorted(set(seen)) and seen[0] == 0
    if crossing > 40:
        assert len(seen) < crossing / 2


def test_no_progress_means_every_iteration_and_the_last_is_always_checked():
    seen, stop = _checked([0.5] * 30, 1e-3, last=29)
    assert stop is None and seen == list(range(30))
    schedule = CheckSchedule(1e-3, last=10)
    schedule.measured(0, 1.0)
    schedule.measured(1, 0.999)  # far from tol at this rate: a long gap, capped at 3
    assert not schedule.due(3) and schedule.due(4) and schedule.due(10)


def test_a_zero_tolerance_checks_ever_more_rarely_up_to_the_last_iteration():
    seen, stop = _checked([0.5 * 0.9 ** k for k in range(200)], 0.0, last=199)
    assert stop is None and seen[:4] == [0, 1, 4, 13] and seen[-1] == 199 and len(seen) < 10


def _every_iteration(monkeypatch):
    monkeypatch.setattr(CHECKS.CheckSchedule, "due", lambda self, iteration: True)


def _assert_identical(sparse, dense):
    assert sparse.n_iter.tolist() == dense.n_iter.tolist()
    for name in ("f", "g", "errors"):
        assert torch.equal(getattr(sparse, name), getattr(dense, name)), name


@pytest.mark.parametrize("n_pairs", [1, 7])
@pytest.mark.parametrize("tol,max_iter", [(1e-2, 2000), (1e-4, 2000), (1e-4, 23), (0.0, 30)])
@pytest.mark.parametrize("ahead", [0.7, 30.0])
def test_sparse_checks_give_the_every_iteration_loop(monkeypatch, n_pairs, tol, max_iter, ahead):
    # ahead=30 overshoots the crossing by far: the loop must go back and give the same stop.
    pairs = make_mnist_pairs(n_pairs, split="test", random_state=5, dtype="float64")
    a, b = pairs.a, pairs.b
    monkeypatch.setattr(CHECKS, "_AHEAD", ahead)
    calls = []
    original = SCALING.scaling_iterations
    monkeypatch.setattr(SCALING, "scaling_iterations",
                        lambda *args, **kw: calls.append(1) or original(*args, **kw))
    sparse = solve_batch(_grid(), a, b, None, tol=tol, max_iter=max_iter, warn=False)
    assert calls  # the scaling loop ran (and its result stood: no NaN fallback here)
    _every_iteration(monkeypatch)
    dense = solve_batch(_grid(), a, b, None, tol=tol, max_iter=max_iter, warn=False)
    _assert_identical(sparse, dense)
    assert bool((sparse.n_iter <= max_iter).all())


def test_overshooting_checks_go_back_and_count_fewer_measurements(monkeypatch):
    pairs = make_mnist_pairs(1, split="test", random_state=5, dtype="float64")
    measured, restarts = [], []
    original_measured, original_restart = CheckSchedule.measured, CheckSchedule.restart
    monkeypatch.setattr(CHECKS, "_AHEAD", 30.0)
    monkeypatch.setattr(CheckSchedule, "measured", lambda self, i, e: (
        measured.append(i), original_measured(self, i, e))[1])
    monkeypatch.setattr(CheckSchedule, "restart", lambda self, i, every=False: (
        restarts.append((i, every)), original_restart(self, i, every=every))[1])
    state = solve_batch(_grid(), pairs.a, pairs.b, None, tol=1e-3, max_iter=2000, warn=False)
    n = int(state.n_iter[0])
    # Went back once (to just after a check) and then measured every iteration to the stop.
    backs = [i for i, every in restarts if every]
    assert len(backs) == 1 and backs[0] - 1 in measured
    assert measured[-1] == n - 2 and measured.index(backs[0]) == len(measured) - (n - backs[0]) + 1
    assert len(measured) < n - 1


def test_a_nan_between_checks_still_sends_the_batch_to_the_log_domain(monkeypatch):
    pairs = make_mnist_pairs(1, split="test", random_state=5, dtype="float64")
    monkeypatch.setattr(CHECKS, "_AHEAD", 30.0)
    original = GridGeometry.apply_kernel
    count = {"calls": 0}

    def poisoned(self, scaling, axis, **kw):
        count["calls"] += 1
        out = original(self, scaling, axis, **kw)
        return out * math.nan if count["calls"] == 5 else out  # iteration 2: unchecked

    results = []
    run = SCALING.scaling_iterations
    monkeypatch.setattr(SCALING, "scaling_iterations",
                        lambda *args, **kw: results.append(run(*args, **kw)) or results[-1])
    monkeypatch.setattr(GridGeometry, "apply_kernel", poisoned)
    state = solve_batch(_grid(), pairs.a, pairs.b, None, tol=1e-3, max_iter=2000, warn=False)
    assert results == [None]  # the scaling loop gave up; the log domain solved it
    assert bool(state.converged.all()) and not bool(torch.isnan(state.f).any())
