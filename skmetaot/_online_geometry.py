"""The online geometry: soft-min reductions whose costs are computed from the supports by blocks.

A problem between point clouds of n and m points never holds its (n, m) cost: each reduction
computes a block of rows of costs from the supports, reduces it and drops it (the approach of
OTT-JAX's ``PointCloud(batch_size=...)`` and of KeOps' online reductions). Memory is
O((n + m) d) plus one block; time is that of the dense reduction plus the cost evaluation.

For the squared Euclidean cost the block is a single matrix product: with centred supports,
``G_j - |x_i - y_j|^2 / eps = (G_j - |y_j|^2 / eps) + 2 <x_i, y_j> / eps - |x_i|^2 / eps``, so
appending the column of ones to x and the row ``G - |y|^2 / eps`` to ``2 y / eps`` gives every
exponent of the block from one GEMM, and the last term leaves the log-sum-exp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from skmetaot._softmin import (
    block_rows,
    lse_,
    plan_cost_moment,
    reduce_blocks,
    softmin_last,
)
from skmetaot.costs import CostSpec, is_sqeuclidean, pairwise_cost


def restrict_to_used(geometry: Any, source_used: torch.Tensor, target_used: torch.Tensor,
                     build: Callable[[torch.Tensor, torch.Tensor], Any]):
    """``(build(kept sources, kept targets), kept sources, kept targets)``; ``geometry`` if all.

    What ``restrict`` of the dense and online geometries share: the kept atoms' indices, and
    the geometry itself when nothing is dropped (nothing is rebuilt).

    Parameters
    ----------
    geometry : object
        The geometry being restricted.
    source_used, target_used : torch.Tensor of bool, shape (n,), (m,)
    build : callable
        ``build(source_index, target_index)`` returns the restricted geometry.

    Returns
    -------
    geometry, source_index, target_index

    Examples
    --------
    >>> import torch
    >>> used = torch.tensor([True, False, True])
    >>> restrict_to_used("whole", used, used, lambda i, j: (i.tolist(), j.tolist()))[0]
    ([0, 2], [0, 2])
    """
    source_index = source_used.nonzero()[:, 0]
    target_index = target_used.nonzero()[:, 0]
    if len(source_index) == len(source_used) and len(target_index) == len(target_used):
        return geometry, source_index, target_index
    return build(source_index, target_index), source_index, target_index


class OnlineGeometry:
    """Soft-min reductions between point clouds, costs computed block by block from the supports.

    Implements the interface of :class:`~skmetaot.geometry.DenseGeometry` (``lse_source``,
    ``lse_target``, ``transport_cost``, ``select``, ``restrict``, ``cost_matrix``) without ever
    holding an (n, m) matrix: memory is the supports plus temporaries of about 1 MB, for any n
    and m, on the CPU and on CUDA. :func:`skmetaot.sinkhorn` uses it with
    ``geometry="online"``, and by default (``"auto"``) when one problem's cost would exceed
    2^25 entries (e.g. 5,800 x 5,800 points).

    Parameters
    ----------
    x : torch.Tensor of shape (n, d) or (B, n, d)
        Source support, shared by the batch or one per problem.
    y : torch.Tensor of shape (m, d) or (B, m, d)
        Target support.
    epsilon : float
        Entropic regularisation.
    cost : str or callable, default="sqeuclidean"
        Any cost of :func:`skmetaot.costs.pairwise_cost`; the squared Euclidean cost takes a
        one-GEMM path per block, others are evaluated on each block of rows.

    Notes
    -----
    Each Sinkhorn iteration recomputes the costs: about 2 ns per entry and iteration on one CPU
    core in float32 (20,000 x 20,000 points: 1.7 s), where a precomputed dense kernel is a
    memory-bound matrix product. Under autograd (potentials that require grad) the blocks are
    kept for the backward pass, so memory is then that of the dense cost.

    Examples
    --------
    The reductions agree with the dense geometry on the same supports:

    >>> import torch
    >>> from skmetaot.costs import sqeuclidean
    >>> from skmetaot.geometry import DenseGeometry
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.rand(300, 2, generator=gen, dtype=torch.float64)
    >>> y = torch.rand(200, 2, generator=gen, dtype=torch.float64)
    >>> online, dense = OnlineGeometry(x, y, 0.01), DenseGeometry(sqeuclidean(x, y), 0.01)
    >>> f = torch.randn(2, 300, generator=gen, dtype=torch.float64)
    >>> torch.allclose(online.lse_source(f), dense.lse_source(f))
    True
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                 cost: CostSpec = "sqeuclidean") -> None:
        if x.ndim not in (2, 3) or y.ndim not in (2, 3) or x.shape[-1] != y.shape[-1]:
            raise ValueError(f"supports must be (n, d) and (m, d), or (B, n, d) and (B, m, d); "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        self.x, self.y = x, y
        self.epsilon = float(epsilon)
        self.cost = cost
        self.batched = x.ndim == 3 or y.ndim == 3
        #: dtype in which the reductions compute (solvers keep their iterates in it).
        self.work_dtype = x.dtype
        self._fast = is_sqeuclidean(cost)
        if self._fast:
            # Expand |x - y|^2 around a point between the clouds (as costs.sqeuclidean does),
            # so that rounding is relative to their spread, not to their distance from 0.
            centre = 0.5 * (x.mean(-2, keepdim=True) + y.mean(-2, keepdim=True))
            self._x, self._y = x - centre, y - centre
            self._sq_x = (self._x * self._x).sum(-1) / self.epsilon
            self._sq_y = (self._y * self._y).sum(-1) / self.epsilon

    def select(self, indices: torch.Tensor) -> OnlineGeometry:
        """The geometry of a sub-batch (shared supports are kept as they are)."""
        if not self.batched:
            return self
        pick = [s[indices] if s.ndim == 3 else s for s in (self.x, self.y)]
        return OnlineGeometry(*pick, self.epsilon, self.cost)

    def restrict(self, source_used: torch.Tensor, target_used: torch.Tensor):
        """Drop atoms that carry no mass in any problem of the batch (they never contribute).

        Parameters
        ----------
        source_used, target_used : torch.Tensor of bool, shape (n,), (m,)

        Returns
        -------
        geometry : OnlineGeometry
            The geometry on the kept atoms (``self`` when nothing is dropped).
        source_index, target_index : torch.Tensor of long
            Kept atoms, in order.
        """
        return restrict_to_used(self, source_used, target_used, lambda rows, cols: OnlineGeometry(
            self.x.index_select(-2, rows), self.y.index_select(-2, cols), self.epsilon,
            self.cost))

    def cost_matrix(self) -> torch.Tensor:
        """The dense (n, m) or (B, n, m) cost, materialised on demand (e.g. for plans)."""
        return pairwise_cost(self.x, self.y, self.cost)

    def lse_source(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_i(F[b, i] - C[i, j] / eps)`` for F of shape (B, n); returns (B, m)."""
        return self._softmin(potential, target_rows=True)

    def lse_target(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_j(G[b, j] - C[i, j] / eps)`` for G of shape (B, m); returns (B, n)."""
        return self._softmin(potential, target_rows=False)

    def transport_cost(self, scaled_f: torch.Tensor, scaled_g: torch.Tensor) -> torch.Tensor:
        """``<C, P>`` of the plans ``P_ij = exp(F_i + G_j - C_ij / eps)``, block by block.

        Parameters
        ----------
        scaled_f : torch.Tensor of shape (B, n)
            ``f / eps`` (-inf on atoms without mass).
        scaled_g : torch.Tensor of shape (B, m)
            ``g / eps``.

        Returns
        -------
        torch.Tensor of shape (B,), float64

        Examples
        --------
        >>> import torch
        >>> x, y = torch.rand(30, 2, dtype=torch.float64), torch.rand(20, 2, dtype=torch.float64)
        >>> geometry = OnlineGeometry(x, y, 0.5)
        >>> f, g = torch.zeros(1, 30), torch.full((1, 20), -1.0)
        >>> cost = geometry.cost_matrix()
        >>> plan = torch.exp(f[0, :, None] + g[0, None, :] - cost / 0.5)
        >>> torch.allclose(geometry.transport_cost(f, g), (cost * plan).sum())
        True
        """
        return plan_cost_moment(scaled_f, scaled_g, self.x.shape[-2], self._cost_rows,
                                self.epsilon)

    def _cost_rows(self, start: int, stop: int) -> torch.Tensor:
        """Costs between source atoms ``start:stop`` and every target atom."""
        return pairwise_cost(self.x[..., start:stop, :], self.y, self.cost)

    def _softmin(self, potential: torch.Tensor, *, target_rows: bool) -> torch.Tensor:
        """Soft-min over the other side for each atom of one side (target atoms for lse_source).

        The output's atoms are the rows of each block, the potential's atoms its columns.
        """
        rows, cols = (self.y, self.x) if target_rows else (self.x, self.y)
        step = block_rows(potential.numel())
        if torch.is_grad_enabled() and potential.requires_grad:
            return reduce_blocks(rows.shape[-2], step, lambda start, stop: softmin_last(
                potential, self._scaled_block(start, stop, target_rows)))
        if not self._fast:
            return reduce_blocks(rows.shape[-2], step, lambda start, stop: lse_(torch.sub(
                potential[:, None, :], self._scaled_block(start, stop, target_rows))))
        rows_c, cols_c = (self._y, self._x) if target_rows else (self._x, self._y)
        sq_rows, sq_cols = (self._sq_y, self._sq_x) if target_rows else (self._sq_x, self._sq_y)
        # [rows, 1] @ [2 cols / eps, potential - |cols|^2 / eps]^T: every exponent of a block
        # in one matrix product (per problem: the potential row differs between problems).
        dtype = potential.dtype
        ones = rows_c.new_ones(*rows_c.shape[:-1], 1)
        rows_aug = torch.cat([rows_c, ones], -1).to(dtype)
        # Atoms without mass (-inf) enter the product as a huge finite number, never as -inf
        # (a GEMM may multiply it by a zero of its padding: NaN); problems without any mass on
        # this side are -inf again at the end.
        shifted = (potential - sq_cols.to(dtype)).clamp_min_(-0.25 * torch.finfo(dtype).max)
        cols_aug = torch.cat([(2.0 / self.epsilon) * cols_c.to(dtype).expand(
            potential.shape[0], *cols_c.shape[-2:]), shifted[..., None]], -1)  # (B, k, d + 1)
        dead = torch.isneginf(potential).all(-1, keepdim=True)

        def reduce(start: int, stop: int) -> torch.Tensor:
            block = torch.matmul(rows_aug[..., start:stop, :], cols_aug.transpose(-1, -2))
            return lse_(block) - sq_rows[..., start:stop].to(dtype)

        return reduce_blocks(rows.shape[-2], step, reduce).masked_fill_(dead, float("-inf"))

    def _scaled_block(self, start: int, stop: int, target_rows: bool) -> torch.Tensor:
        """``C / eps`` for output atoms ``start:stop`` against every atom of the other side."""
        if target_rows:
            block = pairwise_cost(self.x, self.y[..., start:stop, :], self.cost)
            block = block.transpose(-1, -2)
        else:
            block = pairwise_cost(self.x[..., start:stop, :], self.y, self.cost)
        return block / self.epsilon
