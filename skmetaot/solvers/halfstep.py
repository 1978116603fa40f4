"""The Sinkhorn half-step: the one implementation every solver, loss and initialiser calls.

``update_potential`` is OTT-JAX's ``Geometry.update_potential`` in log space: one potential
from the other through the geometry's soft-min. ``sweep`` is a g-update with the soft-min of
the next f-update (the a-marginal comes for free), ``source_marginal_error`` the L1 error of
eq. (7) once the b-marginal is exact, and ``c_transform`` the half-step in cost units.
"""

from __future__ import annotations

import torch

from skmetaot._softmin import exp_floor, log_weights
from skmetaot.geometry import Geometry

__all__ = ["c_transform", "scale_on_support", "source_marginal_error", "sweep",
           "update_potential"]


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
    >>> from skmetaot.solvers.plans import transport_plan
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
