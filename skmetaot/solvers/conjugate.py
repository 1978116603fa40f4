"""Batched solvers for convex conjugates of (possibly neural) potentials.

For a potential ``f: R^d -> R`` the conjugate is ``f*(y) = -inf_x J(x; y)`` with
``J(x; y) = f(x) - <x, y>``; its argmin ``x(y)`` is the inverse transport map (Amos, "On
amortizing convex conjugates for optimal transport", ICLR 2023). Each row of ``y`` is an
independent problem started at the matching row of ``x_init`` (an amortized prediction), and
all problems are solved together with vectorised tensor operations. Problems that reach the
gradient tolerance leave the working batch, so the cost shrinks as they finish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skmetaot._backend import ArrayKind, as_float_tensor, check_has_data, kind_of
from skmetaot._schedules import cosine_decay
from skmetaot._validation import check_positive_float, check_positive_int

Potential = Callable[[torch.Tensor], torch.Tensor]

_METHODS = ("lbfgs", "adam")
_ARMIJO_C1 = 1e-4
_BACKTRACK = 0.5
# Hager-Zhang's approximate Armijo test: delta in (0, 1/2) of their approximate Wolfe conditions.
_HZ_DELTA = 0.1
#: Adam's step decays to this fraction of ``learning_rate`` over ``max_iter``.
_ADAM_FLOOR = 1e-4


class NonFiniteConjugateError(ValueError, FloatingPointError):
    """The potential or its gradient is not finite where a conjugate problem starts.

    A :class:`ValueError` (the argument ``x_init`` or the potential is bad) and a
    :class:`FloatingPointError`, which is what training loops treat as a numerical failure of
    the step: a potential that has diverged during training raises it from inside the step, and
    :func:`skmetaot.amortize.train` recovers from it like from a non-finite loss.
    """


@dataclass
class ConjugateResult:
    """Solutions of B conjugate problems ``f*(y_b) = -min_x f(x) - <x, y_b>``.

    Attributes
    ----------
    x : torch.Tensor or ndarray of shape (B, d)
        The argmin of ``f(x) - <x, y>`` (the inverse transport map at y), detached.
    value : torch.Tensor or ndarray of shape (B,)
        ``f*(y) = <x, y> - f(x)`` at the returned x.
    grad_norm : torch.Tensor or ndarray of shape (B,)
        Euclidean norm of ``grad_x J = grad f(x) - y`` at the returned x.
    n_iter : torch.Tensor or ndarray of shape (B,)
        Iterations each problem used (int64; 0 when ``x_init`` already met the tolerance).
    converged : torch.Tensor or ndarray of shape (B,)
        ``grad_norm <= tol``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot import conjugate
    >>> res = conjugate(lambda x: (x**2).sum(-1), np.array([[2.0, -4.0]]))
    >>> res.x.round(4), res.value.round(4), res.converged
    (array([[ 1., -2.]]), array([5.]), array([ True]))
    """

    x: Any
    value: Any
    grad_norm: Any
    n_iter: Any
    converged: Any


def _evaluate(
    potential: Potential, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``J(x; y)`` of shape (n,) and ``grad_x J`` of shape (n, d), both detached."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        fx = potential(x)
        if not isinstance(fx, torch.Tensor) or tuple(fx.shape) != (x.shape[0],):
            shape = tuple(fx.shape) if isinstance(fx, torch.Tensor) else type(fx).__name__
            raise ValueError(
                f"the potential must map a ({x.shape[0]}, {x.shape[1]}) tensor to shape "
                f"({x.shape[0]},), got {shape}"
            )
        if not fx.requires_grad:
            raise TypeError("the potential's output does not depend on x through torch autograd")
        value = fx.to(y.dtype) - (x * y).sum(-1)
        # Differentiate w.r.t. x only: the potential's parameters never accumulate .grad.
        (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad.detach()


def _finite_rows(value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(value) & torch.isfinite(grad).all(-1)


def _lbfgs_direction(
    grad: torch.Tensor, s_hist: torch.Tensor, y_hist: torch.Tensor, rho: torch.Tensor,
    count: torch.Tensor,
) -> torch.Tensor:
    """Two-loop recursion over the batch; empty history slots are zeros and contribute nothing.

    The newest pair is in the last slot. Problems without history get steepest descent scaled
    to a step of at most unit length.
    """
    q = grad.clone()
    size = s_hist.shape[1]
    alphas = []
    for i in reversed(range(size)):
        alpha = rho[:, i] * (s_hist[:, i] * q).sum(-1)
        q = q - alpha[:, None] * y_hist[:, i]
        alphas.append(alpha)
    s_new, y_new = s_hist[:, -1], y_hist[:, -1]
    yy = (y_new * y_new).sum(-1)
    gamma_hist = (s_new * y_new).sum(-1) / torch.where(yy > 0, yy, torch.ones_like(yy))
    gamma_none = 1.0 / grad.norm(dim=-1).clamp_min(1.0)
    r = q * torch.where(count > 0, gamma_hist, gamma_none)[:, None]
    for i, alpha in zip(range(size), reversed(alphas), strict=True):
        beta = rho[:, i] * (y_hist[:, i] * r).sum(-1)
        r = r + (alpha - beta)[:, None] * s_hist[:, i]
    return -r


def _push(history: torch.Tensor, new: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Where ``mask``, append ``new`` as the newest (last) slot, dropping the oldest."""
    rolled = torch.cat([history[:, 1:], new[:, None]], 1)
    return torch.where(mask.view(-1, *[1] * (history.ndim - 1)), rolled, history)


def _line_search(
    potential: Potential, y: torch.Tensor, x: torch.Tensor, value: torch.Tensor,
    direction: torch.Tensor, slope: torch.Tensor, max_linesearch: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched backtracking from step 1; returns new x, J, grad and the acceptance mask.

    Each round evaluates only the problems still searching and halves their step on failure;
    rejected problems keep their x, J and grad.
    """
    new_x, new_value, new_grad = x.clone(), value.clone(), torch.zeros_like(x)
    accepted = torch.zeros_like(value, dtype=torch.bool)
    step = torch.ones_like(value)
    searching = torch.arange(value.shape[0], device=x.device)
    # Below this change J is dominated by rounding, and the gradient-based test takes over.
    noise = 100 * torch.finfo(value.dtype).eps * (1 + value.abs())
    for _ in range(max_linesearch):
        t, d = step[searching], direction[searching]
        trial = x[searching] + t[:, None] * d
        trial_value, trial_grad = _evaluate(potential, trial, y[searching])
        v0, g0d = value[searching], slope[searching]
        armijo = trial_value <= v0 + _ARMIJO_C1 * t * g0d
        approx = (trial_value <= v0 + noise[searching]) & (
            (trial_grad * d).sum(-1) <= (2 * _HZ_DELTA - 1) * g0d
        )
        ok = _finite_rows(trial_value, trial_grad) & (armijo | approx)
        done = searching[ok]
        new_x[done], new_value[done], new_grad[done] = trial[ok], trial_value[ok], trial_grad[ok]
        accepted[done] = True
        searching = searching[~ok]
        if searching.numel() == 0:
            break
        step[searching] *= _BACKTRACK
    return new_x, new_value, new_grad, accepted


def solve_conjugate(
    potential: Potential,
    y: torch.Tensor,
    x_init: torch.Tensor | None = None,
    *,
    method: str = "lbfgs",
    tol: float = 1e-3,
    max_iter: int = 100,
    history_size: int = 10,
    max_linesearch: int = 20,
    learning_rate: float = 0.1,
) -> ConjugateResult:
    """Solve B conjugate problems ``min_x f(x) - <x, y_b>`` at once (tensor level).

    Parameters
    ----------
    potential : callable
        Maps a (n, d) tensor to a (n,) tensor, rows independent and differentiable by autograd.
    y : torch.Tensor of shape (B, d)
        One problem per row; float32 or float64.
    x_init : torch.Tensor of shape (B, d), optional
        Starting points (e.g. an amortized prediction); None starts at ``y``.
    method : {"lbfgs", "adam"}, default="lbfgs"
        Batched L-BFGS with a backtracking Armijo line search, or Adam with a cosine-decayed
        step from ``learning_rate`` to ``learning_rate * 1e-4`` over ``max_iter``.
    tol : float, default=1e-3
        A problem stops (and is frozen) once ``||grad f(x) - y|| <= tol``.
    max_iter : int, default=100
        Iteration cap per problem.
    history_size : int, default=10
        L-BFGS memory (curvature pairs kept per problem).
    max_linesearch : int, default=20
        L-BFGS backtracking rounds per iteration.
    learning_rate : float, default=0.1
        Initial Adam step.

    Returns
    -------
    ConjugateResult
        Detached torch tensors on y's device, in y's dtype.

    Raises
    ------
    ValueError
        On a bad argument or shape.
    NonFiniteConjugateError
        When the potential or its gradient is not finite at ``x_init`` (a ``ValueError`` and
        a ``FloatingPointError``).

    Examples
    --------
    The conjugate of ``f(x) = |x|^4 / 4`` at ``y`` is attained where ``|x|^2 x = y``:

    >>> import torch
    >>> y = torch.tensor([[8.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    >>> res = solve_conjugate(lambda x: 0.25 * (x**2).sum(-1) ** 2, y, tol=1e-8)
    >>> res.x.round(decimals=6)
    tensor([[ 2.,  0.],
            [ 0., -1.]], dtype=torch.float64)
    >>> res.converged
    tensor([True, True])
    """
    if method not in _METHODS:
        raise ValueError(f"method={method!r} is not supported; use one of {_METHODS}")
    tol = check_positive_float(tol, "tol")
    max_iter = check_positive_int(max_iter, "max_iter")
    history_size = check_positive_int(history_size, "history_size")
    max_linesearch = check_positive_int(max_linesearch, "max_linesearch")
    learning_rate = check_positive_float(learning_rate, "learning_rate")
    if not callable(potential):
        raise TypeError(f"potential must be callable, got {type(potential).__name__}")
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        raise TypeError("y must be a floating torch tensor (use conjugate() for numpy input)")
    if y.ndim != 2:
        raise ValueError(f"y must have shape (B, d), got {tuple(y.shape)}")
    check_has_data(y, "y")
    check_has_data(x_init, "x_init")
    y = y.detach()
    if not bool(torch.isfinite(y).all()):
        raise ValueError("y contains NaN or infinite values")
    x = y.clone() if x_init is None else torch.as_tensor(x_init).detach().to(y)
    if x.shape != y.shape:
        raise ValueError(f"x_init has shape {tuple(x.shape)}; expected y's {tuple(y.shape)}")

    value, grad = _evaluate(potential, x, y)
    bad = (~_finite_rows(value, grad)).nonzero().flatten()
    if bad.numel():
        raise NonFiniteConjugateError(
            f"the potential or its gradient is not finite at x_init for problem(s) "
            f"{bad[:10].tolist()} of {y.shape[0]}"
        )
    x_out, value_out, grad_out = x.clone(), value.clone(), grad.clone()
    n_iter = torch.zeros(y.shape[0], dtype=torch.int64, device=y.device)
    keep = grad.norm(dim=-1) > tol
    active = keep.nonzero().flatten()
    x, value, grad, y_act = x[keep], value[keep], grad[keep], y[keep]

    # Each method's state is empty for the other, so one compaction serves both.
    n, d = x.shape
    mem, d_adam = (history_size, 0) if method == "lbfgs" else (0, d)
    s_hist, y_hist, rho = x.new_zeros(n, mem, d), x.new_zeros(n, mem, d), x.new_zeros(n, mem)
    moment1, moment2, count = x.new_zeros(n, d_adam), x.new_zeros(n, d_adam), active.new_zeros(n)

    for k in range(max_iter):
        if active.numel() == 0:
            break
        n_iter[active] += 1
        stalled = torch.zeros_like(value, dtype=torch.bool)
        if method == "lbfgs":
            direction = _lbfgs_direction(grad, s_hist, y_hist, rho, count)
            slope = (grad * direction).sum(-1)
            # Not a descent direction (non-convex f, stale pairs): forget and go downhill.
            reset = ~(slope < 0)
            if bool(reset.any()):
                s_hist[reset], y_hist[reset], rho[reset], count[reset] = 0, 0, 0, 0
                steepest = -grad / grad.norm(dim=-1, keepdim=True).clamp_min(1.0)
                direction = torch.where(reset[:, None], steepest, direction)
                slope = (grad * direction).sum(-1)
            new_x, new_value, new_grad, accepted = _line_search(
                potential, y_act, x, value, direction, slope, max_linesearch)
            s, dy = new_x - x, new_grad - grad
            sy = (s * dy).sum(-1)
            add = accepted & (sy > 0)
            s_hist, y_hist = _push(s_hist, s, add), _push(y_hist, dy, add)
            rho = _push(rho, 1 / torch.where(add, sy, torch.ones_like(sy)), add)
            count = torch.where(add, (count + 1).clamp_max(history_size), count)
            # A failed search from a fresh history cannot make progress: stop that problem.
            stalled = ~accepted & (count == 0)
            s_hist[~accepted], y_hist[~accepted], rho[~accepted], count[~accepted] = 0, 0, 0, 0
            x, value, grad = new_x, new_value, torch.where(accepted[:, None], new_grad, grad)
        else:
            moment1 = 0.9 * moment1 + 0.1 * grad
            moment2 = 0.999 * moment2 + 0.001 * grad.square()
            m_hat, v_hat = moment1 / (1 - 0.9 ** (k + 1)), moment2 / (1 - 0.999 ** (k + 1))
            rate = cosine_decay(learning_rate, k / max_iter, _ADAM_FLOOR)
            trial = x - rate * m_hat / (v_hat.sqrt() + 1e-8)
            trial_value, trial_grad = _evaluate(potential, trial, y_act)
            # A step into a non-finite region is rejected; the decaying rate shortens the next.
            ok = _finite_rows(trial_value, trial_grad)
            x = torch.where(ok[:, None], trial, x)
            value = torch.where(ok, trial_value, value)
            grad = torch.where(ok[:, None], trial_grad, grad)
        x_out[active], value_out[active], grad_out[active] = x, value, grad
        keep = (grad.norm(dim=-1) > tol) & ~stalled
        active, x, value, grad, y_act, s_hist, y_hist, rho, count, moment1, moment2 = (
            t[keep] for t in (active, x, value, grad, y_act, s_hist, y_hist, rho, count,
                              moment1, moment2)
        )

    grad_norm = grad_out.norm(dim=-1)
    return ConjugateResult(
        x=x_out, value=-value_out, grad_norm=grad_norm, n_iter=n_iter, converged=grad_norm <= tol
    )


def _resolve_potential(f: Any) -> Potential:
    method = getattr(f, "potential", None)
    if callable(method):
        return method
    if callable(f):
        return f
    raise TypeError(
        f"f must be a callable on torch tensors or have a potential() method, got "
        f"{type(f).__name__} (for a fitted estimator, pass its predict_potentials())"
    )


def _module_of(f: Any, potential: Potential) -> torch.nn.Module | None:
    for obj in (f, potential, getattr(potential, "__self__", None)):
        if isinstance(obj, torch.nn.Module):
            return obj
    return None


def conjugate(
    f: Any,
    y: Any,
    x_init: Any = None,
    *,
    method: str = "lbfgs",
    tol: float = 1e-3,
    max_iter: int = 100,
    **kwargs: Any,
) -> ConjugateResult:
    """Convex conjugate ``f*(y) = sup_x <x, y> - f(x)`` and its argmin, for a batch of points.

    Parameters
    ----------
    f : callable or object
        A callable mapping a (n, d) torch tensor to a (n,) tensor (rows independent), or an
        object with a ``potential`` method (or ``__call__``) that does.
    y : array-like or torch.Tensor of shape (B, d) or (d,)
        Points at which to evaluate the conjugate; one problem per row. Integer arrays are
        converted to float64 and repeated points are allowed; an empty batch (0, d) gives
        empty results. When ``f`` is a torch module (or has one), ``y`` is moved to the
        module's device and dtype for the computation.
    x_init : array-like or torch.Tensor of the same shape as y, optional
        Starting points (e.g. an amortized prediction); None starts at ``y``.
    method : {"lbfgs", "adam"}, default="lbfgs"
        See :func:`~skmetaot.solvers.solve_conjugate`.
    tol : float, default=1e-3
        Tolerance on ``||grad f(x) - y||``.
    max_iter : int, default=100
        Iteration cap per problem.
    **kwargs
        ``history_size``, ``max_linesearch`` and ``learning_rate`` of
        :func:`~skmetaot.solvers.solve_conjugate`.

    Returns
    -------
    ConjugateResult
        numpy arrays (in y's dtype) when y is numpy, otherwise tensors on y's device; for a
        1-D y, ``x`` is 1-D and the other fields are scalars.

    Raises
    ------
    TypeError
        If ``f`` is not callable, or ``y``/``x_init`` are not real numbers (object, string or
        complex arrays).
    ValueError
        If ``y`` or ``x_init`` hold NaN or inf, have the wrong shape, are ``meta`` tensors
        (no data), or ``y``'s dimension differs from the potential's ``dim``.

    Examples
    --------
    The conjugate of ``f(x) = |x|^2 / 2`` is ``f*(y) = |y|^2 / 2``, attained at ``x = y``:

    >>> import numpy as np
    >>> from skmetaot.solvers import conjugate
    >>> y = np.array([[1.0, 2.0], [0.5, -1.0]])
    >>> res = conjugate(lambda x: 0.5 * (x**2).sum(-1), y, x_init=np.zeros_like(y))
    >>> np.allclose(res.x, y), np.allclose(res.value, 0.5 * (y**2).sum(-1))
    (True, True)
    >>> res.converged
    array([ True,  True])
    """
    potential = _resolve_potential(f)
    kind = kind_of(y, x_init)
    y_t = as_float_tensor(y, "y")
    out_dtype = y_t.dtype
    single = y_t.ndim == 1
    if y_t.ndim not in (1, 2):
        raise ValueError(f"y must have shape (B, d) or (d,), got {tuple(y_t.shape)}")
    module = _module_of(f, potential)
    _check_dimension(y_t.shape[-1], f, module)
    params = [p for p in module.parameters() if p.is_floating_point()] if module is not None else []
    if params:
        # Compute where and in the precision the network lives; answer in y's dtype and kind.
        y_t = y_t.to(dtype=params[0].dtype, device=params[0].device)
    if x_init is not None:
        x_init = as_float_tensor(x_init, "x_init", dtype=y_t.dtype, device=y_t.device)
        if x_init.shape != y_t.shape:
            raise ValueError(
                f"x_init has shape {tuple(x_init.shape)}; expected y's {tuple(y_t.shape)}"
            )
    if single:
        y_t = y_t[None]
        x_init = None if x_init is None else x_init[None]
    result = solve_conjugate(potential, y_t, x_init, method=method, tol=tol, max_iter=max_iter,
                             **kwargs)
    return ConjugateResult(**{
        name: _to_user(getattr(result, name), kind, out_dtype, single)
        for name in ("x", "value", "grad_norm", "n_iter", "converged")
    })


def _check_dimension(dim: int, f: Any, module: torch.nn.Module | None) -> None:
    """Check the dimension of y against the potential's ``dim`` attribute, when it has one."""
    if dim == 0:
        raise ValueError("y has points of dimension 0")
    for obj in (f, module):
        expected = getattr(obj, "dim", None)
        if isinstance(expected, (int, np.integer)) and not isinstance(expected, bool):
            if int(expected) != dim:
                raise ValueError(f"y has dimension {dim}, but the potential f is defined on "
                                 f"dimension {int(expected)}")
            return


def _to_user(values: torch.Tensor, kind: ArrayKind, dtype: torch.dtype, single: bool) -> Any:
    if values.is_floating_point():
        values = values.to(dtype)
    if single:
        values = values[0]
    out = kind.wrap(values)
    return out[()] if not kind.is_torch and out.ndim == 0 else out
