"""Public entry points of the batched entropic solver: :func:`sinkhorn` and :func:`solve_pairs`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from skmetaot._backend import ArrayKind, resolve_device, resolve_dtype
from skmetaot.costs import CostSpec, is_sqeuclidean
from skmetaot.geometry import DENSE_CHUNK_ELEMENTS, make_geometry
from skmetaot.measures import MeasurePairs, as_pairs
from skmetaot.solvers._inputs import (
    _check_precision_and_autograd,
    _check_scalars,
    _pairs_from_arrays,
)
from skmetaot.solvers.initializers import PairBatch, ZerosInitializer, as_initializer, initial_f
from skmetaot.solvers.sinkhorn import (
    Geometry,
    SinkhornState,
    solve_batch,
    transport_plan,
    warn_unconverged,
)


def pair_geometry(
    pairs: MeasurePairs,
    indices: list[int],
    *,
    epsilon: float,
    cost: CostSpec,
    cost_matrix: torch.Tensor | None,
    geometry: str = "auto",
) -> tuple[Geometry, tuple[torch.Tensor, ...]]:
    """Geometry and padded ``(x, a, y, b)`` of the pairs ``indices``.

    Parameters
    ----------
    pairs : MeasurePairs
    indices : list of int
    epsilon : float
    cost : str or callable
    cost_matrix : torch.Tensor, optional
        (n, m) shared or (N, n, m) per-pair costs overriding ``cost``.
    geometry : {"auto", "dense", "online"}, default="auto"
        As in :func:`~skmetaot.sinkhorn`.

    Returns
    -------
    geometry : DenseGeometry, GridGeometry or OnlineGeometry
    tensors : tuple of torch.Tensor
        ``(x, a, y, b)`` as returned by :meth:`MeasurePairs.padded`.
    """
    x, a, y, b = pairs.padded(indices)
    tensors = (x, a, y, b)
    if cost_matrix is not None:
        matrix = cost_matrix if cost_matrix.ndim == 2 else cost_matrix[indices]
        return make_geometry(epsilon=epsilon, cost_matrix=matrix, kind=geometry), tensors
    if geometry == "auto" and pairs.shared_support and is_sqeuclidean(cost):
        grid = pairs.grid_geometry(epsilon)  # cached on the pairs, per epsilon
        if grid is not None:
            return grid, tensors
    return make_geometry(epsilon=epsilon, x=x, y=y, cost=cost, kind=geometry), tensors


#: Elements of a batch's (B, n + m) working tensors on a CPU (2 MB in float64): beyond the
#: cache, larger batches of problems on shared supports only run slower there.
CPU_BATCH_ELEMENTS = 1 << 18


def default_batch_size(
    pairs: MeasurePairs,
    *,
    cost: CostSpec = "sqeuclidean",
    cost_matrix: torch.Tensor | None = None,
    dense: bool = False,
) -> int:
    """Problems per batch that keep a batch's intermediate tensors within the memory budget.

    The budget is :data:`~skmetaot.geometry.DENSE_CHUNK_ELEMENTS` elements (256 MB in
    float64). A batch that forms (B, n, m) tensors (per-pair supports or costs, plans, maps:
    ``dense=True``) holds ``n m`` elements per problem. On shared supports a Sinkhorn step,
    a prediction or the values of a plan hold O(n + m), with a worst case (the kernels'
    exact fallback) of ``n m`` for a dense kernel and ``n`` times the longest axis on a grid;
    on a CPU the batch is further capped at ``CPU_BATCH_ELEMENTS / (n + m)`` problems, which
    run fastest there.

    Parameters
    ----------
    pairs : MeasurePairs
        The pairs (their sizes, supports and device decide).
    cost : str or callable, default="sqeuclidean"
    cost_matrix : torch.Tensor, optional
        (n, m) or (N, n, m) costs overriding ``cost``.
    dense : bool, default=False
        Whether the batch forms (B, n, m) tensors.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> from skmetaot.datasets import make_mnist_pairs
    >>> pairs = make_mnist_pairs(10, split="test", random_state=0)  # 28 x 28 grids, on the CPU
    >>> default_batch_size(pairs), default_batch_size(pairs, dense=True)
    (167, 54)
    """
    if pairs.n_pairs == 1:  # one batch whatever the budget: batch-1 calls skip the sizing
        return 1
    n, m = max(pairs.source_sizes), max(pairs.target_sizes)
    per_problem = n * m
    shared = pairs.shared_support and (cost_matrix is None or cost_matrix.ndim == 2)
    if not shared or dense:
        return max(1, DENSE_CHUNK_ELEMENTS // per_problem)
    grid_x, grid_y = getattr(pairs, "grid_x", None), getattr(pairs, "grid_y", None)
    if cost_matrix is None and is_sqeuclidean(cost) and grid_x is not None and (
            grid_y is not None):
        per_problem = max(n * max(len(v) for v in grid_y), m * max(len(u) for u in grid_x))
    size = DENSE_CHUNK_ELEMENTS // per_problem
    if _device_of(pairs).type == "cpu":
        size = min(size, CPU_BATCH_ELEMENTS // (n + m))
    return max(1, size)


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


@dataclass
class SinkhornResult:
    """What :func:`sinkhorn` returns, in the user's array kind (numpy or torch).

    Attributes
    ----------
    f, g : array of shape (N, n), (N, m), or list of arrays
        Dual potentials in cost units; -inf on zero-weight atoms; ``g = g(f)`` exactly. Shapes
        (n,) and (m,) for one problem, and lists of 1-D arrays when the pairs have different
        sizes.
    n_iter : array of shape (N,)
        Iterations per problem.
    errors : array of shape (N,)
        L1 marginal error ``|P 1 - a|_1 + |P^T 1 - b|_1`` at the returned potentials.
    converged : array of shape (N,)
        Whether each problem reached ``tol``.
    epsilon : float
        The regularisation used.
    plans : array of shape (N, n, m) or None
        The couplings when ``return_plan=True`` (else call :meth:`plan`).

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot import sinkhorn
    >>> a, b = np.full((2, 3), 1 / 3), np.array([[0.2, 0.3, 0.5], [0.5, 0.25, 0.25]])
    >>> res = sinkhorn(a, b, x=np.eye(3), y=np.eye(3), epsilon=0.1, tol=1e-6)
    >>> res.f.shape, res.n_iter.shape, bool(res.converged.all())
    ((2, 3), (2,), True)
    >>> res.plan().sum(-2).round(3)  # the b-marginal is exact: g = g(f)
    array([[0.2 , 0.3 , 0.5 ],
           [0.5 , 0.25, 0.25]])
    >>> [r.status for r in res.to_pot()]  # POT's OTResult, one per problem
    ['converged', 'converged']
    """

    f: Any
    g: Any
    n_iter: Any
    errors: Any
    converged: Any
    epsilon: float
    plans: Any = None
    _state: SinkhornState | None = field(default=None, repr=False)
    _pairs: MeasurePairs | None = field(default=None, repr=False)
    _cost: Any = field(default=None, repr=False)
    _cost_matrix: torch.Tensor | None = field(default=None, repr=False)
    _single: bool = field(default=False, repr=False)

    @property
    def state(self) -> SinkhornState:
        """The solver's tensors (potentials padded to the largest pair, per-pair counters)."""
        return self._state

    @property
    def pairs(self) -> MeasurePairs:
        """The solved pairs, as the solver saw them (weights normalised)."""
        return self._pairs

    def plan(self) -> Any:
        """The couplings ``P_ij = exp((f_i + g_j - C_ij)/eps)``, one per problem."""
        plans = pair_plans(self._pairs, self._state, epsilon=self.epsilon, cost=self._cost,
                           cost_matrix=self._cost_matrix)
        return _to_user(plans, self._single, kind=self._pairs.kind)

    def to_pot(self) -> list:
        """One POT ``ot.utils.OTResult`` per problem (:func:`skmetaot.pot.to_otresult`).

        Each holds its potentials, value, status and log, and builds its ``plan`` when read.

        Returns
        -------
        list of ot.utils.OTResult
        """
        from skmetaot.pot import otresults_from_state

        return otresults_from_state(self._pairs, self._state, epsilon=self.epsilon,
                                    cost=self._cost, cost_matrix=self._cost_matrix)


def iter_plans_and_costs(
    pairs: MeasurePairs,
    state: SinkhornState,
    *,
    epsilon: float,
    cost: CostSpec,
    cost_matrix: torch.Tensor | None = None,
):
    """Yield ``(plan, cost)`` of each solved pair, trimmed to its sizes, in order.

    Plans are computed a batch at a time from one geometry per batch, so a shared cost is
    built once per batch.
    """
    step = default_batch_size(pairs, cost=cost, cost_matrix=cost_matrix, dense=True)
    sizes = list(zip(pairs.source_sizes, pairs.target_sizes, strict=True))
    for start in range(0, pairs.n_pairs, step):
        indices = list(range(start, min(start + step, pairs.n_pairs)))
        geometry, _ = pair_geometry(pairs, indices, epsilon=epsilon, cost=cost,
                                    cost_matrix=cost_matrix)
        matrix = geometry.cost_matrix()
        plans = transport_plan(matrix, state.f[indices], state.g[indices], epsilon)
        for offset, k in enumerate(indices):
            n, m = sizes[k]
            pair_cost = matrix[offset] if matrix.ndim == 3 else matrix
            yield plans[offset, :n, :m], pair_cost[:n, :m]


def pair_plans(
    pairs: MeasurePairs,
    state: SinkhornState,
    *,
    epsilon: float,
    cost: CostSpec,
    cost_matrix: torch.Tensor | None = None,
) -> list[torch.Tensor] | torch.Tensor:
    """Plans of solved pairs: a (N, n, m) tensor for equal sizes, else a list of (n_k, m_k)."""
    plans = [plan for plan, _ in iter_plans_and_costs(pairs, state, epsilon=epsilon, cost=cost,
                                                      cost_matrix=cost_matrix)]
    if len({tuple(p.shape) for p in plans}) == 1:
        return torch.stack(plans)
    return plans


def _to_user(values, single: bool, *, kind: ArrayKind):
    if isinstance(values, list):
        out = [kind.wrap(v) for v in values]
        return out[0] if single else out
    out = kind.wrap(values)
    return out[0] if single else out


def _trim(values: torch.Tensor, sizes: list[int], pairs: MeasurePairs):
    if pairs.shared_support or len(set(sizes)) == 1:
        return values[:, : sizes[0]]
    return [values[k, :n] for k, n in enumerate(sizes)]


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
    result = SinkhornResult(
        f=_to_user(_trim(state.f, pairs.source_sizes, pairs), single, kind=kind),
        g=_to_user(_trim(state.g, pairs.target_sizes, pairs), single, kind=kind),
        n_iter=_to_user(state.n_iter, single, kind=kind),
        errors=_to_user(state.errors, single, kind=kind),
        converged=_to_user(state.converged, single, kind=kind),
        epsilon=float(epsilon),
        _state=state, _pairs=pairs, _cost=cost, _cost_matrix=cost_matrix, _single=single,
    )
    if return_plan:
        result.plans = result.plan()
    return result


def _device_of(pairs: MeasurePairs) -> torch.device:
    weights = pairs.a if isinstance(pairs.a, torch.Tensor) else pairs.a[0]
    return weights.device
