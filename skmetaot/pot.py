"""Interoperability with POT (Python Optimal Transport).

POT's ``ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", log=True)`` works with scaled potentials
``log_u = f / reg`` and ``log_v = g / reg``; :func:`to_warmstart` converts our cost-unit potentials
so that a prediction can warm-start POT, and :func:`to_otresult` wraps our solutions in POT's
:class:`ot.utils.OTResult`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from skmetaot._backend import as_float_tensor, kind_of

__all__ = ["otresults_from_state", "to_otresult", "to_warmstart"]


def to_warmstart(f: Any, g: Any, epsilon: float) -> tuple[Any, Any]:
    """POT's ``warmstart=(log_u, log_v)`` from potentials ``(f, g)`` in cost units.

    Parameters
    ----------
    f : array-like of shape (n,)
    g : array-like of shape (m,)
    epsilon : float
        The ``reg`` passed to POT.

    Returns
    -------
    (log_u, log_v) : tuple of arrays, same kind as the input

    Examples
    --------
    >>> import numpy as np, ot
    >>> from skmetaot import sinkhorn
    >>> from skmetaot.pot import to_warmstart
    >>> a, b = np.full(3, 1 / 3), np.full(3, 1 / 3)
    >>> M = ot.dist(np.arange(3.0)[:, None])
    >>> res = sinkhorn(a, b, M, epsilon=0.5, tol=1e-10)
    >>> P, log = ot.sinkhorn(a, b, M, 0.5, method="sinkhorn_log", log=True,
    ...                      warmstart=to_warmstart(res.f, res.g, 0.5))
    >>> log["niter"]
    0
    """
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite positive number, got {epsilon!r}")
    kind = kind_of(f, g)
    f_t = as_float_tensor(f, "f", finite=False)
    g_t = as_float_tensor(g, "g", finite=False)
    if bool(torch.isnan(f_t).any() | torch.isnan(g_t).any()):
        raise ValueError("potentials contain NaN")
    return kind.wrap(f_t / epsilon), kind.wrap(g_t / epsilon)


def to_otresult(result: Any) -> list:
    """Wrap each problem of a :class:`skmetaot.SinkhornResult` in a POT ``OTResult``.

    ``value_linear`` is ``<C, P>`` and ``value`` the entropic primal ``<C, P> - eps H(P)`` with
    ``H(P) = -sum P (log P - 1)``; ``potentials`` are ``(f, g)`` in cost units; ``log`` holds
    ``niter`` and ``err`` (the L1 marginal error of eq. (7)). ``plan`` is computed from the
    potentials when read (see :func:`otresults_from_state`).

    Parameters
    ----------
    result : SinkhornResult

    Returns
    -------
    list of ot.utils.OTResult

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot import sinkhorn
    >>> from skmetaot.pot import to_otresult
    >>> a = np.array([[0.5, 0.5], [0.25, 0.75]])
    >>> res = sinkhorn(a, a, np.array([[0.0, 1.0], [1.0, 0.0]]), epsilon=0.1, tol=1e-9)
    >>> results = to_otresult(res)
    >>> len(results), results[1].plan.sum(0).round(6), results[1].log["niter"] > 0
    (2, array([0.25, 0.75]), True)
    >>> round(results[0].value_linear, 4)  # <C, P>: the mass that stays put costs nothing
    0.0
    """
    return otresults_from_state(result._pairs, result._state, epsilon=result.epsilon,
                                cost=result._cost, cost_matrix=result._cost_matrix)


def otresults_from_state(pairs, state, *, epsilon: float, cost: Any, cost_matrix=None,
                         batch_size: int | None = None) -> list:
    """POT ``OTResult`` objects for solved pairs (see :func:`to_otresult`).

    The values, statuses and logs are computed batch by batch in tensor operations (the values
    from two marginals and a cost moment, never from a plan); each result keeps its potentials
    and computes its ``plan`` (and ``marginals``, ``sparse_plan``) from them when it is read, so
    the list holds O(n + m) numbers per pair, not an (n, m) plan.

    Parameters
    ----------
    pairs : MeasurePairs
        The solved pairs (their kind decides numpy or torch outputs).
    state : SinkhornState
        Potentials, iterations and errors from the solver.
    epsilon : float
    cost : str or callable
    cost_matrix : torch.Tensor, optional
    batch_size : int, optional
        Pairs whose values are computed together (default: the solver's memory budget,
        ``skmetaot.solvers.entropic.default_batch_size``).

    Returns
    -------
    list of ot.utils.OTResult

    Examples
    --------
    >>> import torch
    >>> from skmetaot import HistogramPairs
    >>> from skmetaot.pot import otresults_from_state
    >>> from skmetaot.solvers import solve_pairs
    >>> pairs = HistogramPairs(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]]))
    >>> state = solve_pairs(pairs, epsilon=0.1, tol=1e-6)
    >>> (result,) = otresults_from_state(pairs, state, epsilon=0.1, cost="sqeuclidean")
    >>> result.status, result.plan.shape  # torch in, torch out; the plan is built when read
    ('converged', torch.Size([2, 2]))
    """
    from skmetaot._otresult import LazyPlanOTResult, PlanCosts
    from skmetaot.solvers.entropic import default_batch_size, pair_geometry
    from skmetaot.solvers.sinkhorn import plan_values

    step = batch_size or default_batch_size(pairs, cost=cost, cost_matrix=cost_matrix)
    costs = PlanCosts(pairs, epsilon=epsilon, cost=cost, cost_matrix=cost_matrix)
    kind = pairs.kind
    sizes = list(zip(pairs.source_sizes, pairs.target_sizes, strict=True))
    out = []
    for start in range(0, pairs.n_pairs, step):
        stop = min(start + step, pairs.n_pairs)
        geometry, _ = pair_geometry(pairs, list(range(start, stop)), epsilon=epsilon, cost=cost,
                                    cost_matrix=cost_matrix)
        f, g = state.f[start:stop], state.g[start:stop]
        value, linear = plan_values(geometry, f, g)
        # One transfer per batch: the per-pair loop below only slices and wraps.
        f_out, g_out = kind.wrap(f), kind.wrap(g)
        columns = zip(value.tolist(), linear.tolist(), state.n_iter[start:stop].tolist(),
                      state.errors[start:stop].tolist(), state.converged[start:stop].tolist(),
                      strict=True)
        for offset, (val, lin, n_iter, err, converged) in enumerate(columns):
            n, m = sizes[start + offset]
            out.append(LazyPlanOTResult(
                costs, start + offset, kind,
                potentials=(f_out[offset, :n], g_out[offset, :m]),
                value=val, value_linear=lin,
                status="converged" if converged else "max_iter",
                log={"niter": n_iter, "err": err},
            ))
    return out
