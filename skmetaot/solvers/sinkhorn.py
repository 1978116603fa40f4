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
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

import torch
from sklearn.exceptions import ConvergenceWarning

from skmetaot._softmin import exp_floor, log_weights
from skmetaot.geometry import Geometry


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
    f_init: torch.Tensor,
    *,
    tol: float,
    max_iter: int,
    warn: bool = True,
) -> SinkhornState:
    """Run log-domain Sinkhorn on a batch of problems sharing one geometry.

    Parameters
    ----------
    geometry : Geometry
        The kernel (holds the cost and epsilon; batched dense costs hold B matrices).
    a : torch.Tensor of shape (B, n)
        Source weights (each row sums to one; zeros allowed).
    b : torch.Tensor of shape (B, m)
        Target weights.
    f_init : torch.Tensor of shape (B, n)
        Initial source potential in cost units (values on zero-weight atoms are ignored).
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
    full_sizes = (a.shape[1], b.shape[1])
    # Atoms without mass in any problem of the batch never contribute: solve without them.
    geometry, source_index, target_index = geometry.restrict((a > 0).any(0), (b > 0).any(0))
    restricted = len(source_index) < full_sizes[0] or len(target_index) < full_sizes[1]
    if restricted:
        a, b, f_init = a[:, source_index], b[:, target_index], f_init[:, source_index]
    eps = geometry.epsilon
    batch = a.shape[0]
    out_dtype = a.dtype
    # Iterate in the dtype the kernel computes in (float64 for the matrix-product kernels):
    # no conversion per reduction, and the float32 result is rounded once, at the end.
    work = getattr(geometry, "work_dtype", a.dtype)
    a, b, f_init = a.to(work), b.to(work), f_init.to(work)
    log_a, log_b = log_weights(a), log_weights(b)  # -inf on zero weights, by design
    scaled_f = scale_on_support(f_init, a, eps)

    out_f = torch.empty_like(scaled_f)
    out_g = torch.empty_like(b)
    n_iter = torch.zeros(batch, dtype=torch.long, device=a.device)
    errors = torch.full((batch,), float("inf"), dtype=a.dtype, device=a.device)
    active = torch.arange(batch, device=a.device)
    geom, weights_a, log_a_act, log_b_act = geometry, a, log_a, log_b

    last = max_iter - 1
    for iteration in range(max_iter):
        scaled_g, soft_min = sweep(geom, scaled_f, log_b_act)
        err = source_marginal_error(scaled_f, soft_min, weights_a)
        # One host synchronisation per iteration: the smallest error says whether any stops.
        if float(err.min()) < tol or iteration == last:
            done = err < tol if iteration < last else torch.ones_like(err, dtype=torch.bool)
            finished = active[done]
            out_f[finished] = scaled_f[done]
            out_g[finished] = scaled_g[done]
            errors[finished] = err[done]
            n_iter[finished] = iteration + 1
            keep = ~done
            if not bool(keep.any()):
                break
            active = active[keep]
            geom = geometry.select(active)
            scaled_f, soft_min = scaled_f[keep], soft_min[keep]
            weights_a, log_a_act, log_b_act = weights_a[keep], log_a_act[keep], log_b_act[keep]
        scaled_f = log_a_act - soft_min

    f, g = (out_f * eps).to(out_dtype), (out_g * eps).to(out_dtype)
    errors = errors.to(out_dtype)
    if restricted:
        f = _scatter(f, source_index, full_sizes[0])
        g = _scatter(g, target_index, full_sizes[1])
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


def transport_plan(cost: torch.Tensor, f: torch.Tensor, g: torch.Tensor, epsilon: float):
    """The entropic plan ``P_ij = exp((f_i + g_j - C_ij) / eps)``.

    Parameters
    ----------
    cost : torch.Tensor of shape (n, m) or (B, n, m)
    f : torch.Tensor of shape (B, n)
    g : torch.Tensor of shape (B, m)
    epsilon : float

    Returns
    -------
    torch.Tensor of shape (B, n, m)

    Examples
    --------
    >>> import torch
    >>> transport_plan(torch.zeros(2, 2), torch.zeros(1, 2), torch.log(torch.full((1, 2), 0.25)),
    ...                epsilon=1.0)
    tensor([[[0.2500, 0.2500],
             [0.2500, 0.2500]]])
    """
    return torch.exp((f[:, :, None] + g[:, None, :] - cost) / epsilon)


def plan_values(
    geometry: Geometry, f: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropic primal value and ``<C, P>`` of the plans of ``(f, g)``, without forming them.

    With ``log P_ij = (f_i + g_j - C_ij) / eps``, the entropic primal
    ``<C, P> - eps H(P)`` (``H(P) = -sum P (log P - 1)``) equals
    ``<f, P 1> + <g, P^T 1> - eps sum P``: two marginals, i.e. one Sinkhorn step. ``<C, P>``
    comes from :meth:`~skmetaot.geometry.DenseGeometry.transport_cost`. So the values of a
    batch of solved pairs cost O(B (n + m)) memory (O(B n^{1 + 1/D}) on grids), not O(B n m).

    Parameters
    ----------
    geometry : Geometry
    f : torch.Tensor of shape (B, n)
        Source potentials in cost units (-inf on atoms without mass).
    g : torch.Tensor of shape (B, m)
        Target potentials.

    Returns
    -------
    value : torch.Tensor of shape (B,), float64
        ``<C, P> - eps H(P)``.
    value_linear : torch.Tensor of shape (B,), float64
        ``<C, P>``.

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> f, g = torch.tensor([[0.1, -0.2]]), torch.tensor([[-0.3, 0.0]])
    >>> value, linear = plan_values(DenseGeometry(cost, 0.5), f, g)
    >>> plan = transport_plan(cost, f.double(), g.double(), 0.5)[0]
    >>> bool(torch.isclose(linear[0], (cost * plan).sum()))
    True
    >>> entropy = -(plan * (plan.log() - 1)).sum()
    >>> bool(torch.isclose(value[0], (cost * plan).sum() - 0.5 * entropy))
    True
    """
    eps = geometry.epsilon
    wide_f, wide_g = f.to(torch.float64), g.to(torch.float64)
    scaled_f, scaled_g = wide_f / eps, wide_g / eps
    rows = torch.exp(scaled_f + geometry.lse_target(scaled_g))  # P 1
    cols = torch.exp(scaled_g + geometry.lse_source(scaled_f))  # P^T 1
    zero = torch.zeros((), dtype=torch.float64, device=rows.device)
    dual = (torch.where(rows > 0, wide_f * rows, zero).sum(-1)
            + torch.where(cols > 0, wide_g * cols, zero).sum(-1))
    return dual - eps * rows.sum(-1), geometry.transport_cost(scaled_f, scaled_g)


def barycentric_map(
    cost: torch.Tensor, g: torch.Tensor, y: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """Entropic map ``T(x_i) = sum_j softmax_j((g_j - C_ij)/eps) y_j`` of each source point.

    For ``f = f(g)`` this is the barycentric projection ``sum_j P_ij y_j / a_i``; unlike it, it is
    defined for zero-mass and out-of-sample points too (rows of ``cost``).

    Parameters
    ----------
    cost : torch.Tensor of shape (n, m) or (B, n, m)
    g : torch.Tensor of shape (B, m)
        Target potentials (-inf on zero-mass atoms).
    y : torch.Tensor of shape (m, d) or (B, m, d)
    epsilon : float

    Returns
    -------
    torch.Tensor of shape (B, n, d)
    """
    weights = torch.softmax((g[:, None, :] - cost) / epsilon, dim=-1)
    return weights @ y


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
