"""Kernels of the log-domain Sinkhorn iteration: the two soft-min reductions over a cost.

A geometry holds a cost already divided by epsilon and applies, for a batch of scaled potentials
F = f / eps (B, n) and G = g / eps (B, m),

* ``lse_source(F)[b, j] = LSE_i(F[b, i] - C[i, j] / eps)``  (the g-update), and
* ``lse_target(G)[b, i] = LSE_j(G[b, j] - C[i, j] / eps)``  (the f-update).

:class:`DenseGeometry` works from a cost matrix shared by the batch (n, m) or one per problem
(B, n, m), never materialising (B, n, m) when one matrix serves; :class:`GridGeometry` applies the
squared Euclidean cost on product grids axis by axis ("convolutional Wasserstein", done in log
space), which costs O(n^{1 + 1/D}) per problem instead of O(n^2).
"""

from __future__ import annotations

import math

import torch

__all__ = ["DenseGeometry", "GridGeometry", "detect_grid", "make_geometry", "softmin_last",
           "softmin_matmul"]

#: Upper bound on the elements of per-problem (B, n, m) cost tensors held at once (~256 MB in
#: float64): collections with per-pair supports are solved in batches that respect it.
DENSE_CHUNK_ELEMENTS = 1 << 25


def softmin_last(values: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``LSE_i(values[..., i] - kernel[..., j, i])`` over the last axis, for every row j.

    Same result as ``torch.logsumexp(values[..., None, :] - kernel, -1)``, working in place on
    one (..., m, n) temporary (this is the solver's hot loop). Under autograd the backward pass
    recomputes the soft-min weights in one more temporary instead of keeping the several that
    autograd would (the dense kernels of meta-training are large: 64 pairs x 100 x 10,000 on the
    sphere). Rows that are all -inf give -inf, never NaN, and a zero gradient.

    Parameters
    ----------
    values : torch.Tensor of shape (..., n)
        Scaled potentials.
    kernel : torch.Tensor of shape (m, n) or (..., m, n)
        Scaled costs.

    Returns
    -------
    torch.Tensor of shape (..., m)

    Examples
    --------
    >>> import torch
    >>> values = torch.tensor([[0.0, -float("inf")]])
    >>> kernel = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    >>> softmin_last(values, kernel)
    tensor([[ 0., -1.]])
    >>> softmin_last(torch.full((1, 2), -float("inf")), kernel)  # dead row: -inf, not NaN
    tensor([[-inf, -inf]])
    """
    if torch.is_grad_enabled() and (values.requires_grad or kernel.requires_grad):
        return _SoftminLast.apply(values, kernel)
    return _softmin_last_values(values, kernel)


def _softmin_last_values(values: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    shifted = values[..., None, :] - kernel
    peak = shifted.amax(-1, keepdim=True)
    live = torch.isfinite(peak)
    peak = torch.where(live, peak, torch.zeros((), dtype=peak.dtype, device=peak.device))
    shifted.sub_(peak).clamp_(min=exp_floor(shifted.dtype)).exp_()
    out = shifted.sum(-1).log_().add_(peak[..., 0])
    return out.masked_fill_(~live[..., 0], float("-inf"))


class _SoftminLast(torch.autograd.Function):
    """:func:`softmin_last` with a backward pass that recomputes its soft-min weights."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        out = _softmin_last_values(values.detach(), kernel.detach())
        ctx.save_for_backward(values, kernel, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        values, kernel, out = ctx.saved_tensors
        live = torch.isfinite(out)
        # d out_j / d values_i = exp(values_i - kernel_ji - out_j): the soft-min weights.
        weights = values[..., None, :] - kernel
        weights.sub_(torch.where(live, out, torch.zeros_like(out))[..., None])
        # A floor well above underflow: products of floored weights with the incoming gradient
        # stay normal numbers (denormal arithmetic is another ~10x slow path on CPUs).
        weights.clamp_(min=exp_floor(weights.dtype) + 30.0).exp_()
        weights.mul_(torch.where(live, grad_out, torch.zeros_like(grad_out))[..., None])
        # The floor gave atoms without mass (values -inf) a tiny weight: their gradient is 0.
        mass = torch.isfinite(values)
        grad_values = grad_kernel = None
        if ctx.needs_input_grad[0]:
            grad_values = torch.where(mass, weights.sum(-2).sum_to_size(values.shape), 0.0)
        if ctx.needs_input_grad[1]:
            weights.masked_fill_(~mass[..., None, :], 0.0)
            grad_kernel = weights.neg_().sum_to_size(kernel.shape)
        return grad_values, grad_kernel


def exp_floor(dtype: torch.dtype) -> float:
    """Lower clamp for arguments of ``exp`` in a shifted log-sum-exp of this dtype.

    Torch's vectorised ``exp`` takes a slow path (about 25x slower on CPU) for arguments whose
    result underflows (below about -87 in float32, -708 in float64, and -inf itself). In a
    log-sum-exp shifted by its maximum, the largest term is 1, so replacing each underflowing
    term by ``exp(floor)`` (just above the smallest normal number) changes the sum by less than
    ``n * 1e-37`` relative: invisible in the dtype's precision.

    Parameters
    ----------
    dtype : torch.dtype
        A floating dtype.

    Returns
    -------
    float

    Examples
    --------
    >>> import torch
    >>> round(exp_floor(torch.float32), 1), round(exp_floor(torch.float64), 1)
    (-86.3, -707.4)
    """
    return math.log(torch.finfo(dtype).tiny) + 1.0


def _safe_log(total: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """``log(total)`` with -inf on dead (all -inf) rows and a zero, not NaN, gradient there."""
    safe = torch.where(live, total, torch.ones((), dtype=total.dtype, device=total.device))
    return torch.where(live, safe.log(), torch.full_like(safe, float("-inf")))


#: Below this, a float64 sum of exponentials may have lost terms to underflow: such entries are
#: recomputed with the exact shifted log-sum-exp.
_UNDERFLOW_GUARD = 1e-280
#: Above this fraction of suspect entries, the whole reduction is done with the exact kernel.
_DENSE_FALLBACK_FRACTION = 0.25


def softmin_matmul(values: torch.Tensor, kernel: torch.Tensor, kernel_exp: torch.Tensor):
    """:func:`softmin_last` through a float64 matrix product, exact fallback on underflow.

    Each row is shifted by its own maximum, so ``exp(values - peak) <= 1``; the sum against
    ``exp(-kernel)`` is then a matrix product (n exponentials per row instead of n * m). The
    result equals the log-sum-exp to float64 rounding whenever the sum is above ``1e-280`` (every
    term lost to underflow is below 1e-308); the entries under that are recomputed one by one
    with the exact shifted log-sum-exp. Differentiable (the shift is a constant for autograd).

    Parameters
    ----------
    values : torch.Tensor of shape (..., n)
        Scaled potentials; with a batched kernel, the first axis is the batch.
    kernel : torch.Tensor of shape (m, n) or (B, m, n)
        Scaled costs.
    kernel_exp : torch.Tensor of shape (n, m) or (B, n, m), float64
        ``exp(-kernel)`` transposed, precomputed.

    Returns
    -------
    torch.Tensor of shape (..., m), in the dtype of ``values``

    Examples
    --------
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> values = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    >>> kernel = 100 * torch.rand(3, 5, generator=gen, dtype=torch.float64)
    >>> fast = softmin_matmul(values, kernel, torch.exp(-kernel).T)
    >>> torch.allclose(fast, softmin_last(values, kernel))
    True
    """
    if torch.is_grad_enabled() and (values.requires_grad or kernel.requires_grad):
        out, suspect = _softmin_matmul_differentiable(values, kernel_exp)
    else:
        out, suspect = _softmin_matmul_values(values, kernel_exp)
    if not bool(suspect.any()):
        return out
    if float(suspect.float().mean()) > _DENSE_FALLBACK_FRACTION:
        # The row shift fails almost everywhere (e.g. tiny eps on a large domain): one
        # dense log-sum-exp is cheaper than gathering most entries one by one.
        if kernel.ndim == 3:
            shape = values.shape
            flat = values.reshape(shape[0], -1, shape[-1])
            return softmin_last(flat, kernel[:, None]).reshape(*shape[:-1], -1)
        return softmin_last(values, kernel)
    index = suspect.nonzero(as_tuple=True)
    rows = values[index[:-1]]
    costs = kernel[index[0], index[-1]] if kernel.ndim == 3 else kernel[index[-1]]
    return out.index_put(index, torch.logsumexp(rows - costs, dim=-1))


def _row_sums(weights: torch.Tensor, kernel_exp: torch.Tensor) -> torch.Tensor:
    """``weights @ kernel_exp``, batched along the first axis for one kernel per problem."""
    if kernel_exp.ndim == 3:
        flat = weights.reshape(weights.shape[0], -1, weights.shape[-1])
        return torch.bmm(flat, kernel_exp).reshape(*weights.shape[:-1], kernel_exp.shape[-1])
    return weights @ kernel_exp


def _softmin_matmul_values(values: torch.Tensor, kernel_exp: torch.Tensor):
    """The fast path of :func:`softmin_matmul` without autograd: (result, suspect entries).

    The Sinkhorn loop's hot path, where each reduction on a small grid is a few microseconds of
    arithmetic: in-place operations and masked fills keep its operator count about half that
    of the differentiable path.
    """
    wide = values.to(torch.float64)
    peak = wide.amax(-1, keepdim=True)
    dead = peak == float("-inf")
    peak.masked_fill_(dead, 0.0)
    total = _row_sums((wide - peak).clamp_min_(exp_floor(torch.float64)).exp_(), kernel_exp)
    # A dead row's weights were all floored: its tiny sum is not a sum of real terms.
    total.masked_fill_(dead, 1.0)
    suspect = total < _UNDERFLOW_GUARD
    out = total.log_().add_(peak).masked_fill_(dead, float("-inf"))
    return out.to(values.dtype), suspect


def _softmin_matmul_differentiable(values: torch.Tensor, kernel_exp: torch.Tensor):
    """:func:`_softmin_matmul_values` under autograd (the shift is a constant for it)."""
    wide = values.to(torch.float64)
    peak = wide.detach().amax(-1, keepdim=True)
    live = torch.isfinite(peak)
    peak = torch.where(live, peak, torch.zeros((), dtype=peak.dtype, device=peak.device))
    total = _row_sums(torch.exp((wide - peak).clamp_min(exp_floor(wide.dtype))), kernel_exp)
    suspect = (total.detach() < _UNDERFLOW_GUARD) & live
    # Suspect entries are replaced by the caller and dead rows are -inf: keep log() finite on
    # both so that their zero upstream gradient never meets an infinite local one (0 * inf = NaN).
    total = torch.where(suspect, torch.ones((), dtype=total.dtype, device=total.device), total)
    return (_safe_log(total, live.expand_as(total)) + peak).to(values.dtype), suspect


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

    Parameters
    ----------
    cost : torch.Tensor of shape (n, m) or (B, n, m)
        Cost matrix shared by the batch, or one per problem.
    epsilon : float
        Entropic regularisation.

    Examples
    --------
    >>> import torch
    >>> geometry = DenseGeometry(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), epsilon=1.0)
    >>> geometry.lse_source(torch.zeros(1, 2))  # LSE_i(0 - C_ij / eps) for each j
    tensor([[0.3133, 0.3133]])
    """

    def __init__(self, cost: torch.Tensor, epsilon: float) -> None:
        self.cost = cost
        self.epsilon = float(epsilon)
        self.scaled = cost / self.epsilon
        self.batched = cost.ndim == 3
        # exp(-C/eps) in float64, in both orientations, for the matrix-product fast path.
        self._exp_to_target = torch.exp(-self.scaled.to(torch.float64))
        self._exp_to_source = self._exp_to_target.transpose(-1, -2).contiguous()
        self._scaled_t = self.scaled.transpose(-1, -2).contiguous()

    def select(self, indices: torch.Tensor) -> DenseGeometry:
        """The geometry of a sub-batch (a shared cost is kept as is)."""
        if not self.batched:
            return self
        new = object.__new__(DenseGeometry)
        new.__dict__.update(self.__dict__)
        for name in ("cost", "scaled", "_exp_to_target", "_exp_to_source", "_scaled_t"):
            setattr(new, name, getattr(self, name)[indices])
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
        source_index = source_used.nonzero()[:, 0]
        target_index = target_used.nonzero()[:, 0]
        if len(source_index) == len(source_used) and len(target_index) == len(target_used):
            return self, source_index, target_index
        cost = self.cost.index_select(-2, source_index).index_select(-1, target_index)
        return DenseGeometry(cost, self.epsilon), source_index, target_index

    def cost_matrix(self) -> torch.Tensor:
        """The cost, (n, m) or (B, n, m)."""
        return self.cost

    def lse_source(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_i(F[b, i] - C[i, j] / eps)`` for F of shape (B, n); returns (B, m)."""
        return softmin_matmul(potential, self._scaled_t, self._exp_to_target)

    def lse_target(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_j(G[b, j] - C[i, j] / eps)`` for G of shape (B, m); returns (B, n)."""
        return softmin_matmul(potential, self.scaled, self._exp_to_source)

    def transport_cost(self, scaled_f: torch.Tensor, scaled_g: torch.Tensor) -> torch.Tensor:
        """``<C, P>`` of the plans ``P_ij = exp(F_i + G_j - C_ij / eps)``, without forming them.

        One soft-min against the kernel ``C_ij / eps - log(C_ij - c)``, where ``c`` is the
        smallest cost when it is negative and 0 otherwise, gives
        ``log sum_j (C_ij - c) exp(G_j - C_ij / eps)`` for every source atom: the memory of a
        Sinkhorn step, not of a plan. Computed in float64.

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
        wide_f, wide_g = scaled_f.to(torch.float64), scaled_g.to(torch.float64)
        cost = self.cost.to(torch.float64)
        shift = min(0.0, float(cost.min()))
        moved = cost - shift
        kernel = cost / self.epsilon - torch.log(moved)  # +inf where the cost is c: no weight
        kernel_exp = (moved * torch.exp(-cost / self.epsilon)).transpose(-1, -2).contiguous()
        total = torch.exp(wide_f + softmin_matmul(wide_g, kernel, kernel_exp)).sum(-1)
        if shift:
            total = total + shift * torch.exp(wide_f + self.lse_target(wide_g)).sum(-1)
        return total


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

    def __init__(self, axes_x: list[torch.Tensor], axes_y: list[torch.Tensor], epsilon: float):
        if len(axes_x) != len(axes_y):
            raise ValueError("source and target grids have different numbers of axes")
        self.axes_x, self.axes_y = axes_x, axes_y
        self.epsilon = float(epsilon)
        self.shape_x = [len(u) for u in axes_x]
        self.shape_y = [len(v) for v in axes_y]
        # Per axis: (m_k, n_k) and (n_k, m_k) scaled 1-D costs, laid out for last-axis reductions.
        self._to_target = [((v[:, None] - u[None, :]) ** 2) / self.epsilon
                           for u, v in zip(axes_x, axes_y, strict=False)]
        self._to_source = [k.transpose(0, 1).contiguous() for k in self._to_target]
        # exp(-K)^T in float64 for the matrix-product fast path of each reduction.
        self._to_target_exp = [torch.exp(-k.to(torch.float64)).T.contiguous()
                               for k in self._to_target]
        self._to_source_exp = [torch.exp(-k.to(torch.float64)).T.contiguous()
                               for k in self._to_source]

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
        sub.epsilon = self.epsilon
        sub.axes_x = [axis[k] for axis, k in zip(self.axes_x, kept_x, strict=True)]
        sub.axes_y = [axis[k] for axis, k in zip(self.axes_y, kept_y, strict=True)]
        sub.shape_x, sub.shape_y = [len(k) for k in kept_x], [len(k) for k in kept_y]
        sub._to_target = _gather_kernels(self._to_target, kept_y, kept_x)
        sub._to_source = _gather_kernels(self._to_source, kept_x, kept_y)
        sub._to_target_exp = _gather_kernels(self._to_target_exp, kept_x, kept_y)
        sub._to_source_exp = _gather_kernels(self._to_source_exp, kept_y, kept_x)
        return sub, source_index, target_index

    def cost_matrix(self) -> torch.Tensor:
        """The dense (n, m) cost (materialised on demand, e.g. for plans)."""
        x, y = torch.cartesian_prod(*self.axes_x), torch.cartesian_prod(*self.axes_y)
        if x.ndim == 1:
            x, y = x[:, None], y[:, None]
        return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)

    def lse_source(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_i(F[b, i] - C[i, j] / eps)`` for F of shape (B, n); returns (B, m)."""
        return self._reduce(potential, self.shape_x, self._to_target, self._to_target_exp)

    def lse_target(self, potential: torch.Tensor) -> torch.Tensor:
        """``LSE_j(G[b, j] - C[i, j] / eps)`` for G of shape (B, m); returns (B, n)."""
        return self._reduce(potential, self.shape_y, self._to_source, self._to_source_exp)

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
            kernels, kernels_exp = list(self._to_source), list(self._to_source_exp)
            kernels[axis] = cost / self.epsilon - torch.log(cost)  # +inf where u = v
            kernels_exp[axis] = (cost * torch.exp(-cost / self.epsilon)).T.contiguous()
            rows = self._reduce(wide_g, self.shape_y, kernels, kernels_exp)
            total = total + torch.exp(wide_f + rows).sum(-1)
        return total

    @staticmethod
    def _reduce(potential: torch.Tensor, shape: list[int], kernels: list[torch.Tensor],
                kernels_exp: list[torch.Tensor]):
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
        others = [d for d in range(len(shape)) if d != k]
        kept.append((grid_used.any(dim=others) if others else grid_used).nonzero()[:, 0])
    # Row-major flat index of every kept grid point, built axis by axis from the strides.
    flat = kept[0]
    for size, index in zip(shape[1:], kept[1:], strict=True):
        flat = (flat[:, None] * size + index[None, :]).reshape(-1)
    return kept, flat


def make_geometry(
    *,
    epsilon: float,
    cost_matrix: torch.Tensor | None = None,
    grid_x: list[torch.Tensor] | None = None,
    grid_y: list[torch.Tensor] | None = None,
) -> DenseGeometry | GridGeometry:
    """Pick the kernel: the separable one on grids, else the dense one.

    Parameters
    ----------
    epsilon : float
        Entropic regularisation.
    cost_matrix : torch.Tensor, optional
        (n, m) or (B, n, m) cost; required unless both grids are given.
    grid_x, grid_y : list of torch.Tensor, optional
        Axes of product-grid supports (squared Euclidean cost only).

    Returns
    -------
    DenseGeometry or GridGeometry

    Examples
    --------
    >>> import torch
    >>> axis = torch.linspace(0, 1, 3)
    >>> type(make_geometry(epsilon=0.1, grid_x=[axis, axis], grid_y=[axis, axis])).__name__
    'GridGeometry'
    >>> type(make_geometry(epsilon=0.1, cost_matrix=torch.zeros(3, 4))).__name__
    'DenseGeometry'
    """
    if grid_x is not None and grid_y is not None and len(grid_x) == len(grid_y):
        return GridGeometry(grid_x, grid_y, epsilon)
    if cost_matrix is None:
        raise ValueError("a cost matrix is needed when the supports are not both grids")
    return DenseGeometry(cost_matrix, epsilon)
