"""Public entry points of the batched entropic solver: :func:`sinkhorn` and :func:`solve_pairs`."""

from __future__ import annotations

from typing import Any

import torch

from skmetaot._backend import resolve_device, resolve_dtype
from skmetaot.costs import CostSpec
from skmetaot.measures import MeasurePairs, as_pairs
from skmetaot.solvers._inputs import (
    _check_precision_and_autograd,
    _check_scalars,
    _pairs_from_arrays,
)

# Re-exported: the batching and the result lived here before batches.py and result.py held them.
from skmetaot.solvers.batches import (  # noqa: F401
    CPU_BATCH_ELEMENTS,
    _device_of,
    default_batch_size,
    pair_geometry,
)
from skmetaot.solvers.initializers import PairBatch, ZerosInitializer, as_initializer, initial_f
from skmetaot.solvers.result import (  # noqa: F401
    SinkhornResult,
    iter_plans_and_costs,
    pair_plans,
    pair_values,
)
from skmetaot.solvers.sinkhorn import (
    SinkhornState,
    solve_batch,
    warn_unconverged,
)


def solve_pairs(
    pairs: MeasurePairs,
    *,
    epsilon: float = 1e-2,
    cost: CostSpec = "sqeuclidean",
    cost_matrix: torch.Tensor | None = None,
    init: Any = None,
    tol: float = 1e-3,
    max_iter: int = 1000,
    batch_size: int | None = None,
    geometry: str = "auto",
    warn: bool = True,
) -> SinkhornState:
    """Solve every pair of a :class:`~skmetaot.MeasurePairs` (torch in and out; padded potentials).

    Parameters
    ----------
    pairs : MeasurePairs
        Already on the device and dtype to compute in.
    epsilon, cost, init, tol, max_iter, geometry, warn
        As in :func:`~skmetaot.sinkhorn`. The convergence warning is issued once for the whole
        call, for all batches.
    cost_matrix : torch.Tensor, optional
        (n, m) or (N, n, m) costs overriding ``cost``.
    batch_size : int, optional
        Problems solved together; by default as many as keep a batch within a fixed memory
        budget (``skmetaot.solvers.entropic.default_batch_size``).

    Returns
    -------
    SinkhornState
        Potentials padded to the largest size (padding atoms: -inf).

    Warns
    -----
    sklearn.exceptions.ConvergenceWarning
        When problems stop at ``max_iter`` above ``tol`` (unless ``warn=False``).

    Examples
    --------
    >>> import torch
    >>> from skmetaot import as_pairs
    >>> from skmetaot.solvers import solve_pairs
    >>> gen = torch.Generator().manual_seed(0)
    >>> pairs = as_pairs([(torch.rand(4, 2, generator=gen), torch.rand(5, 2, generator=gen)),
    ...                   (torch.rand(3, 2, generator=gen), torch.rand(6, 2, generator=gen))])
    >>> state = solve_pairs(pairs, epsilon=0.1, tol=1e-6)
    >>> state.f.shape, state.g.shape, bool(state.converged.all())
    (torch.Size([2, 4]), torch.Size([2, 6]), True)
    >>> torch.isinf(state.f[1]).tolist()  # the second pair has 3 atoms; the padding is -inf
    [False, False, False, True]
    """
    _check_scalars(epsilon, tol, max_iter, batch_size)
    initializer = as_initializer(init)  # before any batch: a bad init fails at once
    step = batch_size or default_batch_size(pairs, cost=cost, cost_matrix=cost_matrix)
    states = []
    for start in range(0, pairs.n_pairs, step):
        indices = list(range(start, min(start + step, pairs.n_pairs)))
        kernel, tensors = pair_geometry(pairs, indices, epsilon=epsilon, cost=cost,
                                        cost_matrix=cost_matrix, geometry=geometry)
        # The cold start needs no tensor: the solver starts from zeros without building them.
        f_init = None if type(initializer) is ZerosInitializer else initial_f(
            initializer, PairBatch(pairs, indices, kernel, *tensors))
        states.append(solve_batch(kernel, tensors[1], tensors[3], f_init, tol=tol,
                                  max_iter=max_iter, warn=False))
    state = states[0] if len(states) == 1 else SinkhornState(
        *(_cat_padded([getattr(s, name) for s in states])
          for name in ("f", "g", "n_iter", "errors", "converged")))
    if warn:
        warn_unconverged(state.errors, state.converged, tol=tol, max_iter=max_iter)
    return state


def _cat_padded(parts: list[torch.Tensor]) -> torch.Tensor:
    if parts[0].ndim == 1:
        return torch.cat(parts)
    width = max(p.shape[1] for p in parts)
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1]), value=float("-inf"))
                      for p in parts])


def sinkhorn(
    a: Any,
    b: Any = None,
    C: Any = None,
    *,
    x: Any = None,
    y: Any = None,
    cost: CostSpec = "sqeuclidean",
    epsilon: float = 1e-2,
    init: Any = None,
    tol: float = 1e-3,
    max_iter: int = 1000,
    return_plan: bool = False,
    batch_size: int | None = None,
    device: Any = None,
    dtype: Any = None,
    geometry: str = "auto",
    warn: bool = True,
) -> SinkhornResult:
    """Batched log-domain Sinkhorn for one or many entropic OT problems.

    Parameters
    ----------
    a : array-like of shape (n,) or (N, n), or measure pairs
        Source weights (rows rescaled to sum to one; zeros allowed). Anything
        :func:`skmetaot.as_pairs` accepts (with ``b=None``) is solved pair by pair.
    b : array-like of shape (m,) or (N, m), optional
        Target weights.
    C : array-like of shape (n, m) or (N, n, m), optional
        Cost matrix, shared by all problems or one each. When omitted, ``cost(x, y)`` is used.
    x, y : array-like of shape (n, d) / (m, d) or (N, n, d) / (N, m, d), optional
        Supports. Product grids (e.g. image pixels) with the squared Euclidean cost are detected
        and solved with the separable kernel.
    cost : {"sqeuclidean", "euclidean", "spherical"} or callable, default="sqeuclidean"
    epsilon : float, default=1e-2
        Entropic regularisation, in cost units (absolute, not rescaled).
    init : {"zeros", "gaussian"}, array-like, tuple, Initializer or fitted estimator, optional
        Where the iterations start: zeros (default), the Gaussian-map potential (Thornton &
        Cuturi 2022), a given f (N, n) (a list of 1-D arrays for pairs of different sizes),
        ``(None, g)``, any :class:`~skmetaot.Initializer`, or a fitted
        :class:`~skmetaot.MetaSinkhornTransport` or :class:`~skmetaot.MetaSinkhornCloudTransport`
        (its predictions, as its ``refine`` starts from). See
        :func:`skmetaot.solvers.as_initializer`.
    tol : float, default=1e-3
        Stop each problem when ``|P 1 - a|_1 + |P^T 1 - b|_1 < tol``.
    max_iter : int, default=1000
    return_plan : bool, default=False
        Also compute the (N, n, m) couplings.
    batch_size : int, optional
        Problems solved together; by default as many as keep a batch within a fixed memory
        budget (``skmetaot.solvers.entropic.default_batch_size``).
    device : str or torch.device, optional
        Where to compute; default: the input's device ("auto" picks CUDA when present).
    dtype : {"float32", "float64"}, optional
        Computation dtype; default: the input's. Half-precision inputs (float16, bfloat16)
        are refused unless ``dtype`` asks for their conversion.
    geometry : {"auto", "dense", "online"}, default="auto"
        How the cost enters the iterations. ``"dense"`` materialises the (n, m) cost;
        ``"online"`` computes it from ``x`` and ``y`` block by block at each iteration and
        never holds it (memory O((n + m) d): 50,000 x 50,000 points fit in a few hundred MB;
        see :class:`~skmetaot.geometry.OnlineGeometry`); ``"auto"`` uses the separable kernel
        on grids, the online geometry when one problem's cost would exceed 2^25 entries
        (about 5,800 x 5,800 points), the dense one otherwise. A given ``C`` is always dense.
    warn : bool, default=True
        Issue one :class:`~sklearn.exceptions.ConvergenceWarning` when problems stop at
        ``max_iter`` with an error above ``tol``; ``warn=False`` (or a warnings filter)
        silences it. ``converged`` and ``errors`` say the same per problem.

    Returns
    -------
    SinkhornResult

    Raises
    ------
    TypeError
        If an input is not an array of real numbers (object, string or complex arrays), or is
        in half precision (float16, bfloat16) without an explicit ``dtype``.
    ValueError
        If an input holds NaN or inf, weights are negative or sum to zero, a measure is empty,
        shapes disagree, a tensor is on the ``meta`` device (no data), ``C``, ``x`` or ``y``
        are given without ``b``, ``geometry`` is unknown, or ``geometry="online"`` comes with
        ``C``. Messages name the argument and, where there is one, the pair.

    Warns
    -----
    sklearn.exceptions.ConvergenceWarning
        When problems stop at ``max_iter`` above ``tol`` (once per call; unless
        ``warn=False``).
    UserWarning
        When an input tensor requires grad: the outputs are detached (see Notes).

    Notes
    -----
    Integer and boolean arrays are converted to float64. Repeated support points are allowed.
    Any finite positive ``epsilon`` is accepted: the log-domain iterations keep the potentials
    finite for a tiny epsilon (1e-8, which may need more than ``max_iter`` iterations and then
    reports ``converged=False``, with a warning) as for a huge one (1e8, converged in a few
    iterations).

    The solver does not differentiate through its iterations: outputs are detached from
    autograd. The solution is the gradient of the entropic OT value (envelope theorem): with
    ``OT(a, b, C)`` the optimum, ``dOT/da = f``, ``dOT/db = g`` (up to a constant) and
    ``dOT/dC = P``, the plan; see :ref:`gradients`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot import sinkhorn
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((5, 2)), rng.random((6, 2))
    >>> res = sinkhorn(np.ones(5), np.ones(6), x=x, y=y, epsilon=0.1, tol=1e-8)
    >>> res.plan().sum(0).round(4)
    array([0.1667, 0.1667, 0.1667, 0.1667, 0.1667, 0.1667])
    """
    _check_precision_and_autograd({"a": a, "b": b, "C": C, "x": x, "y": y, "init": init},
                                  dtype)
    single = False
    cost_matrix = None
    if b is None:
        given = [name for name, value in (("C", C), ("x", x), ("y", y)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} given without b: the target weights b are "
                             "needed with the array form sinkhorn(a, b, C) or "
                             "sinkhorn(a, b, x=..., y=...); pairs are solved as sinkhorn(pairs)")
        pairs = as_pairs(a)
    else:
        pairs, single, cost_matrix = _pairs_from_arrays(a, b, C, x, y)
    target_dtype = resolve_dtype(dtype)
    target_device = resolve_device(device) if device is not None else None
    kind = pairs.kind
    pairs = pairs.to(target_dtype, target_device)
    if cost_matrix is not None:
        cost_matrix = cost_matrix.to(dtype=pairs.dtype, device=_device_of(pairs))
    state = solve_pairs(pairs, epsilon=epsilon, cost=cost, cost_matrix=cost_matrix, init=init,
                        tol=tol, max_iter=max_iter, batch_size=batch_size, geometry=geometry,
                        warn=warn)
    result = SinkhornResult.from_state(state, pairs, epsilon=epsilon, cost=cost,
                                       cost_matrix=cost_matrix, single=single, kind=kind)
    if return_plan:
        result.plans = result.plan()
    return result
