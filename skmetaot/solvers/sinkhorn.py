"""Batched log-domain Sinkhorn.

Many entropic OT problems are solved at once, each stopping on its own L1 marginal error
(eq. (7) of the Meta OT paper: ``|P 1 - a|_1 + |P^T 1 - b|_1``). Each iteration is

1. ``g = g(f)``: ``g_j = eps log b_j - eps LSE_i((f_i - C_ij)/eps)`` (b-marginal now exact);
2. the soft-min ``k_i = LSE_j((g_j - C_ij)/eps)``, which gives the a-marginal of (f, g) for free,
   hence the error of eq. (7); problems under the tolerance stop here and return (f, g) with
   g = g(f) exactly;
3. ``f_i = eps log a_i - eps k_i`` for the others.

Finished problems leave the working batch, so they stop costing work. Zero weights give
potentials of -inf on those atoms (their rows/columns of the plan are exactly zero, as in POT's
``log_u``), with no NaN anywhere. Problems that reach ``max_iter`` above the tolerance are
reported by one :class:`~sklearn.exceptions.ConvergenceWarning` per call
(``warn_unconverged``).

Where the kernel allows, the same iterates are computed in the scaling domain
(``skmetaot.solvers.scaling``): with the plain kernel when its entries stay inside float64
(grids and dense costs with ``max C / eps`` up to 230), with a stabilised, absorbed kernel on
dense costs at smaller epsilon. The half-step itself is ``skmetaot.solvers.halfstep``.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

import torch
from sklearn.exceptions import ConvergenceWarning

from skmetaot._softmin import log_weights
from skmetaot.geometry import Geometry, GridGeometry
from skmetaot.solvers import scaling

# Re-exported: the half-step lived here before halfstep.py held it.
from skmetaot.solvers.halfstep import (  # noqa: F401
    c_transform,
    scale_on_support,
    source_marginal_error,
    sweep,
    update_potential,
)

# Re-exported: they lived here before plans.py held them.
from skmetaot.solvers.plans import barycentric_map, plan_values, transport_plan  # noqa: F401


@dataclass
class SinkhornState:
    """Result of :func:`solve_batch` for B problems (torch tensors).

    Attributes
    ----------
    f, g : torch.Tensor of shape (B, n), (B, m)
        Dual potentials in cost units (-inf on zero-weight atoms); g = g(f) exactly.
    n_iter : torch.Tensor of shape (B,)
        Iterations (g-updates) each problem took.
    errors : torch.Tensor of shape (B,)
        L1 marginal error of eq. (7) at the returned potentials.
    converged : torch.Tensor of shape (B,)
        ``errors < tol``.

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> from skmetaot.solvers import solve_batch
    >>> a = b = torch.full((1, 3), 1 / 3, dtype=torch.float64)
    >>> cost = torch.tensor([[0.0, 1.0, 4.0], [1.0, 0.0, 1.0], [4.0, 1.0, 0.0]],
    ...                     dtype=torch.float64)
    >>> state = solve_batch(DenseGeometry(cost, 0.5), a, b, torch.zeros_like(a), tol=1e-8,
    ...                     max_iter=100)
    >>> state.f.shape, state.converged.tolist(), bool(state.errors[0] < 1e-8)
    (torch.Size([1, 3]), [True], True)
    """

    f: torch.Tensor
    g: torch.Tensor
    n_iter: torch.Tensor
    errors: torch.Tensor
    converged: torch.Tensor


def solve_batch(
    geometry: Geometry,
    a: torch.Tensor,
    b: torch.Tensor,
    f_init: torch.Tensor | None,
    *,
    tol: float,
    max_iter: int,
    warn: bool = True,
) -> SinkhornState:
    """Run log-domain Sinkhorn on a batch of problems sharing one geometry.

    Where the kernel allows, the iterations run in the scaling domain
    (``skmetaot.solvers.scaling``): the same iterates, certified exact, with fewer
    operations; otherwise, and whenever a product is not exact, in the log domain.

    Parameters
    ----------
    geometry : Geometry
        The kernel (holds the cost and epsilon; batched dense costs hold B matrices).
    a : torch.Tensor of shape (B, n)
        Source weights (each row sums to one; zeros allowed).
    b : torch.Tensor of shape (B, m)
        Target weights.
    f_init : torch.Tensor of shape (B, n) or None
        Initial source potential in cost units (values on zero-weight atoms are ignored);
        None is the cold start f = 0.
    tol : float
        Stop a problem once its L1 marginal error (eq. (7)) is below ``tol``.
    max_iter : int
        At most this many iterations per problem.
    warn : bool, default=True
        Issue a :class:`~sklearn.exceptions.ConvergenceWarning` when problems stop at
        ``max_iter`` with an error above ``tol`` (one per call, with the count and the worst
        error).

    Returns
    -------
    SinkhornState

    Examples
    --------
    Two problems on one shared 1-D support, solved together; each stops on its own error:

    >>> import torch
    >>> from skmetaot.costs import sqeuclidean
    >>> from skmetaot.geometry import DenseGeometry
    >>> x = torch.linspace(0, 1, 5, dtype=torch.float64)[:, None]
    >>> geometry = DenseGeometry(sqeuclidean(x, x), epsilon=0.05)
    >>> a = torch.tensor([[0.2] * 5, [0.4, 0.3, 0.2, 0.1, 0.0]], dtype=torch.float64)
    >>> b = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4], [0.2] * 5], dtype=torch.float64)
    >>> state = solve_batch(geometry, a, b, torch.zeros_like(a), tol=1e-6, max_iter=1000)
    >>> state.converged.tolist(), bool((state.errors < 1e-6).all())
    ([True, True], True)
    >>> torch.isinf(state.f[1]).tolist()  # zero weight: potential -inf, never NaN
    [False, False, False, False, True]
    """
    eps = geometry.epsilon
    out_dtype = a.dtype
    # Iterate in the dtype the kernel computes in (float64 for the matrix-product kernels):
    # no conversion per reduction, and the float32 result is rounded once, at the end.
    work = getattr(geometry, "work_dtype", a.dtype)
    fast = scaling.scaling_applies(geometry, work, a, b, f_init)
    chunk = a.shape[0] if fast else scaling.absorbing_chunk(geometry, work, a, b, f_init)
    if chunk < a.shape[0]:
        # Each chunk restricted to its own atoms with mass, its kernels within the cache.
        parts = [solve_batch(geometry.select(rows), a[rows], b[rows],
                             None if f_init is None else f_init[rows], tol=tol,
                             max_iter=max_iter, warn=False)
                 for rows in torch.arange(a.shape[0], device=a.device).split(chunk)]
        state = SinkhornState(*(torch.cat([getattr(part, name) for part in parts])
                                for name in ("f", "g", "n_iter", "errors", "converged")))
        if warn:
            warn_unconverged(state.errors, state.converged, tol=tol, max_iter=max_iter)
        return state
    # Grids in the scaling domain keep their atoms without mass (they cost nothing there, and
    # at batch 1 the restriction's operator calls would cost more than smaller products save).
    sizes = None
    if not (fast and isinstance(geometry, GridGeometry)):
        geometry, a, b, f_init, sizes = _restrict(geometry, a, b, f_init)
    outputs = None
    wide_a, wide_b = a.to(work), b.to(work)
    start = None if f_init is None else scale_on_support(f_init.to(work), wide_a, eps)
    if fast:
        outputs = scaling.scaling_iterations(geometry, wide_a, wide_b, start, tol=tol,
                                             max_iter=max_iter)
    elif scaling.absorbing_applies(geometry, work, wide_a, wide_b, f_init):
        outputs = scaling.absorbing_iterations(geometry, wide_a, wide_b, start, tol=tol,
                                               max_iter=max_iter)
    certified = fast and outputs is not None  # finite products only: no NaN came out
    if outputs is None:
        if sizes is None:
            geometry, a, b, f_init, sizes = _restrict(geometry, a, b, f_init)
            wide_a, wide_b = a.to(work), b.to(work)
            start = None if f_init is None else scale_on_support(f_init.to(work), wide_a, eps)
        if start is None:
            start = scale_on_support(torch.zeros_like(wide_a), wide_a, eps)
        outputs = _log_iterations(geometry, wide_a, wide_b, start, tol=tol, max_iter=max_iter)
    out_f, out_g, n_iter, errors = outputs
    f, g = (out_f * eps).to(out_dtype), (out_g * eps).to(out_dtype)
    # Decided in the dtype the loop stopped on: an error just under tol may round up to it
    # in float32, and the problem would read as unconverged though it stopped converged.
    converged = errors < tol
    errors = errors.to(out_dtype)
    source_index, target_index, full_sizes = sizes or (None, None, None)
    if full_sizes is not None:
        f = _scatter(f, source_index, full_sizes[0])
        g = _scatter(g, target_index, full_sizes[1])
    if not certified:
        bad = torch.isnan(f).any(-1) | torch.isnan(g).any(-1) | torch.isnan(errors)
        if bool(bad.any()):
            raise FloatingPointError(
                f"Sinkhorn produced NaN for problems {bad.nonzero()[:, 0].tolist()[:10]}; "
                "check the cost matrix and epsilon"
            )
    if warn:
        warn_unconverged(errors, converged, tol=tol, max_iter=max_iter)
    return SinkhornState(f=f, g=g, n_iter=n_iter, errors=errors, converged=converged)


def _restrict(geometry: Geometry, a: torch.Tensor, b: torch.Tensor, f_init: torch.Tensor | None):
    """Drop the atoms without mass in every problem of the batch (they never contribute).

    Returns the restricted ``geometry, a, b, f_init`` and ``(source_index, target_index,
    full_sizes)``, whose ``full_sizes`` is None when nothing was dropped.
    """
    full_sizes = (a.shape[1], b.shape[1])
    geometry, source_index, target_index = geometry.restrict((a > 0).any(0), (b > 0).any(0))
    if len(source_index) == full_sizes[0] and len(target_index) == full_sizes[1]:
        return geometry, a, b, f_init, (source_index, target_index, None)
    a, b = a[:, source_index], b[:, target_index]
    f_init = None if f_init is None else f_init[:, source_index]
    return geometry, a, b, f_init, (source_index, target_index, full_sizes)


def _log_iterations(geometry: Geometry, a: torch.Tensor, b: torch.Tensor,
                    scaled_f: torch.Tensor, *, tol: float, max_iter: int):
    """The log-domain loop (module docstring); returns scaled (f, g), iterations, errors."""
    log_a, log_b = log_weights(a), log_weights(b)  # -inf on zero weights, by design
    results = scaling.Finished(a, b)
    geom, weights_a = geometry, a
    last = max_iter - 1
    for iteration in range(max_iter):
        scaled_g, soft_min = sweep(geom, scaled_f, log_b)
        err = source_marginal_error(scaled_f, soft_min, weights_a)
        # One host synchronisation per iteration: the smallest error says whether any stops.
        if float(err.min()) < tol or iteration == last:
            done = err < tol if iteration < last else torch.ones_like(err, dtype=torch.bool)
            keep = results.record(done, scaled_f[done], scaled_g[done], err, iteration)
            if keep is None:
                break
            geom = geometry.select(results.active)
            scaled_f, soft_min = scaled_f[keep], soft_min[keep]
            weights_a, log_a, log_b = weights_a[keep], log_a[keep], log_b[keep]
        scaled_f = log_a - soft_min
    return results.outputs()


def warn_unconverged(errors: torch.Tensor, converged: torch.Tensor, *, tol: float,
                     max_iter: int) -> None:
    """One :class:`~sklearn.exceptions.ConvergenceWarning` for the problems that did not converge.

    Says how many problems (of how many) stopped at ``max_iter`` with an error above ``tol``,
    and the worst error and its problem; nothing when all converged. The warning points at the
    first caller outside skmetaot, so that Python's filters (``warnings.simplefilter``) and
    ``warn=False`` on :func:`~skmetaot.sinkhorn` and :func:`solve_pairs` silence it.

    Parameters
    ----------
    errors : torch.Tensor of shape (N,)
        L1 marginal errors of the solved problems.
    converged : torch.Tensor of bool, shape (N,)
    tol : float
    max_iter : int

    Examples
    --------
    >>> import warnings
    >>> import torch
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_unconverged(torch.tensor([1e-4, 0.3, 0.02]), torch.tensor([True, False, False]),
    ...                      tol=1e-3, max_iter=1000)
    >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
    Sinkhorn did not converge: 2 of 3 problems stopped at max_iter=1000 with an L1 marginal
    error above tol=0.001 (worst 0.3, problem 1). Increase max_iter or epsilon, or pass
    warn=False to silence this warning.
    """
    failed = ~converged
    count = int(failed.sum())
    if not count:
        return
    worst_error, worst = torch.where(failed, errors, torch.zeros_like(errors)).max(0)
    warnings.warn(
        f"Sinkhorn did not converge: {count} of {len(errors)} problem"
        f"{'s' if len(errors) > 1 else ''} stopped at max_iter={max_iter} with an L1 marginal "
        f"error above tol={tol:g} (worst {float(worst_error):.3g}, problem {int(worst)}). "
        "Increase max_iter or epsilon, or pass warn=False to silence this warning.",
        ConvergenceWarning, stacklevel=_outside_package())


#: The package's directory: frames from files under it are skmetaot's own.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _outside_package() -> int:
    """``stacklevel`` for :func:`warnings.warn` that names the first frame outside skmetaot."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR + os.sep):
        level, frame = level + 1, frame.f_back
    return level


def _scatter(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Put restricted potentials back on the full support (-inf on the dropped atoms)."""
    out = values.new_full((values.shape[0], size), float("-inf"))
    out[:, index] = values
    return out
