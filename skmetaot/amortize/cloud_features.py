"""What a potential predictor sees of a pair of point clouds: per-atom features of its costs.

The features are functions of the cost matrix and the weights alone (no coordinates), divided
by the pair's cost scale ``s = sum_ij a_i b_j C_ij``: so they are the same in every dimension,
invariant to isometries of the supports, equivariant to permutations of either measure's atoms,
and any cost (squared Euclidean, spherical, a callable) gives them. Atoms without mass
(padding) take part in no sum, so padding a pair does not change its features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Temperatures of the soft nearest-neighbour features, in units of epsilon: epsilon itself
#: gives Sinkhorn's first update; the wider ones see the coarse structure that decides the
#: slowly converging directions of Sinkhorn.
TEMPERATURES = (1.0, 8.0)
#: Floor of the log-mass features (relative to uniform mass).
_LOG_FLOOR = -20.0
#: Features per atom (both measures have as many).
N_ATOM_FEATURES = 3 + 2 * len(TEMPERATURES) + 1


@dataclass
class CloudFeatures:
    """The network's inputs for a padded batch of pairs, and what the potential is built on.

    Attributes
    ----------
    source, target : torch.Tensor of shape (B, n, k), (B, m, k)
        Per-atom features (``k = N_ATOM_FEATURES``).
    cost : torch.Tensor of shape (B, n, m)
        The cost divided by the scale (what attention layers use as a geometric bias).
    scale : torch.Tensor of shape (B,)
        ``sum_ij a_i b_j C_ij`` (clamped away from zero): the potential's unit.
    first_f : torch.Tensor of shape (B, n)
        Sinkhorn's first f-update from zeros, in cost units (0 on atoms without mass).

    Examples
    --------
    >>> import torch
    >>> features = cloud_features(torch.rand(1, 3, 4), torch.full((1, 3), 1 / 3),
    ...                           torch.full((1, 4), 0.25), epsilon=0.1)
    >>> features.scale.shape, features.first_f.shape
    (torch.Size([1]), torch.Size([1, 3]))
    """

    source: torch.Tensor
    target: torch.Tensor
    cost: torch.Tensor
    scale: torch.Tensor
    first_f: torch.Tensor


def _log_mass(weights: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``log(n w)``: 0 for uniform weights; atoms without mass get 0 (they are masked)."""
    safe = torch.where(weights > 0, weights * count[:, None], torch.ones_like(weights))
    return torch.log(safe).clamp_min(_LOG_FLOOR)


def _side_features(cost: torch.Tensor, own: torch.Tensor, other: torch.Tensor,
                   epsilon: float, scale: torch.Tensor, base: torch.Tensor | None):
    """Features of the atoms of the measure ``own`` (rows of ``cost``) against ``other``."""
    count = (own > 0).sum(-1).to(own.dtype)
    log_other = torch.log(other)  # -inf on atoms without mass: they drop out of every LSE
    log_own = torch.log(own)
    parts = [_log_mass(own, count), torch.log(count)[:, None].expand_as(own),
             (cost * other[:, None, :]).sum(-1) / scale[:, None]]
    first = None
    for factor in TEMPERATURES:
        t = factor * epsilon
        logits = log_other[:, None, :] - cost / t  # (B, n, m)
        soft_min = -t * torch.logsumexp(logits, -1)  # soft distance to the other measure
        # Mass of ``other`` pooled onto these atoms through the kernel (the marginal of the plan
        # of zero potentials), relative to uniform.
        column = torch.logsumexp(log_own[:, :, None] - cost / t, 1)  # (B, m)
        log_pooled = log_own + torch.logsumexp(logits - column[:, None, :], -1)
        # In the log domain (far atoms receive exp(-1000) mass), floored at e^-20 of uniform.
        log_pooled = (log_pooled + torch.log(count)[:, None]).clamp_min(_LOG_FLOOR)
        parts += [soft_min / scale[:, None],
                  torch.where(own > 0, log_pooled, torch.zeros_like(own))]
        if first is None:  # t = epsilon: f1 = eps log a + soft_min
            first = torch.where(own > 0, epsilon * log_own + soft_min, torch.zeros_like(own))
    parts.append(torch.zeros_like(own) if base is None else base / scale[:, None])
    features = torch.stack(parts, -1)
    return torch.where((own > 0)[..., None], features, torch.zeros_like(features)), first


def cloud_features(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float,
                   baseline: torch.Tensor | None = None) -> CloudFeatures:
    """Per-atom features of a padded batch of pairs (see the module docstring).

    Parameters
    ----------
    cost : torch.Tensor of shape (B, n, m)
    a : torch.Tensor of shape (B, n)
        Source weights (zero on padding atoms).
    b : torch.Tensor of shape (B, m)
        Target weights.
    epsilon : float
    baseline : torch.Tensor of shape (B, n), optional
        A potential the network corrects (e.g. the Gaussian one); it becomes a feature too.

    Returns
    -------
    CloudFeatures

    Examples
    --------
    >>> import torch
    >>> cost = torch.rand(2, 5, 7)
    >>> a, b = torch.full((2, 5), 0.2), torch.full((2, 7), 1 / 7)
    >>> features = cloud_features(cost, a, b, epsilon=0.1)
    >>> features.source.shape, features.target.shape
    (torch.Size([2, 5, 8]), torch.Size([2, 7, 8]))
    """
    with torch.no_grad():
        used = (a[:, :, None] > 0) & (b[:, None, :] > 0)
        # Padding points may sit anywhere: their costs are zeroed so that they cannot overflow.
        cost = torch.where(used, cost, torch.zeros_like(cost))
        scale = torch.einsum("bn,bnm,bm->b", a, cost, b)
        scale = scale.clamp_min(torch.finfo(cost.dtype).tiny ** 0.5)
        source, first_f = _side_features(cost, a, b, epsilon, scale, baseline)
        target, _ = _side_features(cost.transpose(1, 2), b, a, epsilon, scale, None)
        return CloudFeatures(source, target, cost / scale[:, None, None], scale, first_f)
