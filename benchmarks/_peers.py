"""Peer solvers for the benchmarks (OTT-JAX, GeomLoss, POT), and one error rule for all.

Every peer is an optional import: :func:`available` says which are installed, and a benchmark
skips (and names) the missing ones. Each adapter returns potentials (or a plan) that
:func:`l1_error` / :func:`plan_error` turn into the L1 marginal error of eq. (7),
``|P 1 - a|_1 + |P^T 1 - b|_1``, recomputed in float64 from what the peer returned, so every
solver is judged by the same number computed the same way.

Potentials follow one convention, ``P_ij = exp((f_i + g_j - C_ij) / eps)`` (skmetaot's and
OTT-JAX's); GeomLoss's (relative to ``a x b``) are converted by :func:`geomloss_solve`.

Import this module before jax (``import _peers`` first): it pins XLA to one thread, as the
benchmarks measure every solver on one thread.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# Set before jax is imported anywhere: XLA's CPU client reads them once.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

#: Peer name -> the module that must be importable.
PEER_MODULES = {"pot": "ot", "ott": "ott", "geomloss": "geomloss"}
#: OTT's Grid geometry takes log(0) slices of zero weights into NaN potentials: MNIST
#: weights are floored at this and renormalised for it (mass moved: < 1e-9 per image).
WEIGHT_FLOOR = 1e-12


def available(requested: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(installed, missing) among ``requested`` peers (default: all of :data:`PEER_MODULES`)."""
    names = list(PEER_MODULES) if requested is None else requested
    unknown = [name for name in names if name not in PEER_MODULES]
    if unknown:
        raise ValueError(f"unknown peers {unknown}; choose from {list(PEER_MODULES)}")
    found = [n for n in names if importlib.util.find_spec(PEER_MODULES[n]) is not None]
    return found, [n for n in names if n not in found]


def versions(peers: list[str]) -> dict[str, str]:
    """Installed version of each peer (for the result files)."""
    out = {}
    for name in peers:
        module = __import__(PEER_MODULES[name])
        out[name] = str(getattr(module, "__version__", "?"))
    return out


def peers_note(found: list[str], missing: list[str]) -> str:
    """The results' line saying which peers were measured (with versions) and which missing."""
    measured = ", ".join(f"{k} {v}" for k, v in versions(found).items()) or "none"
    return f"Missing peers: {', '.join(missing) or 'none'}; measured: {measured}."


def load_note(start: float) -> str:
    """The 1-minute load average at the start (``start``) and now, for the notes."""
    return (f"Load average (1 min) at the start and the end: {start:.1f}, "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (above 1, other processes "
            "shared them: absolute times are inflated, the interleaved ratios less so).")


def floor_weights(weights: np.ndarray, floor: float = WEIGHT_FLOOR) -> np.ndarray:
    """Weights with every entry at least ``floor``, rows renormalised to sum to one."""
    floored = np.maximum(np.asarray(weights, dtype=np.float64), floor)
    return floored / floored.sum(-1, keepdims=True)


def _float64(values: Any) -> torch.Tensor:
    """A float64 CPU copy of a tensor or array."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64, copy=True)
    return torch.tensor(np.array(values, dtype=np.float64))


def l1_error(f: Any, g: Any, a: Any, b: Any, cost: torch.Tensor, epsilon: float) -> np.ndarray:
    """L1 marginal error of the plans ``exp((f_i + g_j - C_ij) / eps)``, in float64.

    Parameters
    ----------
    f, g : array-like of shape (N, n) and (N, m) (or one pair, (n,) and (m,))
        Potentials; ``-inf`` (zero-mass atoms) and NaN-free values expected. A NaN counts as
        an infinite error rather than vanishing.
    a, b : array-like of shape (N, n) and (N, m)
        The problem's own weights (not any floored copy a peer was given).
    cost : torch.Tensor of shape (n, m) or (N, n, m)
    epsilon : float

    Returns
    -------
    numpy.ndarray of shape (N,)
    """
    f, g, a, b = (_float64(v) for v in (f, g, a, b))
    f, g, a, b = (v.reshape(-1, v.shape[-1]) for v in (f, g, a, b))
    cost = cost.to(torch.float64)
    errors = np.empty(f.shape[0])
    for k in range(f.shape[0]):  # one pair at a time: a (N, n, m) float64 block can be large
        c = cost if cost.ndim == 2 else cost[k]
        if not (torch.isfinite(f[k]) | (f[k] == -np.inf)).all() or g[k].isnan().any():
            errors[k] = np.inf
            continue
        log_plan = (f[k][:, None] + g[k][None, :] - c) / epsilon
        rows = torch.logsumexp(log_plan, 1).exp()
        cols = torch.logsumexp(log_plan, 0).exp()
        errors[k] = float((rows - a[k]).abs().sum() + (cols - b[k]).abs().sum())
    return errors


def plan_error(plan: Any, a: Any, b: Any) -> float:
    """L1 marginal error of one plan (POT's), in float64."""
    plan = np.asarray(plan, dtype=np.float64)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not np.isfinite(plan).all():
        return float("inf")
    return float(np.abs(plan.sum(1) - a).sum() + np.abs(plan.sum(0) - b).sum())


def median_time(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` runs of ``function`` and the last result."""
    seconds, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), result


class OttSinkhorn:
    """OTT-JAX's Sinkhorn for one geometry, tolerance, dtype and batch size, compiled once.

    The same stopping rule as ours: ``norm_error=1`` and ``threshold=tol`` make OTT stop on the
    L1 error of its b-marginal (its a-marginal is exact after its last update, so this is the
    L1 error of eq. (7)), checked every ``inner_iterations`` (1: every iteration, as ours).
    :meth:`compile` is timed apart from the runs.

    Parameters
    ----------
    make_geometry : callable
        ``make_geometry(*geometry_args)`` returns the OTT geometry; it is called inside the
        compiled function.
    tol : float
    dtype : {"float32", "float64"}
    batch : bool
        ``vmap`` over a leading batch dimension of ``a`` and ``b`` (every problem runs until
        the slowest one stops: that is how OTT batches).
    max_iter : int, default=5000
    inner_iterations : int, default=1
    initializer : optional
        An OTT initializer (e.g. a trained ``MetaInitializer``).
    threshold : float, optional
        OTT's threshold, if not ``tol`` (0 runs exactly ``max_iter`` iterations).
    geometry_args : tuple of arrays, default=()
        Arguments of ``make_geometry`` passed to the compiled function at every call (large
        arrays such as a cost matrix, which would otherwise be constants of the program),
        shared by a batch.
    """

    def __init__(self, make_geometry: Callable[[], Any], tol: float, dtype: str, batch: bool,
                 *, max_iter: int = 5000, inner_iterations: int = 1,
                 initializer: Any = None, threshold: float | None = None,
                 geometry_args: tuple = ()) -> None:
        import jax

        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn

        solver = sinkhorn.Sinkhorn(threshold=tol if threshold is None else threshold,
                                   norm_error=1, inner_iterations=inner_iterations,
                                   max_iterations=max_iter, initializer=initializer)

        def solve(a, b, *args):
            out = solver(linear_problem.LinearProblem(make_geometry(*args), a, b))
            return out.f, out.g, out.n_iters

        self.dtype = dtype
        axes = (0, 0) + (None,) * len(geometry_args)
        self._function = jax.jit(jax.vmap(solve, in_axes=axes) if batch else solve)
        self._args = tuple(jax.numpy.asarray(np.asarray(v, dtype=dtype)) for v in geometry_args)
        self._compiled = None

    def compile(self, a: np.ndarray, b: np.ndarray) -> float:
        """Compile for the shapes of ``a`` and ``b``; return the seconds it took."""
        start = time.perf_counter()
        self._compiled = self._function.lower(*self._cast(a, b), *self._args).compile()
        return time.perf_counter() - start

    def _cast(self, a, b):
        import jax.numpy as jnp

        return (jnp.asarray(np.asarray(a, dtype=self.dtype)),
                jnp.asarray(np.asarray(b, dtype=self.dtype)))

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Solve; return numpy ``(f, g, n_iters)`` (the copy waits for the computation)."""
        if self._compiled is None:
            self.compile(a, b)
        f, g, n_iters = self._compiled(*self._cast(a, b), *self._args)
        return np.asarray(f), np.asarray(g), np.asarray(n_iters)


def ott_grid(grid_coordinates: list[np.ndarray], epsilon: float, dtype: str) -> Callable:
    """A ``make_geometry`` for OTT's separable ``Grid`` (squared Euclidean per axis)."""
    def make():
        import jax.numpy as jnp
        from ott.geometry import grid

        return grid.Grid(x=[jnp.asarray(c, dtype=dtype) for c in grid_coordinates],
                         epsilon=epsilon)
    return make


def ott_pointcloud(x: np.ndarray, y: np.ndarray, epsilon: float, dtype: str) -> Callable:
    """A ``make_geometry`` for OTT's ``PointCloud`` with its squared Euclidean cost."""
    def make():
        import jax.numpy as jnp
        from ott.geometry import pointcloud

        return pointcloud.PointCloud(jnp.asarray(x, dtype=dtype), jnp.asarray(y, dtype=dtype),
                                     epsilon=epsilon)
    return make


def ott_cost_matrix(epsilon: float) -> Callable:
    """A ``make_geometry(cost)`` for OTT's dense ``Geometry(cost_matrix=cost)``."""
    def make(cost):
        from ott.geometry import geometry

        return geometry.Geometry(cost_matrix=cost, epsilon=epsilon)
    return make


def ott_spherical_pointcloud(epsilon: float, shrink: float) -> Callable:
    """A ``make_geometry(x, y)`` for OTT's ``PointCloud`` with our spherical cost.

    The geodesic distance ``arccos(<x, y> / (1 + shrink))`` of
    :func:`skmetaot.costs.spherical`, as an OTT ``CostFn``.
    """
    import jax
    import jax.numpy as jnp
    from ott.geometry import costs, pointcloud

    @jax.tree_util.register_pytree_node_class
    class Geodesic(costs.CostFn):
        def __call__(self, x, y):
            return jnp.arccos(jnp.clip(jnp.vdot(x, y) / (1 + shrink), -1.0, 1.0))

    def make(x, y):
        return pointcloud.PointCloud(x, y, epsilon=epsilon, cost_fn=Geodesic())
    return make


def geomloss_solve(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float,
                   n_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GeomLoss's matrix solver (``geomloss.ot.solve_batch``) on a batch; our potentials.

    GeomLoss has no tolerance: it runs ``n_iter`` symmetric Sinkhorn steps along a fixed
    epsilon-annealing schedule (from the cost's range down to ``epsilon``) and stops. Its
    potentials are relative to ``a x b``; ``f + eps log a`` is ours.

    Parameters
    ----------
    cost : torch.Tensor of shape (n, m)
    a, b : torch.Tensor of shape (N, n) and (N, m)
    epsilon : float
    n_iter : int

    Returns
    -------
    f, g : torch.Tensor of shapes (N, n) and (N, m), float64
    """
    from geomloss import ot as geomloss_ot

    batch = cost.to(a.dtype)[None].expand(a.shape[0], -1, -1).contiguous()
    result = geomloss_ot.solve_batch(batch, reg=epsilon, a=a, b=b, max_iter=n_iter)
    f = result.potential_a.double() + epsilon * torch.log(a.double())
    g = result.potential_b.double() + epsilon * torch.log(b.double())
    return f, g
