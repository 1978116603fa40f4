"""Interoperability with POT (Python Optimal Transport), and a drop-in for its Sinkhorn.

* :func:`sinkhorn` and :func:`sinkhorn2` take ``ot.sinkhorn``'s and ``ot.sinkhorn2``'s
  arguments (``a, b, M, reg``, ``numItermax``, ``stopThr``, ``log``, ``warmstart``, ...) and
  return what they return (a plan, or a value, and POT's ``log``), computed by the batched
  log-domain solver: ``import skmetaot.pot as ot_fast`` and ``ot_fast.sinkhorn(a, b, M, reg)``.
  By default they run POT's iterations and stop on POT's rule (the L2 norm of the b-marginal
  error, checked every 10 iterations), so that plans, logs and iteration counts agree with
  POT's; ``stopping="l1"`` uses ours (the L1 error of both marginals, checked every
  iteration). A 2-D ``a`` (N, n) solves N problems at once.
* POT's log-domain Sinkhorn works with scaled potentials ``log_u = f / reg`` and
  ``log_v = g / reg``; :func:`to_warmstart` converts our cost-unit potentials so that a
  prediction can warm-start POT, and :func:`to_otresult` wraps our solutions in POT's
  :class:`ot.utils.OTResult`, whose ``value`` is ``ot.solve(..., reg_type="entropy")``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from skmetaot._backend import as_float_tensor, kind_of
from skmetaot._pot_sinkhorn import solve_pot_problems
from skmetaot.solvers.plans import transport_plan

__all__ = ["otresults_from_state", "sinkhorn", "sinkhorn2", "to_otresult", "to_warmstart"]


def sinkhorn(a: Any, b: Any, M: Any, reg: float, method: str = "sinkhorn",
             numItermax: int = 1000, stopThr: float = 1e-9, verbose: bool = False,
             log: bool = False, warn: bool = True, warmstart: Any = None, *,
             stopping: str = "pot", batch_size: int | None = None, **kwargs: Any) -> Any:
    """``ot.sinkhorn`` with the batched solver: the entropic plan (and POT's log).

    Same arguments and returns as POT's ``ot.sinkhorn`` (numpy in, numpy out; torch in, torch
    out on the input's device), computed in the log domain for every ``method`` accepted.

    Parameters
    ----------
    a : array-like of shape (n,), (N, n) or empty
        Source weights (empty: uniform). A 2-D ``a`` holds N problems solved together (an
        extension: POT takes one ``a``).
    b : array-like of shape (m,), (m, k), (N, m) or empty
        Target weights. With a 1-D ``a``, a 2-D ``b`` holds ``k`` target histograms as
        columns, as in POT, and the sinkhorn losses ``<M, P_k>`` are returned instead of plans.
        With a 2-D ``a``, one row per problem, or one 1-D ``b`` for every problem.
    M : array-like of shape (n, m) or (N, n, m)
        Cost matrix, shared by the problems or one per problem.
    reg : float
        Entropic regularisation (POT's ``reg``, our ``epsilon``).
    method : {"sinkhorn", "sinkhorn_log", "sinkhorn_stabilized"}, default="sinkhorn"
        POT's method; all three run the same iterations here (in the log domain). For
        ``"sinkhorn"`` without ``warmstart``, ``log_u`` and ``log_v`` carry POT's
        Sinkhorn-Knopp normalisation (``u`` starts at ``1 / n``).
    numItermax : int, default=1000
        Most iterations (each a b-update then an a-update, as in POT).
    stopThr : float, default=1e-9
        Stopping threshold (see ``stopping``).
    verbose : bool, default=False
        Print the error at each check.
    log : bool, default=False
        Also return POT's log: ``u``, ``v``, ``log_u``, ``log_v`` (the scaled potentials,
        ``f / reg`` and ``g / reg``), ``niter`` (index of the last iteration, as POT counts
        it) and ``err`` (the error at each check).
    warn : bool, default=True
        Warn (:class:`~sklearn.exceptions.ConvergenceWarning`, a ``UserWarning`` as POT's)
        when a problem does not converge within ``numItermax``.
    warmstart : tuple (log_u, log_v), optional
        POT's warm start (``skmetaot.pot.to_warmstart`` converts our potentials); only
        ``log_u`` is used, as POT's first iteration recomputes ``v``.
    stopping : {"pot", "l1"}, default="pot"
        ``"pot"``: stop once ``|P^T 1 - b|_2 < stopThr``, checked after the first iteration
        and after every 10th (POT's rule, so plans and ``niter`` agree with POT's). ``"l1"``:
        stop once ``|P 1 - a|_1 + |P^T 1 - b|_1 < stopThr``, checked after every iteration
        (skmetaot's rule, stricter at the same threshold).
    batch_size : int, optional
        Problems solved together (default: as many as fit a fixed memory budget).
    **kwargs
        Ignored, as POT ignores the arguments its solver does not use.

    Returns
    -------
    plan : array of shape (n, m) or (N, n, m)
        The entropic plan ``P_ij = u_i K_ij v_j``; for a 2-D ``b`` with a 1-D ``a``, the
        losses (k,) instead.
    log : dict
        Only when ``log=True``. For N problems, ``u``, ``v``, ``log_u``, ``log_v`` are
        (N, n) and (N, m), ``niter`` is (N,) and ``err`` a list of N lists; for ``k`` target
        histograms, (n, k) and (m, k) as in POT.

    Raises
    ------
    ValueError
        If a method is not one of ``METHODS``, ``reg``, ``numItermax`` or ``stopThr`` are not
        positive, or shapes disagree; the message names the argument.

    Notes
    -----
    POT's iteration is ``v = b / K^T u``, then ``u = a / K v``. Here it runs as the batched
    log-domain solver's iteration on the transposed problem, so the iterates are POT's exactly
    and the returned plan's a-marginal is exact, as POT's is. No gradient flows through the
    result (use ``ot.sinkhorn2`` with a torch backend for autograd through the iterations).

    Examples
    --------
    >>> import numpy as np, ot
    >>> import skmetaot.pot as ot_fast
    >>> rng = np.random.default_rng(0)
    >>> a, b, M = np.full(30, 1 / 30), np.full(40, 1 / 40), ot.dist(rng.random((30, 2)),
    ...                                                            rng.random((40, 2)))
    >>> P, log = ot_fast.sinkhorn(a, b, M, 0.05, log=True)   # ot.sinkhorn(a, b, M, 0.05, ...)
    >>> P_pot, log_pot = ot.sinkhorn(a, b, M, 0.05, log=True)
    >>> bool(np.allclose(P, P_pot, atol=1e-12)), log["niter"] == log_pot["niter"]
    (True, True)
    """
    solved = solve_pot_problems(a, b, M, reg, method, numItermax, stopThr, verbose, warn,
                                warmstart, stopping, batch_size)
    if solved.n_hists:
        out = solved.kind.wrap(solved.linear_values())
    else:
        plans = transport_plan(solved.cost, solved.f, solved.g, solved.reg)
        out = solved.kind.wrap(plans if solved.batched else plans[0])
    return (out, solved.pot_log()) if log else out


def sinkhorn2(a: Any, b: Any, M: Any, reg: float, method: str = "sinkhorn",
              numItermax: int = 1000, stopThr: float = 1e-9, verbose: bool = False,
              log: bool = False, warn: bool = False, warmstart: Any = None, *,
              stopping: str = "pot", batch_size: int | None = None, **kwargs: Any) -> Any:
    """``ot.sinkhorn2`` with the batched solver: the sinkhorn loss ``<M, P>`` (and POT's log).

    Parameters
    ----------
    a, b, M, reg, method, numItermax, stopThr, verbose, log, warn, warmstart, stopping
        As in :func:`sinkhorn` (``warn`` defaults to False, as in POT).
    batch_size : int, optional
        Problems solved together.
    **kwargs
        Ignored.

    Returns
    -------
    loss : float or array of shape (N,) or (k,)
        ``<M, P>`` (the linear part, as POT's ``sinkhorn2`` returns; the entropic value is
        ``<M, P> + reg * sum P log P``, the ``value`` of :func:`to_otresult`), a scalar of the
        input's kind for one problem. Computed without forming the plans.
    log : dict
        Only when ``log=True``, as in :func:`sinkhorn`.

    Examples
    --------
    >>> import numpy as np, ot
    >>> import skmetaot.pot as ot_fast
    >>> a = b = np.full(3, 1 / 3)
    >>> M = ot.dist(np.arange(3.0)[:, None])
    >>> bool(np.isclose(ot_fast.sinkhorn2(a, b, M, 0.5), ot.sinkhorn2(a, b, M, 0.5)))
    True
    >>> A = np.random.default_rng(0).dirichlet(np.ones(3), size=5)  # five problems at once
    >>> ot_fast.sinkhorn2(A, b, M, 0.5).shape
    (5,)
    """
    solved = solve_pot_problems(a, b, M, reg, method, numItermax, stopThr, verbose, warn,
                                warmstart, stopping, batch_size)
    values = solved.linear_values()
    out = solved.kind.wrap(values if solved.batched or solved.n_hists else values[0])
    return (out, solved.pot_log()) if log else out


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

    The fields follow ``ot.solve(M, a, b, reg=eps, reg_type="entropy")``:

    * ``value_linear = sum_ij C_ij P_ij``;
    * ``value = sum_ij C_ij P_ij + eps * sum_ij P_ij log P_ij`` (terms with ``P_ij = 0``
      count 0): the ``value`` of ``ot.solve(..., reg_type="entropy")``. ``ot.solve``'s
      default ``reg_type="KL"`` reports ``value - eps * (sum_i a_i log a_i + sum_j b_j log b_j)``
      instead (the KL divergence to ``a b^T``);
    * ``potentials = (f, g)`` in cost units, with ``P_ij = exp((f_i + g_j - C_ij) / eps)``;
      POT's are ``(f / eps, g / eps)`` (``log_u``, ``log_v``, up to a constant moved from one
      to the other);
    * ``log`` holds ``niter`` and ``err`` (the L1 error ``|P 1 - a|_1 + |P^T 1 - b|_1``).

    ``plan`` is computed from the potentials when read (see :func:`otresults_from_state`).

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
    >>> res = sinkhorn(a, a, np.array([[0.0, 1.0], [1.0, 0.0]]), epsilon=0.1, tol=1e-9,
    ...                max_iter=20_000)
    >>> results = to_otresult(res)
    >>> len(results), results[1].plan.sum(0).round(6), results[1].log["niter"] > 0
    (2, array([0.25, 0.75]), True)
    >>> round(results[0].value_linear, 4)  # <C, P>: the mass that stays put costs nothing
    0.0
    >>> import ot
    >>> M, w = ot.dist(np.arange(4.0)[:, None]), np.array([0.1, 0.2, 0.3, 0.4])
    >>> (ours,) = to_otresult(sinkhorn(w, w[::-1], M, epsilon=0.5, tol=1e-12))
    >>> pot = ot.solve(M, w, w[::-1], reg=0.5, reg_type="entropy", tol=1e-13)
    >>> bool(np.isclose(ours.value, pot.value, rtol=1e-10))  # ot.solve's entropic value
    True
    """
    return result.to_pot()


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
    from skmetaot._otresult import BatchValues, LazyPlanOTResult, PlanCosts
    from skmetaot.solvers.entropic import default_batch_size

    step = batch_size or default_batch_size(pairs, cost=cost, cost_matrix=cost_matrix)
    costs = PlanCosts(pairs, epsilon=epsilon, cost=cost, cost_matrix=cost_matrix)
    kind = pairs.kind
    sizes = list(zip(pairs.source_sizes, pairs.target_sizes, strict=True))
    out = []
    for start in range(0, pairs.n_pairs, step):
        stop = min(start + step, pairs.n_pairs)
        f, g = state.f[start:stop], state.g[start:stop]
        values = BatchValues(pairs, list(range(start, stop)), f, g, epsilon=epsilon, cost=cost,
                             cost_matrix=cost_matrix)
        # One transfer per batch: the per-pair loop below only slices and wraps.
        f_out, g_out = kind.wrap(f), kind.wrap(g)
        columns = zip(state.n_iter[start:stop].tolist(), state.errors[start:stop].tolist(),
                      state.converged[start:stop].tolist(), strict=True)
        for offset, (n_iter, err, converged) in enumerate(columns):
            n, m = sizes[start + offset]
            out.append(LazyPlanOTResult(
                costs, start + offset, kind, values=(values, offset),
                potentials=(f_out[offset, :n], g_out[offset, :m]),
                status="converged" if converged else "max_iter",
                log={"niter": n_iter, "err": err},
            ))
    return out
