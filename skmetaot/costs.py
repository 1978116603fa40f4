"""Ground costs c(x, y) between support points.

A cost is a function ``cost(x, y) -> C`` on tensors with ``x`` of shape (..., n, d) and ``y`` of
shape (..., m, d) returning (..., n, m). The named costs are ``"sqeuclidean"``, ``"euclidean"`` and
``"spherical"``; any callable with that signature works too, including one that returns a numpy
array (``scipy.spatial.distance.cdist``, for instance: it is then a constant, without gradient).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch

from skmetaot._backend import as_float_tensor

__all__ = ["euclidean", "get_cost", "is_sqeuclidean", "pairwise_cost", "spherical",
           "sqeuclidean"]

CostFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CostSpec = Union[str, CostFunction]

#: Points are divided by (1 + this) before the arccos of the spherical cost, as in the Meta OT
#: reference, so that rounding never pushes <x, y> outside [-1, 1].
SPHERICAL_SHRINK = 1e-4


def sqeuclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean cost ``|x - y|^2`` (not halved).

    Parameters
    ----------
    x : torch.Tensor of shape (..., n, d)
    y : torch.Tensor of shape (..., m, d)

    Returns
    -------
    torch.Tensor of shape (..., n, m)

    Examples
    --------
    >>> import torch
    >>> sqeuclidean(torch.zeros(1, 2), torch.ones(1, 2))
    tensor([[2.]])
    """
    # The expanded form |x|^2 + |y|^2 - 2<x, y> uses one matmul, but it rounds relative to |x|^2:
    # far from the origin (1000 + [0, 1]^2 in float32) it would lose every digit of |x - y|^2.
    # The cost is translation invariant, so expand around a point between the two clouds; the
    # rounding is then relative to their spread and separation. (Detached: the shift cancels
    # exactly, so its gradient would only add rounding.) Clamp what is left below zero.
    centre = 0.5 * (x.detach().mean(-2, keepdim=True) + y.detach().mean(-2, keepdim=True))
    x, y = x - centre, y - centre
    sq_x = (x * x).sum(-1, keepdim=True)
    sq_y = (y * y).sum(-1, keepdim=True)
    cost = sq_x + sq_y.transpose(-1, -2) - 2.0 * x @ y.transpose(-1, -2)
    return cost.clamp_min_(0.0)


def euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distance ``|x - y|``.

    Parameters
    ----------
    x : torch.Tensor of shape (..., n, d)
    y : torch.Tensor of shape (..., m, d)

    Returns
    -------
    torch.Tensor of shape (..., n, m)

    Examples
    --------
    >>> import torch
    >>> euclidean(torch.zeros(1, 2), torch.tensor([[3.0, 4.0]]))
    tensor([[5.]])
    """
    return sqeuclidean(x, y).sqrt_()


def spherical(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Geodesic distance on the unit sphere, ``arccos(<x, y> / (1 + 1e-4))`` in radians.

    Points must lie on the unit sphere (use :func:`skmetaot.datasets.lat_lon_to_xyz` for
    latitude/longitude). The inner product is shrunk slightly and clamped to [-1, 1] so that the
    arccos and its gradient stay finite.

    Parameters
    ----------
    x : torch.Tensor of shape (..., n, 3)
    y : torch.Tensor of shape (..., m, 3)

    Returns
    -------
    torch.Tensor of shape (..., n, m)

    Examples
    --------
    >>> import torch
    >>> north, east = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    >>> round(float(spherical(north, east)), 3)
    1.571
    """
    inner = (x @ y.transpose(-1, -2)) / (1.0 + SPHERICAL_SHRINK)
    return torch.arccos(inner.clamp_(-1.0, 1.0))


_NAMED_COSTS: dict[str, CostFunction] = {
    "sqeuclidean": sqeuclidean,
    "euclidean": euclidean,
    "spherical": spherical,
}


def get_cost(cost: CostSpec) -> CostFunction:
    """Return the cost function for a name or a callable.

    Parameters
    ----------
    cost : {"sqeuclidean", "euclidean", "spherical"} or callable
        A callable must map (..., n, d) and (..., m, d) tensors to (..., n, m) costs (a tensor,
        or a numpy array, which is converted).

    Returns
    -------
    callable

    Examples
    --------
    >>> get_cost("euclidean") is euclidean
    True
    """
    if callable(cost):
        return cost
    if isinstance(cost, str) and cost in _NAMED_COSTS:
        return _NAMED_COSTS[cost]
    raise ValueError(
        f"cost={cost!r} is not supported; use one of {sorted(_NAMED_COSTS)} or a callable"
    )


def is_sqeuclidean(cost: CostSpec) -> bool:
    """True when ``cost`` is the squared Euclidean cost (the one that separates over grid axes).

    Parameters
    ----------
    cost : str or callable

    Returns
    -------
    bool

    Examples
    --------
    >>> is_sqeuclidean("sqeuclidean"), is_sqeuclidean(sqeuclidean), is_sqeuclidean(euclidean)
    (True, True, False)
    """
    return cost == "sqeuclidean" or cost is sqeuclidean


def _as_cost_tensor(matrix, like: torch.Tensor) -> torch.Tensor:
    if isinstance(matrix, torch.Tensor):
        return matrix
    # A callable written for numpy (scipy's cdist) returns an array: it is a constant cost
    # (no gradient), on the points' device and dtype.
    return as_float_tensor(matrix, "the cost callable's result", dtype=like.dtype,
                           device=like.device, finite=False)


def pairwise_cost(x: torch.Tensor, y: torch.Tensor, cost: CostSpec = "sqeuclidean") -> torch.Tensor:
    """Cost matrix between two point sets, checked for shape and finiteness.

    Parameters
    ----------
    x : torch.Tensor of shape (..., n, d)
    y : torch.Tensor of shape (..., m, d)
    cost : str or callable, default="sqeuclidean"

    Returns
    -------
    torch.Tensor of shape (..., n, m)

    Raises
    ------
    TypeError
        If the cost returns something other than an array of real numbers.
    ValueError
        If the cost has the wrong shape or is not finite.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> pairwise_cost(x, y, "sqeuclidean")
    tensor([[1.],
            [2.]])
    >>> pairwise_cost(x, y, lambda u, v: (u[:, None] - v[None]).abs().sum(-1))  # L1, callable
    tensor([[1.],
            [2.]])
    >>> from scipy.spatial.distance import cdist
    >>> pairwise_cost(x, y, lambda u, v: cdist(u, v, "cityblock"))  # a callable returning numpy
    tensor([[1.],
            [2.]])
    """
    function = get_cost(cost)
    try:
        matrix = _as_cost_tensor(function(x, y), x)
    except (TypeError, ValueError):
        if x.ndim != 3 or y.ndim != 3:
            raise
        # A callable written for one pair of (n, d) arrays (scipy's cdist): pair by pair.
        matrix = torch.stack([_as_cost_tensor(function(u, v), u) for u, v in zip(x, y,
                                                                              strict=True)])
    expected = (*torch.broadcast_shapes(x.shape[:-2], y.shape[:-2]), x.shape[-2], y.shape[-2])
    if tuple(matrix.shape) != expected:
        raise ValueError(f"the cost returned shape {tuple(matrix.shape)}, expected {expected}")
    if not bool(torch.isfinite(matrix).all()):
        raise ValueError("the cost matrix contains NaN or infinite values")
    return matrix
