"""POT's Sinkhorn iterations and stopping rule, run by the batched log-domain solver.

POT's iteration is ``v = b / K^T u`` then ``u = a / K v``, with the error
``|P^T 1 - b|_2`` checked after the first iteration and every 10th. The batched solver's
iteration (g-update, error, f-update) on the transposed problem (source ``b``, target ``a``,
cost ``M^T``) is exactly POT's once its first ``v`` is computed from POT's starting ``u``, so the
drop-ins of :mod:`skmetaot.pot` return POT's iterates, not approximations of them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from skmetaot._backend import ArrayKind, as_float_tensor, kind_of
from skmetaot._softmin import log_weights
from skmetaot._validation import check_positive_int
from skmetaot.geometry import DENSE_CHUNK_ELEMENTS, DenseGeometry
from skmetaot.solvers.entropic import CPU_BATCH_ELEMENTS
from skmetaot.solvers.sinkhorn import scale_on_support, solve_batch, update_potential

#: ``method`` values of ``ot.sinkhorn`` whose iterations are run here: the three are the same
#: iteration (Sinkhorn-Knopp, in the log domain, or stabilised by absorption).
METHODS = ("sinkhorn", "sinkhorn_log", "sinkhorn_stabilized")
#: Stopping rules: POT's (L2 norm of the b-marginal error every 10 iterations) or ours.
STOPPING_RULES = ("pot", "l1")
#: POT checks its error after the first iteration and then after every 10th.
POT_CHECK_EVERY = 10


class SolvedProblems:
    """POT-convention results of a batch of problems (torch, compute dtype and device)."""

    def __init__(self, *, kind: ArrayKind, cost: torch.Tensor, reg: float, f: torch.Tensor,
                 g: torch.Tensor, niter: list[int], errors: list[list[float]],
                 batched: bool, n_hists: int, knopp_shift: float) -> None:
        self.kind, self.cost, self.reg, self.f, self.g = kind, cost, reg, f, g
        self.niter, self.errors, self.batched, self.n_hists = niter, errors, batched, n_hists
        self.knopp_shift = knopp_shift

    def linear_values(self) -> torch.Tensor:
        """``<M, P>`` of each problem, without forming the plans."""
        geometry = DenseGeometry(self.cost, self.reg)
        return geometry.transport_cost(self.f / self.reg, self.g / self.reg).to(self.f.dtype)

    def pot_log(self) -> dict[str, Any]:
        """POT's log: scaled potentials (with Sinkhorn-Knopp's normalisation), niter, err."""
        log_u = self.f / self.reg - self.knopp_shift
        log_v = self.g / self.reg + self.knopp_shift
        wrap = self.kind.wrap
        if self.n_hists:  # POT lays k target histograms out as columns
            log_u, log_v = log_u.T, log_v.T
        elif not self.batched:
            log_u, log_v = log_u[0], log_v[0]
        errors = [[self._scalar(e) for e in errs] for errs in self.errors]
        single = not (self.batched or self.n_hists)
        return {"err": errors[0] if single else errors,
                "niter": self.niter[0] if single else np.asarray(self.niter),
                "log_u": wrap(log_u), "log_v": wrap(log_v),
                "u": wrap(torch.exp(log_u)), "v": wrap(torch.exp(log_v))}

    def _scalar(self, value: float) -> Any:
        if self.kind.is_torch:
            return torch.tensor(value, dtype=self.f.dtype, device=self.kind.device)
        return np.float64(value)


def solve_pot_problems(a, b, M, reg, method, numItermax, stopThr, verbose, warn, warmstart,
                       stopping, batch_size) -> SolvedProblems:
    """Validate POT's arguments and run its iterations (see :func:`skmetaot.pot.sinkhorn`)."""
    reg, stopThr = _check_pot_scalars(reg, method, numItermax, stopThr, stopping, batch_size)
    kind = kind_of(a, b, M)
    cost = as_float_tensor(M, "M (cost matrix)")
    if cost.ndim not in (2, 3):
        raise ValueError(f"M must have shape (n, m) or (N, n, m), got {tuple(cost.shape)}")
    n, m = cost.shape[-2:]
    a_t = _weights(a, n, "a", cost)
    b_t = _weights(b, m, "b", cost)
    n_hists = b_t.shape[1] if (a_t.ndim == 1 and b_t.ndim == 2 and cost.ndim == 2) else 0
    if n_hists:
        if b_t.shape[0] != m:
            raise ValueError(f"b has shape {tuple(b_t.shape)}; with a 1-D a, a 2-D b holds "
                             f"target histograms as columns: ({m}, k)")
        b_t = b_t.T
    batched = not n_hists and (a_t.ndim == 2 or b_t.ndim == 2 or cost.ndim == 3)
    a_t, b_t = _batch_weights(a_t, b_t, cost, n, m)
    count = a_t.shape[0]
    log_u0 = _warm_log_u(warmstart, count, n, cost)
    if method.lower() == "sinkhorn" and warmstart is None:
        # POT's Sinkhorn-Knopp starts from u = 1/n, v = 1/m: the plans are the same, its
        # scaled potentials are shifted by log(n).
        knopp_shift = float(np.log(n))
    else:
        knopp_shift = 0.0
    step = batch_size or _default_batch(count, n, m, cost)
    f_parts, g_parts, niter, errors, converged = [], [], [], [], []
    for start in range(0, count, step):
        rows = slice(start, min(start + step, count))
        matrix = cost[rows] if cost.ndim == 3 else cost
        f, g, its, errs, conv = _pot_iterations(matrix, a_t[rows], b_t[rows], log_u0[rows],
                                                reg, numItermax, stopThr, stopping, verbose)
        f_parts.append(f)
        g_parts.append(g)
        niter += its
        errors += errs
        converged += conv
    failed = [k for k, ok in enumerate(converged) if not ok]
    if warn and failed:
        warnings.warn(f"Sinkhorn did not converge for {len(failed)} of {count} problems (first: "
                      f"{failed[0]}). You might want to increase the number of iterations "
                      "`numItermax` or the regularization parameter `reg`.", ConvergenceWarning,
                      stacklevel=3)
    return SolvedProblems(kind=kind, cost=cost, reg=reg, f=torch.cat(f_parts),
                           g=torch.cat(g_parts), niter=niter, errors=errors, batched=batched,
                           n_hists=n_hists, knopp_shift=knopp_shift)


def _pot_iterations(cost, a, b, log_u0, reg, max_iter, stop_thr, stopping, verbose):
    """POT's iterations for a batch; returns ``(f, g)`` in cost units, niter and the errors.

    The solver's iteration (g-update, error, f-update) on the transposed problem (source b,
    target a) is POT's (v-update, u-update, error), once the first v comes from ``log_u0``.
    """
    geometry = DenseGeometry(cost.transpose(-1, -2), reg)
    count = a.shape[0]
    # v_1 = log b - LSE_i(log_u0_i - M_ij / reg): POT's first half-iteration, over every atom.
    next_v = update_potential(geometry, log_u0, log_weights(b), 1)
    f_out = torch.empty_like(b)
    g_out = torch.empty_like(a)
    niter = [0] * count
    errors: list[list[float]] = [[] for _ in range(count)]
    if stopping == "l1":
        state = _quiet_solve(geometry, b, a, reg * next_v, tol=stop_thr, max_iter=max_iter)
        niter = [int(n) - 1 for n in state.n_iter.tolist()]
        errors = [[e] for e in state.errors.tolist()]
        return state.g, state.f, niter, errors, state.converged.tolist()
    converged = [False] * count
    active = torch.arange(count, device=a.device)
    done = 0
    while len(active):
        steps = min(1 if done == 0 else POT_CHECK_EVERY, max_iter - done)
        geom = geometry.select(active)
        state = _quiet_solve(geom, b[active], a[active], reg * next_v, tol=0.0, max_iter=steps)
        done += steps
        # POT's error: |P^T 1 - b|_2 at the last u-update; the same soft-min gives the next
        # v-update. POT checks after iterations 1, 11, 21, ... (its ii % 10 == 0).
        soft_min = geom.lse_target(scale_on_support(state.g, a[active], reg))
        checkpoint = (done - 1) % POT_CHECK_EVERY == 0
        finished = torch.full((len(active),), done >= max_iter, device=a.device)
        if checkpoint:
            marginal = torch.exp(scale_on_support(state.f, b[active], reg) + soft_min)
            err = torch.linalg.vector_norm(marginal - b[active], dim=-1)
            if verbose:
                _print_errors(done - 1, err)
            below = err < stop_thr
            finished |= below
            for position, (k, e) in enumerate(zip(active.tolist(), err.tolist(), strict=True)):
                errors[k].append(e)
                converged[k] = bool(below[position])
        for k in active[finished].tolist():
            niter[k] = done - 1
        f_out[active[finished]] = state.f[finished]
        g_out[active[finished]] = state.g[finished]
        next_v = (log_weights(b[active]) - soft_min)[~finished]
        active = active[~finished]
    return g_out, f_out, niter, errors, converged


def _quiet_solve(geometry, a, b, f_init, *, tol, max_iter):
    """The solver's iterations; convergence is judged (and warned about) here, by POT's rule."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return solve_batch(geometry, a, b, f_init, tol=tol, max_iter=max_iter)


def _print_errors(iteration: int, err: torch.Tensor) -> None:
    if iteration % 200 == 0:
        print("{:5s}|{:12s}".format("It.", "Err") + "\n" + "-" * 19)
    print(f"{iteration:5d}|{float(err.max()):8e}|")


def _check_pot_scalars(reg, method, numItermax, stopThr, stopping,
                       batch_size) -> tuple[float, float]:
    """Validate the scalar arguments; returns ``reg`` and ``stopThr`` as floats."""
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method={method!r} is not run here; use one of {METHODS} (all the "
                         "same iteration), or call ot.sinkhorn for the others")
    values = []
    for name, value, positive in (("reg", reg, True), ("stopThr", stopThr, False)):
        number = _real(value)
        if number is None or not np.isfinite(number) or number < 0 or (positive and number == 0):
            kind = "positive" if positive else "non-negative"
            raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")
        values.append(number)
    check_positive_int(numItermax, "numItermax")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    if stopping not in STOPPING_RULES:
        raise ValueError(f"stopping={stopping!r} is not one of {STOPPING_RULES}")
    return values[0], values[1]


def _real(value: Any) -> float | None:
    """A real scalar (Python, numpy or 0-d tensor) as a float, else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, torch.Tensor):
        return float(value) if value.numel() == 1 and not value.is_complex() else None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def _weights(w: Any, size: int, name: str, cost: torch.Tensor) -> torch.Tensor:
    """Weights as given (POT does not rescale them), or uniform when empty, as in POT."""
    empty = w.numel() == 0 if isinstance(w, torch.Tensor) else np.size(w) == 0
    if empty:
        return torch.full((size,), 1.0 / size, dtype=cost.dtype, device=cost.device)
    t = as_float_tensor(w, name, dtype=cost.dtype, device=cost.device)
    if t.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {tuple(t.shape)}")
    if bool((t < 0).any()):
        raise ValueError(f"{name} has negative weights (min {float(t.min()):.3g})")
    return t


def _batch_weights(a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor, n: int, m: int):
    """(N, n) and (N, m) weights; one measure (1-D) is paired with every problem."""
    a2, b2 = (w[None] if w.ndim == 1 else w for w in (a, b))
    for name, w, size in (("a", a2, n), ("b", b2, m)):
        if w.shape[1] != size:
            raise ValueError(f"{name} has {w.shape[1]} entries per problem, but M has shape "
                             f"{tuple(cost.shape)}")
    counts = {"a": a2.shape[0], "b": b2.shape[0], "M": cost.shape[0] if cost.ndim == 3 else 1}
    count = max(counts.values())
    if any(k not in (1, count) for k in counts.values()):
        held = ", ".join(f"{name} holds {k}" for name, k in counts.items() if k > 1)
        raise ValueError(f"the numbers of problems disagree: {held} (give as many of each, or "
                         "one measure or cost for every problem)")
    a2, b2 = a2.expand(count, n), b2.expand(count, m)
    for name, w in (("a", a2), ("b", b2)):
        if bool((w.sum(-1) <= 0).any()):
            raise ValueError(f"{name} has a histogram of zero total mass")
    return a2, b2


def _warm_log_u(warmstart: Any, count: int, n: int, cost: torch.Tensor) -> torch.Tensor:
    if warmstart is None:
        return cost.new_zeros((count, n))
    if not (isinstance(warmstart, (tuple, list)) and len(warmstart) == 2):
        raise ValueError("warmstart must be a pair (log_u, log_v), as in POT")
    log_u = as_float_tensor(warmstart[0], "warmstart[0] (log_u)", dtype=cost.dtype,
                            device=cost.device, finite=False)
    if bool(torch.isnan(log_u).any()):
        raise ValueError("warmstart[0] (log_u) contains NaN")
    if log_u.shape[-1] != n or log_u.ndim not in (1, 2):
        raise ValueError(f"warmstart[0] (log_u) has shape {tuple(log_u.shape)}, expected "
                         f"({n},) or ({count}, {n})")
    return log_u.expand(count, n) if log_u.ndim == 1 else log_u


def _default_batch(count: int, n: int, m: int, cost: torch.Tensor) -> int:
    if cost.ndim == 3:
        return max(1, DENSE_CHUNK_ELEMENTS // (n * m))
    if cost.device.type == "cpu":
        return max(1, CPU_BATCH_ELEMENTS // (n + m))
    return count
