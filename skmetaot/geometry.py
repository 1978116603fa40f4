"""Kernels of the log-domain Sinkhorn iteration: the two soft-min reductions over a cost.

A geometry holds a cost and epsilon and applies, for a batch of scaled potentials
F = f / eps (B, n) and G = g / eps (B, m),

* ``lse_source(F)[b, j] = LSE_i(F[b, i] - C[i, j] / eps)``  (the g-update), and
* ``lse_target(G)[b, i] = LSE_j(G[b, j] - C[i, j] / eps)``  (the f-update).

:class:`DenseGeometry` works from a cost matrix shared by the batch (n, m) or one per problem
(B, n, m), never materialising (B, n, m) when one matrix serves; :class:`GridGeometry` applies the
squared Euclidean cost on product grids axis by axis ("convolutional Wasserstein", done in log
space), which costs O(n^{1 + 1/D}) per problem instead of O(n^2); :class:`OnlineGeometry`
computes the costs between point clouds block by block from the supports, never holding an
(n, m) matrix. :func:`make_geometry` chooses between them. The grid kernel lives in
``skmetaot._grid_geometry``, the online one in ``skmetaot._online_geometry`` and the soft-min
arithmetic they share in ``skmetaot._softmin``.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from skmetaot._grid_geometry import GridGeometry, detect_grid
from skmetaot._kernel_softmin import softmin_matmul
from skmetaot._online_geometry import OnlineGeometry, restrict_to_used
from skmetaot._softmin import (
    exp_or_zero_,
    plan_cost_moment,
    softmin_blocks,
    softmin_last,
    softmin_rows,
)
from skmetaot.costs import CostSpec, pairwise_cost

__all__ = ["DenseGeometry", "Geometry", "GridGeometry", "OnlineGeometry", "detect_grid",
           "make_geometry", "softmin_blocks", "softmin_last", "softmin_matmul"]

class Geometry(Protocol):
    """What every Sinkhorn kernel provides: the protocol solvers, losses and initialisers use.

    :class:`DenseGeometry`, :class:`GridGeometry` and :class:`OnlineGeometry` implement it. A
    new kernel (e.g. a low-rank or a KeOps one) implements these and every solver, loss and
    initialiser of the package can use it; :func:`skmetaot.solvers.update_potential` is the
    Sinkhorn half-step written once on top of ``lse_source`` and ``lse_target``.

    Attributes
    ----------
    epsilon : float
        Entropic regularisation, in cost units.
    batched : bool
        Whether the geometry holds one cost per problem (a leading batch axis).
    work_dtype : torch.dtype
        The dtype its reductions compute in (solvers keep their iterates in it).

    Examples
    --------
    Any object with these members runs in the solver, e.g. a dense kernel written from scratch:

    >>> import torch
    >>> from skmetaot.solvers import solve_batch
    >>> class Exact:
    ...     batched, work_dtype = False, torch.float64
    ...     def __init__(self, cost, epsilon):
    ...         self.cost, self.epsilon = cost, epsilon
    ...     def lse_source(self, f):
    ...         return torch.logsumexp(f[:, :, None] - self.cost / self.epsilon, dim=1)
    ...     def lse_target(self, g):
    ...         return torch.logsumexp(g[:, None, :] - self.cost / self.epsilon, dim=2)
    ...     def select(self, indices):
    ...         return self
    ...     def restrict(self, source_used, target_used):  # keeps every atom
    ...         return self, torch.arange(len(source_used)), torch.arange(len(target_used))
    >>> cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> a, b = torch.tensor([[0.5, 0.5]], dtype=torch.float64), torch.tensor([[0.2, 0.8]],
    ...                                                                        dtype=torch.float64)
    >>> state = solve_batch(Exact(cost, 0.1), a, b, torch.zeros_like(a), tol=1e-9, max_iter=500)
    >>> bool(state.converged[0])
    True
    """

    epsilon: float
    batched: bool
    work_dtype: torch.dtype

    def lse_source(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_i(F[b, i] - C[i, j] / eps)`` for F of shape (B, n); returns (B, m)."""

    def lse_target(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_j(G[b, j] - C[i, j] / eps)`` for G of shape (B, m); returns (B, n)."""

    def select(self, indices: torch.Tensor) -> Geometry:
        """The geometry of the sub-batch ``indices`` (itself when the cost is shared)."""

    def restrict(self, source_used: torch.Tensor,
                 target_used: torch.Tensor) -> tuple[Geometry, torch.Tensor, torch.Tensor]:
        """The geometry on the atoms that carry mass, and the kept source and target indices."""

    def cost_matrix(self) -> torch.Tensor:
        """The dense (n, m) or (B, n, m) cost, materialised on demand (plans, maps)."""

    def transport_cost(self, scaled_f: torch.Tensor, scaled_g: torch.Tensor) -> torch.Tensor:
        """``<C, P>`` of the plans of ``(f / eps, g / eps)``, float64, without forming them."""


#: Upper bound on the elements of per-problem (B, n, m) cost tensors held at once (~256 MB in
#: float64): collections with per-pair supports are solved in batches that respect it.
DENSE_CHUNK_ELEMENTS = 1 << 25
#: Largest cost (elements) whose float64 kernel ``exp(-C / eps)`` a :class:`DenseGeometry`
#: keeps for its matrix-product fast path (256 MB); larger costs are reduced by blocks.
KERNEL_ELEMENTS = DENSE_CHUNK_ELEMENTS
#: Per-problem cost size (n * m) above which ``geometry="auto"`` computes costs from the
#: supports block by block (:class:`OnlineGeometry`) instead of materialising them.
ONLINE_ELEMENTS = DENSE_CHUNK_ELEMENTS


class DenseGeometry:
    """Soft-min reductions over an explicit cost matrix.

    The geometry keeps a reference to ``cost`` (no scaled copy, no transpose) and, when the
    cost has at most ``KERNEL_ELEMENTS`` entries (2^25), ``exp(-C / eps)`` in float64 for the
    matrix-product fast path of :func:`softmin_matmul` (one orientation: the other reduction
    reads it transposed). A larger cost is reduced exactly by blocks of rows
    (:func:`softmin_blocks`), so that a problem holds its cost and temporaries of about 1 MB,
    never a second (n, m) matrix.

    Parameters
    ----------
    cost : torch.Tensor of shape (n, m) or (B, n, m)
        Cost matrix shared by the batch, or one per problem.
    epsilon : float
        Entropic regularisation.
    kernel : bool, default=True
        Build the float64 kernel when the cost is small enough. False for a geometry used once
        at an epsilon where the kernel underflows anyway (its exponentials would be wasted).

    Examples
    --------
    >>> import torch
    >>> geometry = DenseGeometry(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), epsilon=1.0)
    >>> geometry.lse_source(torch.zeros(1, 2))  # LSE_i(0 - C_ij / eps) for each j
    tensor([[0.3133, 0.3133]])
    """

    def __init__(self, cost: torch.Tensor, epsilon: float, *, kernel: bool = True) -> None:
        self.cost = cost
        self.epsilon = float(epsilon)
        self.batched = cost.ndim == 3
        self._kernel_exp = None
        #: dtype in which the reductions compute (solvers keep their iterates in it).
        self.work_dtype = cost.dtype
        if kernel and cost.numel() <= KERNEL_ELEMENTS:
            # exp(-C/eps) in float64, built in place in one allocation; exp_or_zero_ skips exp's
            # slow path on the (many, at small eps) entries that underflow.
            self._kernel_exp = exp_or_zero_(cost.to(torch.float64, copy=True).div_(-self.epsilon))
            self.work_dtype = torch.float64

    @property
    def scaled(self) -> torch.Tensor:
        """``C / eps``, computed when read (the reductions never need it whole)."""
        return self.cost / self.epsilon

    def select(self, indices: torch.Tensor) -> DenseGeometry:
        """The geometry of a sub-batch (a shared cost is kept as is)."""
        if not self.batched:
            return self
        new = object.__new__(DenseGeometry)
        new.__dict__.update(self.__dict__)
        new.cost = self.cost[indices]
        if self._kernel_exp is not None:
            new._kernel_exp = self._kernel_exp[indices]
        return new

    def restrict(self, source_used: torch.Tensor, target_used: torch.Tensor):
        """Drop atoms that carry no mass in any problem of the batch (they never contribute).

        Parameters
        ----------
        source_used, target_used : torch.Tensor of bool, shape (n,), (m,)

        Returns
        -------
        geometry : DenseGeometry
            The geometry on the kept atoms (``self`` when nothing is dropped).
        source_index, target_index : torch.Tensor of long
            Kept atoms, in order.
        """
        return restrict_to_used(self, source_used, target_used, self._sub_geometry)

    def _sub_geometry(self, rows: torch.Tensor, cols: torch.Tensor) -> DenseGeometry:
        # Slice the parent's kernel rather than recompute it: the exponentials of a 100 x 10,000
        # cost are most of a batch-1 solve's fixed cost.
        new = object.__new__(DenseGeometry)
        new.__dict__.update(self.__dict__)
        new.cost = self.cost.index_select(-2, rows).index_select(-1, cols)
        if self._kernel_exp is not None:
            new._kernel_exp = self._kernel_exp.index_select(-2, rows).index_select(-1, cols)
        return new

    def cost_matrix(self) -> torch.Tensor:
        """The cost, (n, m) or (B, n, m)."""
        return self.cost

    @property
    def scaling_range(self) -> float:
        """``max |C| / eps`` (inf without the float64 kernel); read once, then kept.

        How far the kernel's entries may fall below (or above) 1: it decides whether the
        solver may iterate in the scaling domain (``skmetaot.solvers.scaling.SCALING_RANGE``).
        """
        if "_scaling_range" not in self.__dict__:
            self._scaling_range = math.inf if self._kernel_exp is None else (
                float(self.cost.abs().amax()) / self.epsilon if self.cost.numel() else 0.0)
        return self._scaling_range

    def apply_kernel(self, scaling: torch.Tensor, axis: int, *,
                     grid_layout: bool = False) -> torch.Tensor:
        """Kernel products in the scaling domain with the float64 ``K = exp(-C / eps)``.

        ``axis=0``: ``u K`` for ``u`` of shape (B, n), returns (B, m); ``axis=1``: ``v K^T``
        for ``v`` of shape (B, m), returns (B, n) (see :meth:`GridGeometry.apply_kernel`).
        One problem may come as a 1-D vector (``grid_layout``, shared cost).

        Parameters
        ----------
        scaling : torch.Tensor, float64
        axis : {0, 1}
        grid_layout : bool, default=False
            Accepted for the protocol of :meth:`GridGeometry.apply_kernel`; see
            :meth:`grid_layout`.

        Returns
        -------
        torch.Tensor, float64

        Examples
        --------
        >>> import torch
        >>> cost = torch.rand(3, 4, dtype=torch.float64)
        >>> u = torch.rand(2, 3, dtype=torch.float64)
        >>> geometry = DenseGeometry(cost, epsilon=0.5)
        >>> torch.allclose(geometry.apply_kernel(u, 0), u @ torch.exp(-cost / 0.5))
        True
        """
        kernel = self._kernel_exp if axis == 0 else self._kernel_exp.transpose(-1, -2)
        if self.batched:
            return (scaling.unsqueeze(-2) @ kernel).squeeze(-2)
        return scaling @ kernel

    def absorbed_kernel(self, scaled_f: torch.Tensor, scaled_g: torch.Tensor) -> torch.Tensor:
        """``exp(F_i + G_j - C_ij / eps)`` per problem, float64, entries below 1e-150 zero.

        The stabilised kernel of ``skmetaot.solvers.scaling.absorbing_iterations``: with
        (F, G) near a solution its significant entries are those of the plan, of order one,
        whatever epsilon.

        Parameters
        ----------
        scaled_f : torch.Tensor of shape (B, n)
            ``f / eps`` (-inf on atoms without mass).
        scaled_g : torch.Tensor of shape (B, m)

        Returns
        -------
        torch.Tensor of shape (B, n, m), float64

        Examples
        --------
        >>> import torch
        >>> cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
        >>> f, g = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, -1.0]])
        >>> DenseGeometry(cost, 0.5).absorbed_kernel(f.double(), g.double())[0, 0].tolist()
        [2.718281828459045, 0.1353352832366127]
        """
        wide = self.cost.to(torch.float64).div(-self.epsilon)
        logits = (scaled_f.to(torch.float64)[:, :, None] + scaled_g.to(torch.float64)[:, None, :]
                  ).add_(wide)
        return exp_or_zero_(logits)

    def grid_layout(self, values: torch.Tensor, axis: int) -> torch.Tensor:
        """``values`` as the scaling iterations hold them.

        One problem on a shared cost as a 1-D vector (cheaper products), else unchanged.
        """
        return values.view(-1) if values.shape[0] == 1 and not self.batched else values

    def layout_dims(self, batch: int) -> tuple[int, ...] | None:
        """The dimensions of :meth:`grid_layout`'s tensors that hold atoms (None: all)."""
        return None if batch == 1 and not self.batched else (1,)

    def lse_source(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_i(F[b, i] - C[i, j] / eps)`` for F of shape (B, n); returns (B, m)."""
        if self._kernel_exp is None and not (torch.is_grad_enabled()
                                             and potential.requires_grad):
            return softmin_rows(potential, self.cost, 1.0 / self.epsilon)
        return self._softmin(potential, self.cost.transpose(-1, -2), self._kernel_exp)

    def lse_target(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_j(G[b, j] - C[i, j] / eps)`` for G of shape (B, m); returns (B, n)."""
        kernel_exp = None if self._kernel_exp is None else self._kernel_exp.transpose(-1, -2)
        return self._softmin(potential, self.cost, kernel_exp)

    def _softmin(self, potential: torch.Tensor, kernel: torch.Tensor, kernel_exp):
        if kernel_exp is None:
            return softmin_blocks(potential, kernel, 1.0 / self.epsilon)
        return softmin_matmul(potential, kernel, kernel_exp, 1.0 / self.epsilon)

    def transport_cost(self, scaled_f: torch.Tensor, scaled_g: torch.Tensor) -> torch.Tensor:
        """``<C, P>`` of the plans ``P_ij = exp(F_i + G_j - C_ij / eps)``, without forming them.

        The plans are formed a block of rows at a time (``plan_cost_moment``), in float64:
        the memory of a Sinkhorn step's temporaries, not of a plan.

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
        >>> cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
        >>> f, g = torch.tensor([[0.1, -0.2]]), torch.tensor([[0.3, 0.0]])
        >>> plan = torch.exp(f[0, :, None] + g[0, None, :] - cost / 0.5)
        >>> torch.allclose(DenseGeometry(cost, 0.5).transport_cost(f, g), (cost * plan).sum())
        True
        """
        return plan_cost_moment(scaled_f, scaled_g, self.cost.shape[-2],
                                lambda start, stop: self.cost[..., start:stop, :], self.epsilon)


#: The geometries ``make_geometry(kind=...)`` (and ``sinkhorn(geometry=...)``) choose between.
GEOMETRY_KINDS = ("auto", "dense", "online")


def make_geometry(
    *,
    epsilon: float,
    cost_matrix: torch.Tensor | None = None,
    grid_x: list[torch.Tensor] | None = None,
    grid_y: list[torch.Tensor] | None = None,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    cost: CostSpec = "sqeuclidean",
    kind: str = "auto",
) -> Geometry:
    """Pick the kernel: a given cost matrix, the separable one on grids, dense or online.

    Parameters
    ----------
    epsilon : float
        Entropic regularisation.
    cost_matrix : torch.Tensor, optional
        (n, m) or (B, n, m) cost; it is used as it is (:class:`DenseGeometry`).
    grid_x, grid_y : list of torch.Tensor, optional
        Axes of product-grid supports (squared Euclidean cost only), used by ``kind="auto"``.
    x, y : torch.Tensor, optional
        Supports (n, d) and (m, d), or (B, n, d) and (B, m, d), for the cost ``cost``.
    cost : str or callable, default="sqeuclidean"
    kind : {"auto", "dense", "online"}, default="auto"
        ``"dense"`` materialises ``cost(x, y)``; ``"online"`` never does
        (:class:`OnlineGeometry`); ``"auto"`` takes the grid kernel on grids, and otherwise
        the online geometry when one problem's cost would have more than 2^25 entries
        (``ONLINE_ELEMENTS``), the dense one below.

    Returns
    -------
    DenseGeometry, GridGeometry or OnlineGeometry

    Raises
    ------
    ValueError
        If ``kind`` is unknown, ``kind="online"`` comes with a cost matrix (it computes the costs
        from the supports), or neither a cost matrix nor supports are given.

    Examples
    --------
    >>> import torch
    >>> axis = torch.linspace(0, 1, 3)
    >>> type(make_geometry(epsilon=0.1, grid_x=[axis, axis], grid_y=[axis, axis])).__name__
    'GridGeometry'
    >>> type(make_geometry(epsilon=0.1, cost_matrix=torch.zeros(3, 4))).__name__
    'DenseGeometry'
    >>> x, y = torch.rand(6000, 2), torch.rand(6000, 2)
    >>> type(make_geometry(epsilon=0.1, x=x, y=y)).__name__  # 3.6e7 > 2^25 entries
    'OnlineGeometry'
    >>> type(make_geometry(epsilon=0.1, x=x[:10], y=y[:10], kind="online")).__name__
    'OnlineGeometry'
    """
    if kind not in GEOMETRY_KINDS:
        raise ValueError(f"geometry={kind!r} is not one of {GEOMETRY_KINDS}")
    if cost_matrix is not None:
        if kind == "online":
            raise ValueError("geometry='online' computes the costs from the supports x and y; "
                             "it cannot use a given cost matrix C (use geometry='dense' or "
                             "'auto', or pass x and y instead of C)")
        return DenseGeometry(cost_matrix, epsilon)
    if kind == "auto" and grid_x is not None and grid_y is not None and (
            len(grid_x) == len(grid_y)):
        return GridGeometry(grid_x, grid_y, epsilon)
    if x is None or y is None:
        if grid_x is not None and grid_y is not None:
            x, y = torch.cartesian_prod(*grid_x), torch.cartesian_prod(*grid_y)
            x, y = (x[:, None], y[:, None]) if x.ndim == 1 else (x, y)
        else:
            raise ValueError("a cost matrix, or the supports x and y, are needed")
    if kind == "online" or (kind == "auto" and x.shape[-2] * y.shape[-2] > ONLINE_ELEMENTS):
        return OnlineGeometry(x, y, epsilon, cost)
    return DenseGeometry(pairwise_cost(x, y, cost), epsilon)
