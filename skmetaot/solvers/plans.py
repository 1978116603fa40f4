"""What solved potentials give: plans, their entropic values and the barycentric map."""

from __future__ import annotations

import torch

from skmetaot.geometry import Geometry

__all__ = ["barycentric_map", "plan_values", "transport_plan"]


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
