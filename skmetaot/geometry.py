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
(n, m) matrix. :func:`make_geometry` chooses between them. The soft-min arithmetic they share
lives in ``skmetaot._softmin``.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from skmetaot._online_geometry import OnlineGeometry, restrict_to_used
from skmetaot._softmin import (
    KERNEL_FLOOR,
    exp_or_zero_,
    plan_cost_moment,
    separable_product,
    softmin_blocks,
    softmin_last,
    softmin_matmul,
    softmin_rows,
    softmin_separable,
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


def detect_grid(points: torch.Tensor) -> list[torch.Tensor] | None:
    """Return the 1-D axes if ``points`` is a regular product grid in row-major order.

    Parameters
    ----------
    points : torch.Tensor of shape (n, d)

    Returns
    -------
    list of torch.Tensor or None
        ``axes`` with ``torch.cartesian_prod(*axes) == points``, or None when ``points`` is not
        such a grid or d < 2 (a 1-D support gains nothing from the separable kernel).

    Examples
    --------
    >>> import torch
    >>> axes = detect_grid(torch.cartesian_prod(torch.arange(3.0), torch.arange(2.0)))
    >>> [len(a) for a in axes]
    [3, 2]
    """
    if points.ndim != 2 or points.shape[1] < 2 or points.shape[0] < 4:
        return None
    axes = [torch.unique(points[:, k]) for k in range(points.shape[1])]
    if math.prod(len(axis) for axis in axes) != points.shape[0]:
        return None
    if not torch.equal(torch.cartesian_prod(*axes), points):
        return None
    return axes


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


class GridGeometry:
    """Squared Euclidean cost between two product grids, reduced one axis at a time.

    For grids ``x = cartesian_prod(u_1, ..., u_D)`` and ``y = cartesian_prod(v_1, ..., v_D)`` the
    cost separates, ``C[i, j] = sum_k (u_k[i_k] - v_k[j_k])^2``, so the soft-min over the whole grid
    is D nested 1-D soft-mins.

    Parameters
    ----------
    axes_x, axes_y : list of torch.Tensor
        The 1-D axes of the source and target grids (same number of axes).
    epsilon : float
        Entropic regularisation.

    Examples
    --------
    The separable reductions agree with the dense ones on the same grid:

    >>> import torch
    >>> axes = [torch.linspace(0, 1, 4, dtype=torch.float64)] * 2
    >>> grid = GridGeometry(axes, axes, epsilon=0.1)
    >>> dense = DenseGeometry(grid.cost_matrix(), epsilon=0.1)
    >>> potential = torch.randn(2, 16, generator=torch.Generator().manual_seed(0),
    ...                         dtype=torch.float64)
    >>> torch.allclose(grid.lse_source(potential), dense.lse_source(potential))
    True
    """

    batched = False
    #: dtype in which the reductions compute (solvers keep their iterates in it).
    work_dtype = torch.float64

    def __init__(self, axes_x: list[torch.Tensor], axes_y: list[torch.Tensor], epsilon: float):
        if len(axes_x) != len(axes_y):
            raise ValueError("source and target grids have different numbers of axes")
        self.axes_x, self.axes_y = axes_x, axes_y
        self.epsilon = float(epsilon)
        self.shape_x = [len(u) for u in axes_x]
        self.shape_y = [len(v) for v in axes_y]
        # Per axis: the (m_k, n_k) scaled 1-D cost and exp(-cost) in float64 (the matrix-product
        # fast path); every orientation the reductions need is a transposed view of these two.
        self._costs = [((v[:, None] - u[None, :]) ** 2) / self.epsilon
                       for u, v in zip(axes_x, axes_y, strict=False)]
        self._kernels = [torch.threshold_(torch.exp(-k.to(torch.float64)), KERNEL_FLOOR, 0.0)
                         for k in self._costs]
        #: ``max C / eps`` over the grids (an upper bound on restricted ones): how far the
        #: kernel's entries fall below 1, which decides whether scaling iterations are safe.
        self.scaling_range = sum(float(k.max()) for k in self._costs if k.numel())
        self._transpose()

    def _transpose(self) -> None:
        # The other orientation of each 1-D cost and kernel, as views built once (not per call).
        self._costs_t = [k.T for k in self._costs]
        self._kernels_t = [k.T for k in self._kernels]

    def select(self, indices: torch.Tensor) -> GridGeometry:
        """The geometry of a sub-batch (shared by every problem, so unchanged)."""
        return self

    def restrict(self, source_used: torch.Tensor, target_used: torch.Tensor):
        """Restrict both grids to the sub-grids spanned by atoms carrying mass.

        Along each axis, keep the coordinates where some used atom lies; the product of the kept
        coordinates is again a grid (a superset of the used atoms), so the kernel stays separable.

        Parameters
        ----------
        source_used, target_used : torch.Tensor of bool, shape (n,), (m,)

        Returns
        -------
        geometry : GridGeometry
            The geometry on the kept sub-grids (``self`` when nothing is dropped).
        source_index, target_index : torch.Tensor of long
            Flat indices of the kept grid points, in row-major order.
        """
        kept_x, source_index = _sub_grid(self.shape_x, source_used)
        kept_y, target_index = _sub_grid(self.shape_y, target_used)
        if len(source_index) == len(source_used) and len(target_index) == len(target_used):
            return self, source_index, target_index
        # Slice the parent's 1-D kernels rather than recompute them: a batch-1 solve restricts
        # on every call, and the exponentials would be most of its fixed cost.
        sub = object.__new__(GridGeometry)
        sub.epsilon, sub.scaling_range = self.epsilon, self.scaling_range
        sub.axes_x = [axis[k] for axis, k in zip(self.axes_x, kept_x, strict=True)]
        sub.axes_y = [axis[k] for axis, k in zip(self.axes_y, kept_y, strict=True)]
        sub.shape_x, sub.shape_y = [len(k) for k in kept_x], [len(k) for k in kept_y]
        sub._costs = _gather_kernels(self._costs, kept_y, kept_x)
        sub._kernels = _gather_kernels(self._kernels, kept_y, kept_x)
        sub._transpose()
        return sub, source_index, target_index

    def apply_kernel(self, scaling: torch.Tensor, axis: int, *,
                     grid_layout: bool = False) -> torch.Tensor:
        """Kernel products in the scaling domain, ``K = exp(-C / eps)`` (float64).

        ``axis=0``: ``(K^T u)_j = sum_i u_i K_ij`` for ``u`` of shape (B, n), returns (B, m);
        ``axis=1``: ``(K v)_i = sum_j K_ij v_j`` for ``v`` of shape (B, m), returns (B, n).
        OTT-JAX's ``Geometry.apply_kernel``; Sinkhorn's scaling iterations are these two
        products and two divisions. Nothing is floored: with ``scaling_range`` up to a few
        hundred every entry of K is a normal float64 number.

        Parameters
        ----------
        scaling : torch.Tensor, float64
            Non-negative.
        axis : {0, 1}
        grid_layout : bool, default=False
            ``scaling`` is laid out on the grid, (n_1, ..., n_D) for one problem or
            (B, n_1, ..., n_D), and so is the result (see :meth:`grid_layout`).

        Returns
        -------
        torch.Tensor, float64

        Examples
        --------
        >>> import torch
        >>> axes = [torch.linspace(0, 1, 3, dtype=torch.float64)] * 2
        >>> grid = GridGeometry(axes, axes, epsilon=0.5)
        >>> u = torch.rand(1, 9, dtype=torch.float64)
        >>> kernel = torch.exp(-grid.cost_matrix() / 0.5)
        >>> torch.allclose(grid.apply_kernel(u, 0), u @ kernel)
        True
        >>> torch.allclose(grid.apply_kernel(u.view(3, 3), 0, grid_layout=True).reshape(1, -1),
        ...                u @ kernel)
        True
        """
        if axis == 0:
            return separable_product(scaling, self.shape_x, self._kernels_t, self._kernels,
                                     floor=False, grid_layout=grid_layout)
        return separable_product(scaling, self.shape_y, self._kernels, self._kernels_t,
                                 floor=False, grid_layout=grid_layout)

    def layout_dims(self, batch: int) -> tuple[int, ...] | None:
        """The dimensions of :meth:`grid_layout`'s tensors that hold atoms (None: all)."""
        return None if batch == 1 else tuple(range(1, len(self.shape_x) + 1))

    def grid_layout(self, values: torch.Tensor, axis: int) -> torch.Tensor:
        """``values`` of shape (B, n) or (B, m), viewed as laid out on the grid.

        (n_1, ..., n_D) when B = 1, else (B, n_1, ..., n_D); ``axis`` 0 is the source grid, 1
        the target grid.
        """
        shape = self.shape_x if axis == 0 else self.shape_y
        return values.view(shape) if values.shape[0] == 1 else values.view(-1, *shape)

    def cost_matrix(self) -> torch.Tensor:
        """The dense (n, m) cost (materialised on demand, e.g. for plans)."""
        x, y = torch.cartesian_prod(*self.axes_x), torch.cartesian_prod(*self.axes_y)
        if x.ndim == 1:
            x, y = x[:, None], y[:, None]
        return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)

    def lse_source(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_i(F[b, i] - C[i, j] / eps)`` for F of shape (B, n); returns (B, m)."""
        return self._reduce(potential, self.shape_x, self._costs, self._kernels_t,
                            self._kernels)

    def lse_target(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_j(G[b, j] - C[i, j] / eps)`` for G of shape (B, m); returns (B, n)."""
        return self._reduce(potential, self.shape_y, self._costs_t, self._kernels,
                            self._kernels_t)

    def transport_cost(self, scaled_f: torch.Tensor, scaled_g: torch.Tensor) -> torch.Tensor:
        """``<C, P>`` of the plans ``P_ij = exp(F_i + G_j - C_ij / eps)``, without forming them.

        The cost is a sum over axes, ``C = sum_k c_k``; each term is one separable soft-min in
        which axis k's kernel ``c_k / eps`` becomes ``c_k / eps - log c_k``, so the memory and
        the work are those of D Sinkhorn half-steps, not of a plan. Computed in float64.

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
        >>> axes = [torch.linspace(0, 1, 3, dtype=torch.float64)] * 2
        >>> grid = GridGeometry(axes, axes, epsilon=0.1)
        >>> f, g = torch.zeros(1, 9), torch.full((1, 9), -1.0)
        >>> plan = torch.exp(f[0, :, None] + g[0, None, :] - grid.cost_matrix() / 0.1)
        >>> torch.allclose(grid.transport_cost(f, g), (grid.cost_matrix() * plan).sum())
        True
        """
        wide_f, wide_g = scaled_f.to(torch.float64), scaled_g.to(torch.float64)
        total = wide_f.new_zeros(wide_f.shape[0])
        for axis, (u, v) in enumerate(zip(self.axes_x, self.axes_y, strict=True)):
            cost = (u.to(torch.float64)[:, None] - v.to(torch.float64)[None, :]) ** 2
            kernels, kernels_exp = list(self._costs_t), list(self._kernels)
            kernels[axis] = cost / self.epsilon - torch.log(cost)  # +inf where u = v
            kernels_exp[axis] = (cost * torch.exp(-cost / self.epsilon)).T.contiguous()
            rows = self._reduce(wide_g, self.shape_y, kernels, kernels_exp)
            total = total + torch.exp(wide_f + rows).sum(-1)
        return total

    @staticmethod
    def _reduce(potential: torch.Tensor, shape: list[int], kernels: list[torch.Tensor],
                kernels_exp: list[torch.Tensor], kernels_exp_t: list[torch.Tensor] | None = None):
        if kernels_exp_t is not None and not (torch.is_grad_enabled()
                                              and potential.requires_grad):
            fused = softmin_separable(potential, shape, kernels_exp, kernels_exp_t)
            if fused is not None:
                return fused
        batch = potential.shape[0]
        values = potential.reshape(batch, *shape)
        n_axes = len(shape)
        for axis in reversed(range(n_axes)):
            # Bring the reduced axis last, soft-min it against the 1-D kernel, put it back.
            moved = values.movedim(axis + 1, -1)
            reduced = softmin_matmul(moved, kernels[axis], kernels_exp[axis])
            values = reduced.movedim(-1, axis + 1)
        return values.reshape(batch, -1)


def _gather_kernels(kernels: list[torch.Tensor], rows: list[torch.Tensor],
                    cols: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per axis, the kernel's entries at (rows, cols): one gather each."""
    return [k[r[:, None], c] for k, r, c in zip(kernels, rows, cols, strict=True)]


def _sub_grid(shape: list[int], used: torch.Tensor):
    """Per axis, the coordinates where some used atom lies; and the sub-grid's flat indices."""
    grid_used = used.reshape(shape)
    kept = []
    for k in range(len(shape)):
        # One reduction over the flattened other axes (torch < 2.2 takes one dim in any()).
        kept.append(grid_used.movedim(k, 0).reshape(shape[k], -1).any(1).nonzero()[:, 0])
    # Row-major flat index of every kept grid point, built axis by axis from the strides.
    flat = kept[0]
    for size, index in zip(shape[1:], kept[1:], strict=True):
        flat = (flat[:, None] * size + index[None, :]).reshape(-1)
    return kept, flat


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
