"""The separable kernel of squared Euclidean costs between product grids.

On grids ``x = cartesian_prod(u_1, ..., u_D)`` and ``y = cartesian_prod(v_1, ..., v_D)`` the
cost separates into one term per axis, so each soft-min over the grid is D nested 1-D soft-mins
("convolutional Wasserstein", in log space): O(n^{1 + 1/D}) per problem instead of O(n^2).
:class:`GridGeometry` implements the :class:`~skmetaot.geometry.Geometry` protocol with it;
:func:`detect_grid` recognises grid supports.
"""

from __future__ import annotations

import math

import torch

from skmetaot._kernel_softmin import separable_product, softmin_matmul, softmin_separable
from skmetaot._softmin import KERNEL_FLOOR

__all__ = ["GridGeometry", "detect_grid"]


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
    >>> from skmetaot.geometry import DenseGeometry
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
        if kernels_exp_t is not None:
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
