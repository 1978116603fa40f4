"""Sinkhorn's iterations in the scaling domain: the log domain's iterates, fewer operations.

With ``u = exp(F)``, ``v = exp(G)`` (scaled potentials) and ``K = exp(-C / eps)``, the loop of
:mod:`skmetaot.solvers.sinkhorn` is ``v = b / K^T u``, ``t = K v`` (the a-marginal is
``u t``), ``u = a / t``: two kernel products and two divisions per iteration, no ``exp`` or
``log``. Two forms:

* :func:`scaling_iterations`, where the kernel itself stays inside float64 (``scaling_range``,
  the largest ``C / eps``, at most :data:`SCALING_RANGE`): grids (separable products) and
  dense costs. At batch 1 it needs a third of the log domain's operator calls.
* :func:`absorbing_iterations`, for dense costs at small epsilon (Schmitzer's stabilised
  scaling, "Stabilized sparse scaling algorithms for entropy regularized transport problems",
  2019): the potentials reached so far are absorbed into a per-problem kernel
  ``exp(F_i + G_j - C_ij / eps)``, whose significant entries are of order one, and the scalings
  only carry what changed since. A step whose products are not exact, or whose scalings grow
  past ``exp(30)``, is redone in the log domain and absorbed again. Each iteration then costs
  two matrix-vector products instead of two exact log-sum-exps (one ``exp`` per cost entry).

Every result is certified: the products it comes from are exact to float64 rounding (every
entry on the support at least ``n * max(scaling) * 1e-134``, terms below ``KERNEL_FLOOR``
having been dropped) and finite; otherwise the log domain computes it.
"""

from __future__ import annotations

import math

import torch

from skmetaot._softmin import exp_or_zero_, log_weights
from skmetaot.geometry import KERNEL_ELEMENTS, Geometry
from skmetaot.solvers.check_schedule import CheckSchedule
from skmetaot.solvers.halfstep import source_marginal_error, sweep

__all__ = ["ABSORBED_CPU_BYTES", "SCALING_RANGE", "Finished", "absorbing_applies",
           "absorbing_chunk", "absorbing_iterations",
           "first_iteration", "scaling_applies", "scaling_iterations"]

#: Scaling iterations are tried when ``max C / eps`` is at most this: every kernel entry is then
#: at least ``exp(-230) = 1e-100``, well inside float64 and above ``KERNEL_FLOOR``.
SCALING_RANGE = 230.0


def scaling_applies(geometry: Geometry, work: torch.dtype, a: torch.Tensor, b: torch.Tensor,
                     f_init: torch.Tensor | None) -> bool:
    """Whether :func:`scaling_iterations` may run (it still falls back when it must)."""
    if getattr(geometry, "scaling_range", math.inf) > SCALING_RANGE:
        return False
    return _no_graph(work, a, b, f_init)


def absorbing_applies(geometry: Geometry, work: torch.dtype, a: torch.Tensor,
                      b: torch.Tensor, f_init: torch.Tensor | None) -> bool:
    """Whether :func:`absorbing_iterations` may run.

    It needs a dense float64 kernel whose per-problem copies fit the kernel budget
    (``KERNEL_ELEMENTS`` entries for the batch).
    """
    if not hasattr(geometry, "absorbed_kernel"):
        return False
    n, m = a.shape[1], b.shape[1]
    if a.shape[0] * n * m > KERNEL_ELEMENTS:
        return False
    return _no_graph(work, a, b, f_init)


#: On a CPU, the float64 absorbed kernels of one run of :func:`absorbing_iterations` (one per
#: problem, read twice per iteration) are kept within this many bytes, so that they stay in the
#: last-level cache: at 100 x 10,000 (7.6 MB a kernel, 32 MB L3, one thread) the two products
#: cost 197 us per problem alone, 315 at two problems and 773 at eight.
ABSORBED_CPU_BYTES = 12 << 20


def absorbing_chunk(geometry: Geometry, work: torch.dtype, a: torch.Tensor, b: torch.Tensor,
                    f_init: torch.Tensor | None) -> int:
    """Problems per run of :func:`absorbing_iterations`.

    The whole batch, except on a CPU: no more problems than their kernels fit
    :data:`ABSORBED_CPU_BYTES`, and at least one.
    """
    batch = a.shape[0]
    if a.device.type != "cpu" or not absorbing_applies(geometry, work, a, b, f_init):
        return batch
    return max(1, min(batch, ABSORBED_CPU_BYTES // (8 * a.shape[1] * b.shape[1])))


def _no_graph(work: torch.dtype, a: torch.Tensor, b: torch.Tensor,
              f_init: torch.Tensor | None) -> bool:
    # float64 products only; and they carry no graph: differentiable solves take the log domain.
    if work != torch.float64:
        return False
    return not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad or (
        f_init is not None and f_init.requires_grad)))


class Finished:
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
        """``f, g, n_iter, errors`` of every problem (scaled potentials)."""
        return self.f, self.g, self.n_iter, self.errors


def first_iteration(geometry: Geometry, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """``t = K (b / K^T 1_a)``: Sinkhorn's first iteration from zeros, or None.

    From ``f = 0`` (``u = 1`` on the atoms with mass) the g-update is ``v = b / K^T u`` and
    the a-marginal is ``u t`` with ``t = K v``; the next f-update is ``eps (log a - log t)``.
    The kernel products are those of the scaling domain, where the kernel fits float64 (grids
    and dense costs with ``scaling_range`` at most :data:`SCALING_RANGE`): the features of a
    fixed-support meta model (MNIST's grids) in two products instead of two log-sum-exps.
    (At smaller epsilon a column-stabilised kernel ``exp(-(C_ij - min_i C_ij) / eps)`` holds
    the same ``t``, but on the sphere problem 2 % of its columns fail the exactness check,
    those whose nearby supply atoms all carry no mass in the instance.)

    Parameters
    ----------
    geometry : Geometry
    a : torch.Tensor of shape (B, n)
    b : torch.Tensor of shape (B, m)

    Returns
    -------
    torch.Tensor of shape (B, n), float64, or None
        None when no kernel applies, or when a product on the support is not exact to float64
        rounding (some entry below its terms' count times ``1e-134``, or not finite): the log
        domain must compute it.

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> from skmetaot.solvers.halfstep import sweep
    >>> from skmetaot._softmin import log_weights
    >>> cost = torch.rand(3, 4, dtype=torch.float64)
    >>> a, b = torch.tensor([[0.5, 0.0, 0.5]]), torch.full((1, 4), 0.25)
    >>> geometry = DenseGeometry(cost, epsilon=0.1)
    >>> t = first_iteration(geometry, a, b)
    >>> scaled_f = torch.where(a > 0, 0.0, -torch.inf).double()
    >>> _, soft_min = sweep(geometry, scaled_f, log_weights(b.double()))
    >>> bool(torch.allclose(t[a > 0].log(), soft_min[a > 0]))
    True
    """
    if getattr(geometry, "scaling_range", math.inf) > SCALING_RANGE:
        return None
    product = geometry.apply_kernel
    on_a, on_b = a > 0, b > 0
    s = product(on_a.to(torch.float64), 0)
    v = b.to(torch.float64) / torch.where(on_b, s, 1.0)
    t = product(v, 1)
    # Exact when every product on the support is at least (terms x 1e-134 x the largest
    # factor): the dropped kernel entries are below 1e-150. One synchronisation.
    low_s = torch.where(on_b, s, math.inf).amin(-1) / (a.shape[1] * _EXACT_PER_TERM)
    low_t = torch.where(on_a, t, math.inf).amin(-1) / (
        b.shape[1] * _EXACT_PER_TERM * v.amax(-1))
    if not bool(torch.minimum(low_s, low_t).ge(1.0).all()):
        return None
    return t


#: A kernel product of n terms is exact to float64 rounding when it is at least n times this
#: (terms below ``KERNEL_FLOOR`` were dropped); results with smaller products are redone.
_EXACT_PER_TERM = 1e-134
#: Batches check every this many iterations that no problem has gone non-finite (at batch 1
#: the stopping test sees a NaN at once).
_FINITE_EVERY = 16


def scaling_iterations(geometry: Geometry, a: torch.Tensor, b: torch.Tensor,
                        scaled_f: torch.Tensor | None, *, tol: float, max_iter: int):
    """The same iterations in the scaling domain, or None when the log domain must do them.

    With ``u = exp(F - c)`` (c: each problem's largest F, so that u <= 1), ``v = exp(G + c)``
    and ``K = exp(-C / eps)``, the loop of the module docstring is ``v = b / K^T u``,
    ``t = K v``, error ``|u t - a|_1``, ``u = a / t``: the same iterates, without the exp and
    log of each soft-min, on tensors laid out on the grid (at batch 1, where operator calls are
    the cost, a third of the log domain's). ``scaled_f=None`` is the cold start. Results
    stand when the products they come from are exact (every entry at least ``n * 1e-134``) and
    finite; otherwise the whole batch goes back to the log domain. The error is measured on
    the iterations :class:`~skmetaot.solvers.check_schedule.CheckSchedule` picks, with the
    stop of an every-iteration check (the loop goes back when a check comes late).
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
    results = Finished(a, b)
    last = max_iter - 1
    schedule = CheckSchedule(tol, last)
    # The scaling (and iteration) the loop goes back to when a check after unchecked
    # iterations finds a problem done: never written into, so keeping it costs nothing.
    checked, resume, finite_due = -1, u, 0
    iteration = 0
    while True:
        s = geometry.apply_kernel(u, 0, grid_layout=True)
        v = b_grid / s
        t = geometry.apply_kernel(v, 1, grid_layout=True)
        if not schedule.due(iteration):
            u = a_grid / t
            iteration += 1
            continue
        err = torch.linalg.vector_norm(torch.addcmul(a_grid, u, t, value=-1.0), 1, grid_dims)
        single = err.ndim == 0
        lowest = float(err) if single else float(err.min())
        if lowest != lowest:
            return None
        if not single and iteration >= finite_due:
            if not bool(torch.isfinite(err).all()):
                return None
            finite_due = iteration + _FINITE_EVERY
        stopping = lowest < tol or iteration == last
        if stopping and iteration > checked + 1:
            # Some unchecked iteration may have stopped first: redo them, checking each.
            iteration, u = checked + 1, resume
            schedule.restart(iteration, every=True)
            continue
        checked = iteration
        if stopping:
            done = None if single else (err < tol if iteration < last
                                        else torch.ones_like(err, dtype=torch.bool))
            every = single or bool(done.all())
            rows = (s, t, u, v, err) if every else [x[done] for x in (s, t, u, v, err)]
            s_done, t_done, u_done, v_done, err_done = rows
            # One synchronisation: the smallest products (NaN fails too) and the worst error.
            low_s, low_t, worst = torch.stack((s_done.amin(), t_done.amin(),
                                               err_done.max())).tolist()
            if not (low_s >= guard and low_t >= guard and worst < math.inf):
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
            schedule.restart(iteration + 1)
        else:
            schedule.measured(iteration, lowest)
        u = a_grid / t
        resume = u
        iteration += 1
    return results.outputs()


#: Scalings beyond this are absorbed into the kernel (and the guards scale with them).
_ABSORB_BOUND = math.exp(30.0)
#: Divisions by products that underflowed give 0/tiny = 0 off the support (never NaN).
_TINY = 1e-300


def absorbing_iterations(geometry: Geometry, a: torch.Tensor, b: torch.Tensor,
                         scaled_f: torch.Tensor | None, *, tol: float, max_iter: int):
    """Stabilised scaling iterations on a dense cost (module docstring).

    An exact log-domain step (``sweep``) starts the loop and redoes every step whose products
    fail the guards; after it, the potentials are absorbed into the kernel at once. Rebuilding
    the kernel costs one ``exp`` per cost entry, less than a log-domain step's two
    log-sum-exps, so a failure is followed by one log step, not a stretch of them: on the
    sphere (100 x 10,000, eps = 1e-3) a cold solve to 1e-2 took 217 log steps and 3.3 s with
    stretches doubling up to 64, and 50 log steps and 1.8 s this way (the same iterates).
    Returns scaled (f, g), iterations and errors, as the other loops do.
    """
    log_a, log_b = log_weights(a), log_weights(b)
    on_a, on_b = a > 0, b > 0
    F = torch.zeros_like(a).masked_fill_(~on_a, -math.inf) if scaled_f is None else scaled_f
    results, base, geom = Finished(a, b), geometry, geometry
    last, log_steps = max_iter - 1, 1
    kernel = u = Fb = Gb = None
    iteration = 0
    while iteration < max_iter:
        if log_steps:
            G, soft_min = sweep(geom, F, log_b)
            err = source_marginal_error(F, soft_min, a)
            F_out, G_out = F, G
        else:
            s = (u.unsqueeze(-2) @ kernel).squeeze(-2)
            v = b / s.clamp_min(_TINY)
            # A row vector times the transposed kernel: torch's batched matrix-vector product
            # (kernel @ v[..., None]) ran 3-7x slower per problem at batch 8-16 (one thread).
            t = (v.unsqueeze(-2) @ kernel.transpose(-1, -2)).squeeze(-2)
            err = torch.linalg.vector_norm(torch.addcmul(a, u, t, value=-1.0), 1, -1)
            checks = torch.stack((
                torch.where(on_b, s, math.inf).amin(-1).div_(u.amax(-1)).amin(),
                torch.where(on_a, t, math.inf).amin(-1).div_(v.amax(-1)).amin(),
                torch.maximum(u.amax(), v.amax()), err.max(), err.min()))
            low_s, low_t, high, worst, lowest = checks.tolist()
            if not (low_s >= a.shape[1] * _EXACT_PER_TERM and low_t >= b.shape[1]
                    * _EXACT_PER_TERM and high <= _ABSORB_BOUND and worst < math.inf):
                # Not exact: redo this step in the log domain from F = Fb + log u.
                F = torch.where(on_a, Fb + torch.log(u.clamp_min(_TINY)), -math.inf)
                log_steps = 1
                continue
            F_out = G_out = None
        if log_steps:
            lowest = float(err.min())
        if lowest < tol or iteration == last:
            done = err < tol if iteration < last else torch.ones_like(err, dtype=torch.bool)
            if F_out is None:  # -inf off the supports: Fb and Gb are
                F_out, G_out = Fb + log_weights(u), Gb + log_weights(v)
            keep = results.record(done, F_out[done], G_out[done], err, iteration)
            if keep is None:
                break
            geom = base.select(results.active)
            a, b, on_a, on_b, log_a, log_b = (x[keep] for x in (a, b, on_a, on_b, log_a, log_b))
            if log_steps:
                F, G, soft_min = F[keep], G[keep], soft_min[keep]
            else:
                kernel, Fb, Gb, u, t = kernel[keep], Fb[keep], Gb[keep], u[keep], t[keep]
        if log_steps:
            F = log_a - soft_min
            log_steps -= 1
            if not log_steps:  # absorb: the kernel of (F, G), scalings 1 on the supports
                Fb, Gb = F, G
                kernel = geom.absorbed_kernel(Fb, Gb)
                u = on_a.to(a.dtype)
        else:
            u = a / t.clamp_min(_TINY)
        iteration += 1
    return results.outputs()
