"""Convergence curves (sinkhorn_convergence) and the plotting helpers."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pytest

from skmetaot import sinkhorn
from skmetaot.solvers import sinkhorn_convergence

matplotlib.use("Agg")

from skmetaot import plotting  # noqa: E402


def _pairs(seed=0, n_pairs=4):
    rng = np.random.default_rng(seed)
    return [(rng.random((15 + k, 2)), rng.random((20, 2))) for k in range(n_pairs)]


def test_convergence_checkpoints_equal_separate_solves():
    pairs = _pairs()
    checkpoints = [1, 3, 10, 40]
    curve = sinkhorn_convergence(pairs, checkpoints, epsilon=0.05, dtype="float64")
    assert curve.shape == (4, 4)
    for row, count in zip(curve, checkpoints, strict=True):
        single = sinkhorn(pairs, epsilon=0.05, tol=1e-300, max_iter=count, dtype="float64")
        np.testing.assert_allclose(row, single.errors, rtol=1e-6)


def test_convergence_from_the_solution_starts_converged():
    pairs = _pairs(1)
    solved = sinkhorn(pairs, epsilon=0.05, tol=1e-10, max_iter=5000, dtype="float64")
    warm = sinkhorn_convergence(pairs, [1, 5], epsilon=0.05, init=list(solved.f),
                                dtype="float64")
    cold = sinkhorn_convergence(pairs, [1, 5], epsilon=0.05, dtype="float64")
    assert (warm < 1e-8).all() and (cold[0] > 1e-3).all()


@pytest.mark.parametrize("bad", [[], [0, 5], [5, 5], [10, 3]])
def test_convergence_rejects_bad_checkpoints(bad):
    with pytest.raises(ValueError, match="iterations must be increasing positive integers"):
        sinkhorn_convergence(_pairs(), bad)


def test_plot_convergence_draws_median_and_tolerance(tmp_path):
    steps = np.array([1, 10, 100])
    errors = np.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [0.01, 0.02, 0.03]])
    path = tmp_path / "curves.png"
    fig = plotting.plot_convergence({"zeros": (steps, errors)}, tol=1e-2, path=str(path))
    ax = fig.axes[0]
    median = ax.get_lines()[0]
    np.testing.assert_allclose(median.get_ydata(), [2.0, 0.2, 0.02])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="3 iteration counts but 2 rows"):
        plotting.plot_convergence({"bad": (steps, errors[:2])})


def test_plot_transport_map_draws_one_arrow_per_picked_sample():
    import matplotlib.pyplot as plt

    x = np.random.default_rng(0).normal(size=(40, 2))
    ax = plotting.plot_transport_map(plt.figure().gca(), x, x + 1.0, x + 1.0, n_arrows=7)
    quiver = [c for c in ax.collections if isinstance(c, matplotlib.quiver.Quiver)]
    assert len(quiver) == 1 and quiver[0].N == 7


def test_missing_matplotlib_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'skmetaot\[examples\]'"):
        plotting.plot_convergence({"a": ([1, 2], [1.0, 0.1])})
