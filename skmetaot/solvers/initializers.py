"""Initial dual potentials for Sinkhorn: zeros and the Gaussian (Thornton & Cuturi, 2022) one.

An initialiser proposes the source potential f (cost units) for a batch of problems; the solver
derives g = g(f) exactly, so only f is needed.
"""

from __future__ import annotations

import torch

from skmetaot._gaussian import bures_map, sqeuclidean_potential, weighted_moments


def zeros_init(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The cold start: f = 0.

    Parameters
    ----------
    x : torch.Tensor of shape (n, d) or (B, n, d)
        Source supports (unused; kept so every initialiser has one signature).
    a : torch.Tensor of shape (B, n)
        Source weights.

    Returns
    -------
    torch.Tensor of shape (B, n)

    Examples
    --------
    >>> import torch
    >>> zeros_init(torch.rand(3, 2), torch.full((4, 3), 1 / 3))
    tensor([[0., 0., 0.],
            [0., 0., 0.],
            [0., 0., 0.],
            [0., 0., 0.]])
    """
    return torch.zeros_like(a)


def gaussian_init(
    x: torch.Tensor, a: torch.Tensor, y: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Potential of the closed-form OT map between Gaussian fits of the two measures.

    Fit N(m_a, S_a) to (x, a) and N(m_b, S_b) to (y, b); the Monge map for the squared Euclidean
    cost is ``T(x) = m_b + A (x - m_a)`` with
    ``A = S_a^{-1/2} (S_a^{1/2} S_b S_a^{1/2})^{1/2} S_a^{-1/2}``, and the matching dual potential
    for ``c(x, y) = |x - y|^2`` is, up to a constant::

        f(x) = |x|^2 - (x - m_a)^T A (x - m_a) - 2 <x, m_b>

    For other costs the same formula is a heuristic starting point.

    Parameters
    ----------
    x : torch.Tensor of shape (n, d) or (B, n, d)
    a : torch.Tensor of shape (B, n)
    y : torch.Tensor of shape (m, d) or (B, m, d)
    b : torch.Tensor of shape (B, m)

    Returns
    -------
    torch.Tensor of shape (B, n)
        f at the source points, centred to zero mean under a.

    Examples
    --------
    Between two Gaussian-like clouds the Gaussian initialisation is close to the solution, so
    Sinkhorn needs fewer iterations than from zeros:

    >>> import torch
    >>> from skmetaot import sinkhorn
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 2, generator=gen, dtype=torch.float64)
    >>> y = 3.0 + 0.5 * torch.randn(200, 2, generator=gen, dtype=torch.float64)
    >>> a = b = torch.full((1, 200), 1 / 200, dtype=torch.float64)
    >>> gaussian_init(x, a, y, b).shape
    torch.Size([1, 200])
    >>> cold = sinkhorn(a, b, x=x, y=y, epsilon=0.1, tol=1e-4, init="zeros")
    >>> warm = sinkhorn(a, b, x=x, y=y, epsilon=0.1, tol=1e-4, init="gaussian")
    >>> bool(warm.n_iter[0] < cold.n_iter[0])
    True
    """
    # f is unchanged when both supports move together: work relative to a point of x, so that
    # the moments below round relative to the clouds' spread, not to their distance from the
    # origin (float32 supports at 1000 + [0, 1]^2 would otherwise lose most digits of f).
    origin = x.detach()[..., :1, :]
    x, y = x - origin, y - origin
    mean_a, cov_a = weighted_moments(x, a)
    mean_b, cov_b = weighted_moments(y, b)
    dim = cov_a.shape[-1]
    # Degenerate fits (a single atom, collinear points) get a ridge relative to their scale.
    scale = (cov_a.diagonal(dim1=-2, dim2=-1).sum(-1) + cov_b.diagonal(dim1=-2, dim2=-1).sum(-1))
    floor = (scale / dim).clamp_min(torch.finfo(a.dtype).tiny) * 1e-6
    eye = torch.eye(dim, dtype=a.dtype, device=a.device)
    matrix, bias = bures_map(mean_a, cov_a + floor[:, None, None] * eye, mean_b,
                             cov_b + floor[:, None, None] * eye, floor=floor)
    points = x if x.ndim == 3 else x.expand(a.shape[0], *x.shape)
    f = sqeuclidean_potential(points, matrix, bias)
    return f - (a * f).sum(-1, keepdim=True)
