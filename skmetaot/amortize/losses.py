"""Losses of amortized models."""

from __future__ import annotations

import torch

from skmetaot._softmin import log_weights
from skmetaot.geometry import Geometry
from skmetaot.solvers.sinkhorn import (
    c_transform,
    scale_on_support,
    solve_batch,
    source_marginal_error,
    sweep,
    update_potential,
)


def entropic_dual_value(
    geometry: Geometry, f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *,
    target_scale: float = 1.0,
) -> torch.Tensor:
    """Entropic dual ``<f, a> + <g(f), b>`` of each problem, differentiable in ``f``.

    With ``g = g(f)`` the plan has mass one, so the exponential term of the dual is the constant
    epsilon and is left out. Zero-mass atoms are handled exactly: source atoms with ``a_i = 0``
    are left out of the c-transform (as if ``f_i = -inf``) and get no gradient; target atoms with
    ``b_j = 0`` have ``g_j = -inf`` and are left out of the sum. No penalty term is needed.

    Parameters
    ----------
    geometry : Geometry
    f : torch.Tensor of shape (B, n)
        Predicted source potentials (cost units).
    a : torch.Tensor of shape (B, n)
    b : torch.Tensor of shape (B, m)
    target_scale : float, default=1.0
        Multiplies the target term ``<g(f), b>``. With ``geometry`` and ``b`` restricted to
        ``k`` of the ``m`` target atoms drawn uniformly and ``target_scale = m / k``, the value
        and its gradient in ``f`` are unbiased estimates of the whole dual's (each ``g_j``
        depends on ``f`` alone): the stochastic semi-dual of Genevay et al. (2016).

    Returns
    -------
    torch.Tensor of shape (B,)
        Maximised by the optimal potentials (objective-based amortization minimises its negative
        mean).

    Examples
    --------
    The value grows towards its maximum, the dual of the solved problem:

    >>> import torch
    >>> from skmetaot import sinkhorn
    >>> from skmetaot.geometry import DenseGeometry
    >>> cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> a = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    >>> b = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    >>> geometry = DenseGeometry(cost, epsilon=0.1)
    >>> solved = torch.as_tensor(sinkhorn(a, b, cost, epsilon=0.1, tol=1e-10).f)
    >>> cold = entropic_dual_value(geometry, torch.zeros_like(a), a, b)
    >>> best = entropic_dual_value(geometry, solved, a, b)
    >>> bool(cold < best)
    True
    """
    g = c_transform(geometry, f, a, b)
    source = torch.where(a > 0, f, torch.zeros_like(f)) * a
    target = torch.where(b > 0, g, torch.zeros_like(g)) * b
    return source.sum(-1) + target.sum(-1) * target_scale


def unrolled_marginal_error(
    geometry: Geometry, f: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
    n_steps: int,
) -> torch.Tensor:
    """L1 marginal error (eq. (7)) after ``n_steps`` differentiable Sinkhorn iterations from ``f``.

    The first iterations remove the error along well-conditioned directions quickly; what is left
    lies along the slow directions, where the dual objective is flat. Penalising it focuses
    training on the part of the prediction that decides how long refinement takes. No solved
    problems are needed.

    Parameters
    ----------
    geometry : Geometry
    f : torch.Tensor of shape (B, n)
    a : torch.Tensor of shape (B, n)
    b : torch.Tensor of shape (B, m)
    n_steps : int
        Sinkhorn iterations unrolled (0: the error of ``(f, g(f))`` itself).

    Returns
    -------
    torch.Tensor of shape (B,)

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> geometry = DenseGeometry(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), epsilon=0.1)
    >>> a, b = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]])
    >>> f = torch.zeros(1, 2, requires_grad=True)
    >>> errors = [float(unrolled_marginal_error(geometry, f, a, b, k).detach()) for k in (0, 5)]
    >>> errors[1] < errors[0]  # Sinkhorn iterations reduce the error
    True
    >>> unrolled_marginal_error(geometry, f, a, b, 5).sum().backward()  # differentiable
    >>> f.grad.shape
    torch.Size([1, 2])
    """
    log_a, log_b = log_weights(a), log_weights(b)
    scaled_f = scale_on_support(f, a, geometry.epsilon)
    _, soft_min = sweep(geometry, scaled_f, log_b)
    for _ in range(n_steps):
        scaled_f = log_a - soft_min  # the f half-step; stays -inf on zero-weight atoms
        _, soft_min = sweep(geometry, scaled_f, log_b)
    return source_marginal_error(scaled_f, soft_min, a)


def error_after_update(
    geometry: Geometry, f: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """L1 error of the b-marginal after one full Sinkhorn update (g, then f) from ``f``.

    The Meta OT reference (``train_discrete.py``'s ``pred_error``) and OTT-JAX's solver report
    this number after their first iteration: ``g1 = g(f)``, ``f1 = f(g1)`` (the a-marginal of
    ``(f1, g1)`` is exact), then ``|P(f1, g1)^T 1 - b|_1``. It lies half an update after
    ``unrolled_marginal_error(..., 0)`` and half an update before
    ``unrolled_marginal_error(..., 1)``; learning curves compared with the reference's use it.
    Computed as ``sum_j b_j |exp(G1_j - G2_j) - 1|`` with ``G2 = g(f1)`` (scaled units), since
    the b-marginal of ``(f1, g1)`` is ``b exp(G1 - G2)``.

    Parameters
    ----------
    geometry : Geometry
    f : torch.Tensor of shape (B, n)
        Source potentials in cost units (ignored on zero-weight atoms).
    a : torch.Tensor of shape (B, n)
    b : torch.Tensor of shape (B, m)

    Returns
    -------
    torch.Tensor of shape (B,)

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> geometry = DenseGeometry(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), epsilon=0.1)
    >>> a, b = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]])
    >>> f = torch.zeros(1, 2)
    >>> before = unrolled_marginal_error(geometry, f, a, b, 0)
    >>> after = unrolled_marginal_error(geometry, f, a, b, 1)
    >>> bool(after <= error_after_update(geometry, f, a, b) <= before)
    True
    """
    log_a, log_b = log_weights(a), log_weights(b)
    scaled_g = update_potential(geometry, scale_on_support(f, a, geometry.epsilon), log_b, 0)
    scaled_f = update_potential(geometry, scaled_g, log_a, 1)
    next_g = update_potential(geometry, scaled_f, log_b, 0)
    # Zero-weight atoms are -inf on both sides: their difference is taken as 0, not NaN.
    change = torch.where(b > 0, scaled_g - next_g, torch.zeros_like(b))
    return (b * torch.expm1(change)).abs().sum(-1)


def potential_regression_error(
    geometry: Geometry, f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor,
    *, tol: float, max_iter: int,
) -> torch.Tensor:
    """Squared distance of ``f`` to the solved potential, up to the constant that (f, g) allow.

    The problems are solved (without a graph) from ``f`` itself, to ``tol``: a warm start, so
    the solves get cheaper as training improves ``f``. With ``d = f - f*`` on the atoms with
    mass and its ``a``-weighted mean removed, the error is ``sum_i a_i d_i^2 / scale^2``. Unlike
    the dual and the marginal error, which are flat along Sinkhorn's slow directions, it
    weighs an error of the prediction the same in every direction: the slow ones are those
    that refinement pays for.

    Parameters
    ----------
    geometry : Geometry
    f : torch.Tensor of shape (B, n)
        Predicted source potentials (cost units), differentiable.
    a : torch.Tensor of shape (B, n)
    b : torch.Tensor of shape (B, m)
    scale : torch.Tensor of shape (B,)
        Each problem's unit of potential (its mean cost): problems of every spread count alike.
    tol, max_iter : float, int
        Of the solves that give ``f*``.

    Returns
    -------
    torch.Tensor of shape (B,)

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> geometry = DenseGeometry(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), epsilon=0.1)
    >>> a, b = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]])
    >>> f = torch.zeros(1, 2, requires_grad=True)
    >>> error = potential_regression_error(geometry, f, a, b, torch.ones(1), tol=1e-9,
    ...                                    max_iter=1000)
    >>> bool(error > 0)
    True
    >>> shifted = potential_regression_error(geometry, f + 3.0, a, b, torch.ones(1), tol=1e-9,
    ...                                      max_iter=1000)
    >>> bool(torch.allclose(error, shifted))  # blind to the constant (f + c, g - c)
    True
    """
    on = a > 0
    with torch.no_grad():
        start = f.detach().masked_fill(~on, 0.0)
        solved = solve_batch(geometry, a, b, start, tol=tol, max_iter=max_iter, warn=False).f
        solved = solved.to(f.dtype).masked_fill(~on, 0.0)
    difference = torch.where(on, f - solved, torch.zeros_like(f))
    centred = difference - (a * difference).sum(-1, keepdim=True)
    return (a * centred.square()).sum(-1) / scale.square()
