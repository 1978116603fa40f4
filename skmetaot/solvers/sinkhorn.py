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

On grid kernels whose entries stay well inside float64 (``scaling_range``, the largest
``C / eps``, at most :data:`SCALING_RANGE`), the same iterates are computed in the scaling
domain (``u = exp(F)``, ``v = exp(G)``: two matrix products and a division per half-step, no
``exp`` or ``log``), which at batch 1 needs a third of the operator calls. A batch whose
products are not all exact, or that meets a non-finite number, is redone in the log domain.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from dataclasses import dataclass

import torch
from sklearn.exceptions import ConvergenceWarning

from skmetaot._softmin import exp_floor, exp_or_zero_, log_weights
from skmetaot.geometry import Geometry, GridGeometry

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


def scale_on_support(potential: torch.Tensor, weights: torch.Tensor, epsilon: float):
    """``potential / eps`` on atoms with mass and -inf on zero-weight atoms.

    Parameters
    ----------
    potential : torch.Tensor of shape (B, n)
        Potential in cost units (its values on zero-weight atoms are ignored).
    weights : torch.Tensor of shape (B, n)
    epsilon : float

    Returns
    -------
    torch.Tensor of shape (B, n)
    """
    return torch.where(weights > 0, potential / epsilon,
                       torch.full_like(potential, float("-inf")))


def update_potential(geometry: Geometry, potential: torch.Tensor, log_weights: torch.Tensor,
                     axis: int) -> torch.Tensor:
    """The Sinkhorn half-step, in scaled units: the one implementation every caller uses.

    ``axis=0`` updates the target potential from the source one,
    ``G_j = log b_j - LSE_i(F_i - C_ij / eps)`` (the c-transform: the b-marginal of (F, G) is
    then exact); ``axis=1`` the source potential from the target one,
    ``F_i = log a_i - LSE_j(G_j - C_ij / eps)``. As OTT-JAX's
    ``Geometry.update_potential``, in log space.

    Parameters
    ----------
    geometry : Geometry
    potential : torch.Tensor of shape (B, n) for axis 0, (B, m) for axis 1
        The other side's potential divided by epsilon, -inf on zero-weight atoms.
    log_weights : torch.Tensor of shape (B, m) for axis 0, (B, n) for axis 1
        Log weights of the side being updated (``skmetaot._softmin.log_weights``: -inf on
        zero weights).
    axis : {0, 1}

    Returns
    -------
    torch.Tensor
        The updated scaled potential (-inf on zero-weight atoms).

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> geometry = DenseGeometry(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), epsilon=1.0)
    >>> log_b = torch.log(torch.tensor([[0.5, 0.5]]))
    >>> update_potential(geometry, torch.zeros(1, 2), log_b, axis=0)
    tensor([[-1.0064, -1.0064]])
    """
    reduce = geometry.lse_source if axis == 0 else geometry.lse_target
    return log_weights - reduce(potential)


def sweep(geometry: Geometry, scaled_f: torch.Tensor, log_b: torch.Tensor):
    """One g-update and the soft-min of the following f-update, in scaled units.

    Returns ``G = log b - LSE_i(F_i - C_ij/eps)`` (so the b-marginal of (F, G) is exact) and
    ``k = LSE_j(G_j - C_ij/eps)``: the a-marginal of (F, G) is ``exp(F + k)`` and the next
    f-update is ``log a - k``.

    Parameters
    ----------
    geometry : Geometry
    scaled_f : torch.Tensor of shape (B, n)
        ``f / eps``, -inf on zero-weight atoms.
    log_b : torch.Tensor of shape (B, m)

    Returns
    -------
    scaled_g : torch.Tensor of shape (B, m)
    soft_min : torch.Tensor of shape (B, n)
    """
    scaled_g = update_potential(geometry, scaled_f, log_b, 0)
    return scaled_g, geometry.lse_target(scaled_g)


def source_marginal_error(scaled_f: torch.Tensor, soft_min: torch.Tensor, a: torch.Tensor):
    """L1 error ``|exp(F + k) - a|_1`` of the a-marginal (eq. (7) once the b-marginal is exact).

    Parameters
    ----------
    scaled_f, soft_min : torch.Tensor of shape (B, n)
        As returned around :func:`sweep` (``exp(-inf) = 0`` on zero-weight atoms).
    a : torch.Tensor of shape (B, n)

    Returns
    -------
    torch.Tensor of shape (B,)
    """
    # The clamp keeps exp off its slow path on the -inf of zero-weight atoms (1e-307, not 0).
    # Not in place: the meta-training losses differentiate through this.
    log_marginal = (scaled_f + soft_min).clamp_min(exp_floor(scaled_f.dtype))
    return (torch.exp(log_marginal) - a).abs().sum(-1)


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

    Grid kernels whose entries stay inside float64's range (``scaling_range`` up to
    ``SCALING_RANGE``) iterate in the scaling domain instead: the same iterates with a third
    of the operator calls, falling back to the log domain whenever a product is not exact.

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
    scaling = _scaling_applies(geometry, work, a, b, f_init)
    # Grids in the scaling domain keep their atoms without mass (they cost nothing there, and
    # at batch 1 the restriction's operator calls would cost more than smaller products save).
    sizes = None
    if not (scaling and isinstance(geometry, GridGeometry)):
        geometry, a, b, f_init, sizes = _restrict(geometry, a, b, f_init)
    outputs = None
    if scaling:
        wide_a = a.to(work)
        start = None if f_init is None else scale_on_support(f_init.to(work), wide_a, eps)
        outputs = _scaling_iterations(geometry, wide_a, b.to(work), start, tol=tol,
                                      max_iter=max_iter)
    certified = outputs is not None  # finite products only: no NaN can have come out
    if outputs is None:
        if sizes is None:
            geometry, a, b, f_init, sizes = _restrict(geometry, a, b, f_init)
        wide_a = a.to(work)
        start = torch.zeros_like(wide_a) if f_init is None else f_init.to(work)
        outputs = _log_iterations(geometry, wide_a, b.to(work),
                                  scale_on_support(start, wide_a, eps), tol=tol,
                                  max_iter=max_iter)
    out_f, out_g, n_iter, errors = outputs
    f, g = (out_f * eps).to(out_dtype), (out_g * eps).to(out_dtype)
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
    converged = errors < tol
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


#: Scaling iterations are tried when ``max C / eps`` is at most this: every kernel entry is then
#: at least ``exp(-230) = 1e-100``, well inside float64 and above ``KERNEL_FLOOR``.
SCALING_RANGE = 230.0


def _scaling_applies(geometry: Geometry, work: torch.dtype, a: torch.Tensor, b: torch.Tensor,
                     f_init: torch.Tensor | None) -> bool:
    """Whether the scaling-domain fast path may run (it still falls back when it must)."""
    if work != torch.float64 or getattr(geometry, "scaling_range", math.inf) > SCALING_RANGE:
        return False
    # Its products carry no graph: differentiable solves take the log domain.
    return not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad or (
        f_init is not None and f_init.requires_grad)))


class _Finished:
    """The results of the problems that stopped, and which problems are still iterating.

    The result tensors are allocated at the first :meth:`record` (a batch that stops all
    at once never needs them).
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        self.a, self.b = a, b
        self.recorded = False

    def record(self, done: torch.Tensor, f_done: torch.Tensor, g_done: torch.Tensor,
               err: torch.Tensor, iteration: int) -> torch.Tensor | None:
        """Store the problems marked ``done``, given their rows of f and g.

        Returns the mask of the problems that go on, or None when all are done.
        """
        if not self.recorded:
            a, batch = self.a, self.a.shape[0]
            self.f, self.g = torch.empty_like(a), torch.empty_like(self.b)
            self.n_iter = torch.zeros(batch, dtype=torch.long, device=a.device)
            self.errors = torch.full((batch,), float("inf"), dtype=a.dtype, device=a.device)
            self.active = torch.arange(batch, device=a.device)
            self.recorded = True
        finished = self.active[done]
        self.f[finished], self.g[finished] = f_done, g_done
        self.errors[finished] = err[done]
        self.n_iter[finished] = iteration + 1
        keep = ~done
        if not bool(keep.any()):
            return None
        self.active = self.active[keep]
        return keep

    def outputs(self):
        return self.f, self.g, self.n_iter, self.errors


def _log_iterations(geometry: Geometry, a: torch.Tensor, b: torch.Tensor,
                    scaled_f: torch.Tensor, *, tol: float, max_iter: int):
    """The log-domain loop (module docstring); returns scaled (f, g), iterations, errors."""
    log_a, log_b = log_weights(a), log_weights(b)  # -inf on zero weights, by design
    results = _Finished(a, b)
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


#: A kernel product of n terms is exact to float64 rounding when it is at least n times this
#: (terms below ``KERNEL_FLOOR`` were dropped); results with smaller products are redone.
_EXACT_PER_TERM = 1e-134
#: Batches check every this many iterations that no problem has gone non-finite (at batch 1
#: the stopping test sees a NaN at once).
_FINITE_EVERY = 16


def _scaling_iterations(geometry: Geometry, a: torch.Tensor, b: torch.Tensor,
                        scaled_f: torch.Tensor | None, *, tol: float, max_iter: int):
    """The same iterations in the scaling domain, or None when the log domain must do them.

    With ``u = exp(F - c)`` (c: each problem's largest F, so that u <= 1), ``v = exp(G + c)``
    and ``K = exp(-C / eps)``, the loop of the module docstring is ``v = b / K^T u``,
    ``t = K v``, error ``|u t - a|_1``, ``u = a / t``: the same iterates, without the exp and
    log of each soft-min, on tensors laid out on the grid (at batch 1, where operator calls are
    the cost, a third of the log domain's). ``scaled_f=None`` is the cold start. Results
    stand when the products they come from are exact (every entry at least ``n * 1e-134``) and
    finite; otherwise the whole batch goes back to the log domain.
    """
    grid_dims = geometry.layout_dims(a.shape[0])
    a_grid, b_grid = geometry.grid_layout(a, 0), geometry.grid_layout(b, 1)
    base = geometry
    if scaled_f is None:
        shift, u = None, (a_grid > 0).to(a.dtype)
    else:
        shift = scaled_f.amax(-1, keepdim=True)  # finite: f is finite on the support
        u = geometry.grid_layout(exp_or_zero_(scaled_f - shift), 0)
    guard = max(a.shape[1], b.shape[1]) * _EXACT_PER_TERM
    results = _Finished(a, b)
    last = max_iter - 1
    for iteration in range(max_iter):
        s = geometry.apply_kernel(u, 0, grid_layout=True)
        v = b_grid / s
        t = geometry.apply_kernel(v, 1, grid_layout=True)
        err = torch.linalg.vector_norm(torch.addcmul(a_grid, u, t, value=-1.0), 1, grid_dims)
        single = err.ndim == 0
        lowest = float(err) if single else float(err.min())
        if lowest != lowest or (not single and iteration % _FINITE_EVERY == 0
                                and not bool(torch.isfinite(err).all())):
            return None
        if lowest < tol or iteration == last:
            done = err < tol if iteration < last else torch.ones_like(err, dtype=torch.bool)
            every = single or bool(done.all())
            rows = (s, t, u, v, err) if every else [x[done] for x in (s, t, u, v, err)]
            s_done, t_done, u_done, v_done, err_done = rows
            # One synchronisation: the smallest products (NaN fails too) and the worst error.
            low, worst = torch.stack((torch.minimum(s_done.amin(), t_done.amin()),
                                      err_done.max())).tolist()
            if not (low >= guard and worst < math.inf):
                return None
            count = 1 if single else len(err_done)
            f_done = log_weights(u_done).view(count, -1)
            g_done = log_weights(v_done).view(count, -1)
            if shift is not None:
                shift_done = shift if every else shift[done]
                f_done, g_done = f_done.add_(shift_done), g_done.sub_(shift_done)
            if every and not results.recorded:
                # Everything stopped together (always so at batch 1): no bookkeeping.
                n_iter = torch.full((count,), iteration + 1, dtype=torch.long, device=a.device)
                return f_done, g_done, n_iter, err.view(-1)
            keep = results.record(done, f_done, g_done, err, iteration)
            if keep is None:
                break
            t, a_grid, b_grid = t[keep], a_grid[keep], b_grid[keep]
            shift = None if shift is None else shift[keep]
            geometry = base.select(results.active)
        u = a_grid / t
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


def c_transform(
    geometry: Geometry, f: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """``g(f)_j = eps log b_j - eps LSE_i((f_i - C_ij)/eps)`` (eq. (8) of the Meta OT paper).

    Source atoms with zero weight are excluded (their potential is -inf), so that the
    b-marginal of the plan of ``(f, g(f))`` is exactly ``b``.

    Parameters
    ----------
    geometry : Geometry
    f : torch.Tensor of shape (B, n)
    a : torch.Tensor of shape (B, n)
    b : torch.Tensor of shape (B, m)

    Returns
    -------
    torch.Tensor of shape (B, m)

    Examples
    --------
    Whatever ``f``, the plan of ``(f, g(f))`` has the target marginal ``b``:

    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> cost = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    >>> geometry = DenseGeometry(cost, epsilon=0.1)
    >>> f = torch.tensor([[0.3, -0.2, 0.1]], dtype=torch.float64)
    >>> a = torch.full((1, 3), 1 / 3, dtype=torch.float64)
    >>> b = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    >>> g = c_transform(geometry, f, a, b)
    >>> transport_plan(cost, f, g, 0.1).sum(-2)
    tensor([[0.2500, 0.7500]], dtype=torch.float64)
    """
    eps = geometry.epsilon
    return eps * update_potential(geometry, scale_on_support(f, a, eps), log_weights(b), 0)
