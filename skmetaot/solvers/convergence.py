"""Convergence curves of Sinkhorn: the marginal error after each of a list of iteration counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from skmetaot._backend import resolve_device, resolve_dtype
from skmetaot.measures import as_pairs
from skmetaot.solvers.entropic import solve_pairs

#: Below any error a float64 Sinkhorn reaches, so that no problem stops before the checkpoint.
_NO_STOP = 1e-300


def sinkhorn_convergence(pairs: Any, iterations: Sequence[int], *, epsilon: float = 1e-2,
                         cost: Any = "sqeuclidean", init: Any = None, device: Any = None,
                         dtype: Any = None) -> np.ndarray:
    """The L1 marginal error of log-domain Sinkhorn after each number of iterations.

    One solve, continued from checkpoint to checkpoint (the log-domain iteration keeps its
    whole state in ``f``, so restarting from the last ``f`` is the same as not stopping: the
    last row equals the errors of one solve of ``iterations[-1]`` steps). Use
    it to compare cold and warm starts, e.g. zeros against a
    :class:`~skmetaot.MetaSinkhornTransport` prediction, and draw the curves with
    :func:`skmetaot.plotting.plot_convergence`.

    Parameters
    ----------
    pairs : anything :func:`skmetaot.as_pairs` accepts
        The problems.
    iterations : sequence of int
        Increasing iteration counts at which to record the error, e.g. ``[1, 2, 5, 10, 20]``.
    epsilon : float, default=1e-2
        Entropic regularisation, in cost units.
    cost : {"sqeuclidean", "euclidean", "spherical"} or callable, default="sqeuclidean"
    init : {"zeros", "gaussian"}, array-like of shape (N, n), Initializer, or None
        Where the solve starts, as in :func:`skmetaot.sinkhorn`: a fitted
        :class:`~skmetaot.MetaSinkhornTransport` gives the curve of its warm start.
    device, dtype : optional
        Where and in what precision to compute (default: the input's).

    Returns
    -------
    ndarray of shape (len(iterations), N)
        ``|P 1 - a|_1 + |P^T 1 - b|_1`` of each problem at each checkpoint.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pairs = [(rng.random((20, 2)), rng.random((30, 2))) for _ in range(3)]
    >>> errors = sinkhorn_convergence(pairs, [1, 10, 100], epsilon=0.05)
    >>> errors.shape, bool((np.diff(np.median(errors, axis=1)) < 0).all())
    ((3, 3), True)
    """
    counts = [int(k) for k in iterations]
    if not counts or counts[0] < 1 or bool((np.diff(counts) <= 0).any()):
        raise ValueError(f"iterations must be increasing positive integers, got {iterations!r}")
    measure_pairs = as_pairs(pairs).to(
        resolve_dtype(dtype), resolve_device(device) if device is not None else None)
    start, done, errors = init, 0, []
    for count in counts:
        # A solve of k iterations returns the f its last error was measured on; the next
        # segment's first iteration measures that f again, hence the extra one.
        state = solve_pairs(measure_pairs, epsilon=epsilon, cost=cost, init=start,
                            tol=_NO_STOP, max_iter=count - done + (done > 0), warn=False)
        errors.append(state.errors.detach().cpu().double().numpy())
        start, done = state.f, count
    return np.stack(errors)
