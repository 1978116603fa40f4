"""What a potential predictor sees of a pair: features computed from the pair's geometry."""

from __future__ import annotations

import torch

from skmetaot._softmin import log_weights
from skmetaot.geometry import Geometry
from skmetaot.solvers.scaling import first_iteration
from skmetaot.solvers.sinkhorn import scale_on_support, sweep

#: The network inputs :class:`~skmetaot.MetaSinkhornTransport` knows (see :func:`pair_features`).
INPUTS = ("histograms", "pooled", "pooled+histograms")


def first_sinkhorn_step(
    geometry: Geometry, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The target mass pooled onto the source atoms, and the first f-update of Sinkhorn from zeros.

    From ``f = 0`` (on the atoms with mass), the c-transform ``g(0)`` sends each target atom's
    mass ``b_j`` to the source atoms in proportion to ``a``'s support and the kernel
    ``exp(-C_ij / eps)``: the a-marginal of that plan is ``pooled_i = sum_j b_j
    softmax_i(-C_ij / eps)``, the target histogram seen from the source atoms. Where it differs
    from ``a`` the potential must change (``a - pooled`` is the gradient of the dual at zero),
    and ``eps (log a - log pooled)`` is exactly the f of Sinkhorn's first iteration.

    On a fixed support the pooled histogram has the size of ``a`` whatever the target's size:
    the sphere problem's 10,000 demand weights become 100 numbers, one per supply point, that
    already average away the noise the network would otherwise have to learn to ignore.

    Parameters
    ----------
    geometry : Geometry
    a : torch.Tensor of shape (B, n)
    b : torch.Tensor of shape (B, m)

    Returns
    -------
    pooled : torch.Tensor of shape (B, n)
        Sums to one per pair; zero on atoms without mass.
    first_f : torch.Tensor of shape (B, n)
        The first f-update in cost units; 0 on atoms without mass (where f is never used).

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> geometry = DenseGeometry(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), epsilon=0.1)
    >>> pooled, first_f = first_sinkhorn_step(geometry, torch.tensor([[0.5, 0.5]]),
    ...                                       torch.tensor([[0.9, 0.1]]))
    >>> [round(v, 3) for v in pooled[0].tolist()]  # mostly on the first atom, as b
    [0.9, 0.1]
    >>> bool(first_f[0, 0] < first_f[0, 1])  # more mass arrives there: f goes down
    True
    """
    with torch.no_grad():
        off = a <= 0
        # Two kernel products where they are exact (grids, a shared dense cost); the sphere's
        # 100 x 10,000 pairs otherwise take two log-sum-exps over every cost entry.
        marginal = first_iteration(geometry, a, b)
        if marginal is not None:
            soft_min = marginal.masked_fill_(off, 1.0).log_().to(a.dtype)
        else:
            scaled_f = scale_on_support(torch.zeros_like(a), a, geometry.epsilon)
            _, soft_min = sweep(geometry, scaled_f, log_weights(b))
        # The a-marginal exp(F + k): 0 off the support (masked, not exp(-inf): a slow path).
        pooled = soft_min.masked_fill(off, 0.0).exp_().masked_fill_(off, 0.0)
        first_f = (geometry.epsilon * (log_weights(a) - soft_min)).masked_fill_(off, 0.0)
    return pooled, first_f


def pair_features(
    inputs: str, geometry: Geometry, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Network input of each pair, and the first Sinkhorn f-update when it was computed.

    Parameters
    ----------
    inputs : {"histograms", "pooled", "pooled+histograms"}
        ``"histograms"``: ``concat(n a, m b)``, as in the Meta OT paper. ``"pooled"``:
        ``concat(n a, n pooled)`` with the pooled target of :func:`first_sinkhorn_step` (a
        vector of 2n numbers whatever m). ``"pooled+histograms"``: both.
    geometry : Geometry
    a : torch.Tensor of shape (B, n)
    b : torch.Tensor of shape (B, m)

    Returns
    -------
    features : torch.Tensor of shape (B, n_features)
        Histograms scaled to mean one, so that the network's inputs are of order one for any
        support size.
    first_f : torch.Tensor of shape (B, n) or None
        The first f-update (None for ``"histograms"``, which does not compute it).

    Examples
    --------
    >>> import torch
    >>> from skmetaot.geometry import DenseGeometry
    >>> geometry = DenseGeometry(torch.rand(3, 5), epsilon=0.1)
    >>> a, b = torch.full((2, 3), 1 / 3), torch.full((2, 5), 0.2)
    >>> [pair_features(name, geometry, a, b)[0].shape[1] for name in INPUTS]
    [8, 6, 11]
    """
    n, m = a.shape[-1], b.shape[-1]
    if inputs == "histograms":
        return torch.cat([a * n, b * m], dim=-1), None
    pooled, first_f = first_sinkhorn_step(geometry, a, b)
    parts = [a * n, pooled * n]
    if inputs == "pooled+histograms":
        parts.append(b * m)
    elif inputs != "pooled":
        raise ValueError(f"inputs={inputs!r} is not one of {', '.join(map(repr, INPUTS))}")
    return torch.cat(parts, dim=-1), first_f
