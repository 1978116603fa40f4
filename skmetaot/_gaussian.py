"""Gaussian optimal transport in closed form: moments, PSD roots, the Bures map and W2.

Between ``N(m_a, S_a)`` and ``N(m_b, S_b)`` the optimal map for the squared Euclidean cost is
affine, ``T(x) = A x + c`` with the symmetric positive semi-definite

    ``A = S_a^{-1/2} (S_a^{1/2} S_b S_a^{1/2})^{1/2} S_a^{-1/2}``,  ``c = m_b - A m_a``,

the gradient of the convex quadratic ``phi(x) = x^T A x / 2 + <c, x>``, and

    ``W2^2 = |m_a - m_b|^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``.

The Sinkhorn initialiser, the W2GN baseline, the Gaussian datasets and :mod:`skmetaot.metrics`
all use these functions. Everything is in torch and batched over leading dimensions; numpy
callers convert (the matrices are d x d, so the conversion costs nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["bures_map", "bures_potential", "bures_transport", "bures_wasserstein_squared",
           "check_moment_shapes", "psd_power", "sqeuclidean_potential", "weighted_moments"]

#: The names of the four moments, in the order every function here takes them.
MOMENT_NAMES = ("mean_a", "cov_a", "mean_b", "cov_b")


def _symmetric(matrix: torch.Tensor) -> torch.Tensor:
    return (matrix + matrix.transpose(-1, -2)) / 2


def _trace(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.diagonal(dim1=-2, dim2=-1).sum(-1)


def check_moment_shapes(mean_a: Any, cov_a: Any, mean_b: Any, cov_b: Any, *,
                        names: Sequence[str] = MOMENT_NAMES) -> int:
    """Check that two Gaussians' moments have shapes (d,), (d, d), (d,), (d, d); return d.

    Parameters
    ----------
    mean_a, cov_a, mean_b, cov_b : numpy.ndarray or torch.Tensor
        Anything with ``shape`` and ``ndim``.
    names : sequence of four str, default=("mean_a", "cov_a", "mean_b", "cov_b")
        How to call the four in the error message.

    Returns
    -------
    int
        The dimension d.

    Raises
    ------
    ValueError
        Naming the first of the four whose shape is wrong.

    Examples
    --------
    >>> import numpy as np
    >>> check_moment_shapes(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))
    2
    >>> check_moment_shapes(np.zeros(2), np.eye(3), np.ones(2), np.eye(2))
    Traceback (most recent call last):
    ...
    ValueError: cov_a has shape (3, 3), expected (2, 2)
    """
    dim = mean_a.shape[0] if mean_a.ndim == 1 else -1
    for name, value, shape in zip(names, (mean_a, cov_a, mean_b, cov_b),
                                  ((dim,), (dim, dim)) * 2, strict=True):
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {shape}")
    return int(dim)


def weighted_moments(points: torch.Tensor,
                     weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) covariance of weighted point clouds.

    Parameters
    ----------
    points : torch.Tensor of shape (..., n, d)
        One support shared by every measure of the batch, or one support per measure.
    weights : torch.Tensor of shape (..., n), optional
        Probability weights (each row sums to one); uniform when omitted.

    Returns
    -------
    mean : torch.Tensor of shape (..., d)
    cov : torch.Tensor of shape (..., d, d)
        ``sum_i w_i (x_i - mean) (x_i - mean)^T``, the covariance of the weighted measure
        itself (no ``n / (n - 1)`` correction).

    Examples
    --------
    >>> import torch
    >>> points = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    >>> mean, cov = weighted_moments(points, torch.tensor([[0.5, 0.5], [0.75, 0.25]]).double())
    >>> mean
    tensor([[1.0000, 0.0000],
            [0.5000, 0.0000]], dtype=torch.float64)
    >>> cov[:, 0, 0]
    tensor([1.0000, 0.7500], dtype=torch.float64)
    """
    if weights is None:
        weights = torch.full(points.shape[:-1], 1.0 / points.shape[-2], dtype=points.dtype,
                             device=points.device)
    batch = torch.broadcast_shapes(points.shape[:-2], weights.shape[:-1])
    points = points.expand(*batch, *points.shape[-2:])
    weights = weights.expand(*batch, weights.shape[-1])
    mean = torch.einsum("...n,...nd->...d", weights, points)
    centred = points - mean.unsqueeze(-2)
    cov = torch.einsum("...n,...nd,...ne->...de", weights, centred, centred)
    return mean, cov


def psd_power(matrix: torch.Tensor, power: float = 0.5,
              floor: float | torch.Tensor = 0.0) -> torch.Tensor:
    """``matrix ** power`` of symmetric positive semi-definite matrices, by eigendecomposition.

    Parameters
    ----------
    matrix : torch.Tensor of shape (..., d, d)
        Symmetric up to rounding: its symmetric part is used.
    power : float, default=0.5
        0.5 is the square root, -0.5 the inverse square root.
    floor : float or torch.Tensor of shape (...), default=0.0
        Lower bound on the eigenvalues before the power is taken: 0 turns the rounding errors
        of a singular matrix into exact zeros; a negative ``power`` needs a positive floor
        unless the matrix is known to be definite.

    Returns
    -------
    torch.Tensor of shape (..., d, d)

    Examples
    --------
    >>> import torch
    >>> psd_power(torch.tensor([[4.0, 0.0], [0.0, 9.0]]))
    tensor([[2., 0.],
            [0., 3.]])
    >>> psd_power(torch.tensor([[4.0, 0.0], [0.0, 0.0]]), -0.5, floor=0.01)
    tensor([[ 0.5000,  0.0000],
            [ 0.0000, 10.0000]])
    """
    # eigh reads one triangle only: a product such as R S R, symmetric up to rounding, would
    # otherwise give a root that depends on which triangle the rounding fell in.
    values, vectors = torch.linalg.eigh(_symmetric(matrix))
    if isinstance(floor, torch.Tensor):
        values = torch.maximum(values, floor.unsqueeze(-1))
    else:
        values = values.clamp_min(floor)
    if power == 0.5:
        values = values.sqrt()
    elif power == -0.5:
        values = values.rsqrt()
    else:
        values = values.pow(power)
    return (vectors * values.unsqueeze(-2)) @ vectors.transpose(-1, -2)


def bures_map(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor,
              cov_b: torch.Tensor, *,
              floor: float | torch.Tensor = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The optimal (Monge) map ``T(x) = A x + c`` from ``N(m_a, S_a)`` to ``N(m_b, S_b)``.

    ``A = S_a^{-1/2} (S_a^{1/2} S_b S_a^{1/2})^{1/2} S_a^{-1/2}`` is symmetric positive
    semi-definite and satisfies ``A S_a A = S_b``; ``c = m_b - A m_a``.

    Parameters
    ----------
    mean_a, mean_b : torch.Tensor of shape (..., d)
    cov_a, cov_b : torch.Tensor of shape (..., d, d)
        Symmetric positive semi-definite; ``cov_a`` definite unless ``floor`` is positive.
    floor : float or torch.Tensor of shape (...), default=0.0
        Lower bound on the eigenvalues of ``cov_a`` in its roots (see :func:`psd_power`).

    Returns
    -------
    matrix : torch.Tensor of shape (..., d, d)
        A, exactly symmetric.
    bias : torch.Tensor of shape (..., d)
        c.

    Examples
    --------
    >>> import torch
    >>> matrix, bias = bures_map(torch.zeros(2), torch.eye(2), torch.ones(2), 4 * torch.eye(2))
    >>> matrix, bias
    (tensor([[2., 0.],
            [0., 2.]]), tensor([1., 1.]))
    >>> bures_transport(torch.tensor([[1.0, 0.0]]), matrix, bias)
    tensor([[3., 1.]])
    """
    root_a = psd_power(cov_a, 0.5, floor)
    inv_root_a = psd_power(cov_a, -0.5, floor)
    matrix = _symmetric(inv_root_a @ psd_power(root_a @ cov_b @ root_a) @ inv_root_a)
    bias = mean_b - (matrix @ mean_a.unsqueeze(-1)).squeeze(-1)
    return matrix, bias


def bures_transport(points: torch.Tensor, matrix: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
    """The affine map ``x -> A x + c`` of :func:`bures_map` at points (..., n, d).

    Examples
    --------
    >>> import torch
    >>> bures_transport(torch.ones(1, 2), 2 * torch.eye(2), torch.tensor([0.0, 1.0]))
    tensor([[2., 3.]])
    """
    return points @ matrix.transpose(-1, -2) + bias.unsqueeze(-2)


def bures_potential(points: torch.Tensor, matrix: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
    """The convex potential ``phi(x) = x^T A x / 2 + <c, x>`` whose gradient is the Bures map.

    Parameters
    ----------
    points : torch.Tensor of shape (..., n, d)
    matrix : torch.Tensor of shape (..., d, d)
        A symmetric A (as :func:`bures_map` returns it).
    bias : torch.Tensor of shape (..., d)

    Returns
    -------
    torch.Tensor of shape (..., n)

    Examples
    --------
    >>> import torch
    >>> bures_potential(torch.tensor([[1.0, 2.0]]), 2 * torch.eye(2), torch.tensor([1.0, 0.0]))
    tensor([6.])
    """
    quadratic = ((points @ matrix) * points).sum(-1)
    return 0.5 * quadratic + (points @ bias.unsqueeze(-1)).squeeze(-1)


def sqeuclidean_potential(points: torch.Tensor, matrix: torch.Tensor,
                          bias: torch.Tensor) -> torch.Tensor:
    """The dual (Kantorovich) potential ``f = |x|^2 - 2 phi(x)`` of the cost ``|x - y|^2``.

    With ``phi`` the :func:`bures_potential`, ``f`` and its c-transform solve the dual of OT
    between the two Gaussians for ``c(x, y) = |x - y|^2`` (up to a constant shared by the two
    potentials): it is the potential Sinkhorn converges to as epsilon goes to zero.

    Parameters
    ----------
    points, matrix, bias : torch.Tensor
        As for :func:`bures_potential`.

    Returns
    -------
    torch.Tensor of shape (..., n)

    Examples
    --------
    The identity map (A = I, c = 0) costs nothing, and so does its potential:

    >>> import torch
    >>> sqeuclidean_potential(torch.randn(3, 2), torch.eye(2), torch.zeros(2)).abs().max() < 1e-6
    tensor(True)
    """
    return (points * points).sum(-1) - 2.0 * bures_potential(points, matrix, bias)


def bures_wasserstein_squared(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor,
                              cov_b: torch.Tensor) -> torch.Tensor:
    """Squared W2 distance between Gaussians (Bures-Wasserstein), in closed form.

    ``W2^2 = |m_a - m_b|^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``.

    Parameters
    ----------
    mean_a, mean_b : torch.Tensor of shape (..., d)
    cov_a, cov_b : torch.Tensor of shape (..., d, d)
        Symmetric positive semi-definite.

    Returns
    -------
    torch.Tensor of shape (...)
        Non-negative (rounding below zero is clipped).

    Examples
    --------
    >>> import torch
    >>> bures_wasserstein_squared(torch.zeros(2), torch.eye(2), torch.ones(2), 4 * torch.eye(2))
    tensor(4.)
    """
    root_a = psd_power(cov_a)
    cross = psd_power(root_a @ cov_b @ root_a)
    value = (((mean_a - mean_b) ** 2).sum(-1) + _trace(cov_a) + _trace(cov_b)
             - 2 * _trace(cross))
    return value.clamp_min(0)
