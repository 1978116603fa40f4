"""Soft-min reductions, the arithmetic of every Sinkhorn kernel (re-exported by geometry).

``softmin(values, kernel)[..., j] = LSE_i(values[..., i] - kernel[..., j, i])`` in three forms:

* :func:`softmin_last`, the exact shifted log-sum-exp on one (..., m, n) temporary;
* :func:`softmin_matmul`, a float64 matrix product against a precomputed ``exp(-kernel)``, with
  an exact fallback where the product underflows (the fast path of small dense costs and grids);
* :func:`softmin_blocks`, the exact form over blocks of output rows, so that no temporary is
  larger than ``BLOCK_ELEMENTS`` (large dense costs; the online geometry's blocks).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

#: Elements of the temporaries of a blockwise reduction (1 MB in float32): large enough that
#: Python's per-block overhead is small, small enough to stay near the CPU's caches.
BLOCK_ELEMENTS = 1 << 18


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


def lse_(shifted: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``logsumexp(shifted, dim)``, overwriting ``shifted``; all -inf gives -inf, not NaN.

    Parameters
    ----------
    shifted : torch.Tensor
        A temporary the caller owns (it is used as the workspace).
    dim : int, default=-1
        The reduced axis.

    Returns
    -------
    torch.Tensor
        ``shifted``'s shape without ``dim``.

    Examples
    --------
    >>> import torch
    >>> lse_(torch.tensor([[0.0, 0.0], [-float("inf"), -float("inf")]]))
    tensor([0.6931,   -inf])
    """
    peak = shifted.amax(dim, keepdim=True)
    live = torch.isfinite(peak)
    peak = torch.where(live, peak, torch.zeros((), dtype=peak.dtype, device=peak.device))
    shifted.sub_(peak).clamp_(min=exp_floor(shifted.dtype)).exp_()
    out = shifted.sum(dim, keepdim=True).log_().add_(peak)
    return out.masked_fill_(~live, float("-inf")).squeeze(dim)


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


def _softmin_last_values(values: torch.Tensor, kernel: torch.Tensor,
                         scale: float = 1.0) -> torch.Tensor:
    """:func:`softmin_last` against ``scale * kernel``, without autograd (one temporary)."""
    return lse_(torch.sub(values[..., None, :], kernel, alpha=scale))


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


def block_rows(width: int, elements: int = BLOCK_ELEMENTS) -> int:
    """Rows of a block whose temporary of ``width`` elements per row holds ``elements``.

    Parameters
    ----------
    width : int
        Elements per row (problems x reduced atoms).
    elements : int, default=BLOCK_ELEMENTS

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> block_rows(1000, elements=1 << 18), block_rows(10**9)
    (262, 1)
    """
    return max(1, elements // max(1, width))


def reduce_blocks(rows: int, step: int, reduce: Callable[[int, int], torch.Tensor]):
    """``cat([reduce(start, stop) for each block of step rows], -1)``: a blockwise reduction.

    Parameters
    ----------
    rows : int
        Output rows.
    step : int
        Rows per block.
    reduce : callable
        ``reduce(start, stop)`` returns the (..., stop - start) outputs of those rows.

    Returns
    -------
    torch.Tensor of shape (..., rows)

    Examples
    --------
    >>> import torch
    >>> reduce_blocks(5, 2, lambda start, stop: torch.arange(start, stop)[None])
    tensor([[0, 1, 2, 3, 4]])
    """
    first = reduce(0, min(step, rows))
    if first.shape[-1] == rows:
        return first
    if first.requires_grad:
        rest = [reduce(start, min(start + step, rows)) for start in range(step, rows, step)]
        return torch.cat([first, *rest], -1)
    # Written into one output as they come: results kept block by block would be small
    # long-lived allocations between the blocks' temporaries, which fragments glibc's heap
    # (a gigabyte of resident memory at 20,000 x 20,000).
    out = first.new_empty(*first.shape[:-1], rows)
    out[..., :step] = first
    for start in range(step, rows, step):
        out[..., start:start + step] = reduce(start, min(start + step, rows))
    return out


def softmin_blocks(values: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0):
    """:func:`softmin_last` against ``scale * kernel``, over blocks of kernel rows.

    No temporary holds more than ``BLOCK_ELEMENTS`` elements (a row of the kernel at a
    time when one row is larger), whatever the size of ``kernel``; ``kernel`` may be a strided
    view (a transposed cost), it is only read.

    Parameters
    ----------
    values : torch.Tensor of shape (..., n)
        Scaled potentials; with a batched kernel, the first axis is the batch.
    kernel : torch.Tensor of shape (m, n) or (B, ..., m, n)
        Costs (multiplied by ``scale`` as they are read).
    scale : float, default=1.0
        E.g. ``1 / epsilon``, so that a cost serves without a scaled copy.

    Returns
    -------
    torch.Tensor of shape (..., m)

    Examples
    --------
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> values, cost = torch.randn(3, 50, generator=gen), torch.rand(40, 50, generator=gen)
    >>> torch.allclose(softmin_blocks(values, cost, 10.0), softmin_last(values, 10.0 * cost))
    True
    """
    grad = torch.is_grad_enabled() and (values.requires_grad or kernel.requires_grad)

    def reduce(start: int, stop: int) -> torch.Tensor:
        block = kernel[..., start:stop, :]
        if grad:
            return softmin_last(values, block if scale == 1.0 else scale * block)
        return _softmin_last_values(values, block, scale)

    return reduce_blocks(kernel.shape[-2], block_rows(values.numel()), reduce)


def softmin_rows(values: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0):
    """``LSE_i(values[..., i] - scale * kernel[..., i, j])`` for every j, by blocks of rows.

    The reduction of :func:`softmin_blocks` along the other axis of a row-major cost (the
    g-update of an (n, m) cost): each block of contiguous rows is reduced at once and the
    partial results are combined with ``logaddexp``, instead of reading the cost by columns
    (strided reads, about 3x slower). No autograd: the solver's path.

    Parameters
    ----------
    values : torch.Tensor of shape (B, n)
        Scaled potentials.
    kernel : torch.Tensor of shape (n, m) or (B, n, m)
        Costs (multiplied by ``scale`` as they are read).
    scale : float, default=1.0

    Returns
    -------
    torch.Tensor of shape (B, m)

    Examples
    --------
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> values, cost = torch.randn(3, 50, generator=gen), torch.rand(50, 40, generator=gen)
    >>> torch.allclose(softmin_rows(values, cost, 10.0), softmin_last(values, 10.0 * cost.T))
    True
    """
    rows = kernel.shape[-2]
    step = block_rows(values.shape[0] * kernel.shape[-1])
    total = None
    for start in range(0, rows, step):
        stop = min(start + step, rows)
        block = torch.sub(values[:, start:stop, None], kernel[..., start:stop, :], alpha=scale)
        part = lse_(block, dim=-2)
        total = part if total is None else torch.logaddexp(total, part, out=total)
    return total


def _safe_log(total: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """``log(total)`` with -inf on dead (all -inf) rows and a zero, not NaN, gradient there."""
    safe = torch.where(live, total, torch.ones((), dtype=total.dtype, device=total.device))
    return torch.where(live, safe.log(), torch.full_like(safe, float("-inf")))


#: Below this, a float64 sum of exponentials may have lost terms to underflow: such entries are
#: recomputed with the exact shifted log-sum-exp.
_UNDERFLOW_GUARD = 1e-280
#: Factors of the float64 matrix products (the kernel ``exp(-C / eps)`` and the shifted
#: ``exp(F - max F)``) below this are exactly 0, so that no product of two factors is a
#: subnormal number: CPUs compute those about 100x slower, and without the floor a batch of
#: MNIST problems spends 90% of its time on them.
KERNEL_FLOOR = 1e-150
#: A sum of n terms that lost terms below ``KERNEL_FLOOR`` each is exact to float64 rounding
#: (relative 1e-16) when it is above ``n * _DROP_GUARD``; sums below are recomputed exactly.
_DROP_GUARD = 1e-134


def _guard(n_terms: int) -> float:
    """Smallest sum of ``n_terms`` floored products that is exact to float64 rounding."""
    return max(_UNDERFLOW_GUARD, n_terms * _DROP_GUARD)


def exp_or_zero_(shifted: torch.Tensor) -> torch.Tensor:
    """``exp`` in place, with results below :data:`KERNEL_FLOOR` exactly 0.

    Clamping first keeps ``exp`` off its slow path for underflowing arguments (-inf
    included); the threshold then sends the clamped entries, and any other below the floor,
    to zero, so that products of two such factors are never subnormal.

    Parameters
    ----------
    shifted : torch.Tensor
        Arguments (at most 0 in the callers, which shift by the maximum); overwritten.

    Returns
    -------
    torch.Tensor
        ``shifted``, now ``exp(shifted)`` where that is at least ``KERNEL_FLOOR``, else 0.

    Examples
    --------
    >>> import torch
    >>> exp_or_zero_(torch.tensor([0.0, -10.0, -400.0, -float("inf")], dtype=torch.float64))
    tensor([1.0000e+00, 4.5400e-05, 0.0000e+00, 0.0000e+00], dtype=torch.float64)
    """
    return torch.threshold_(shifted.clamp_min_(_LOG_KERNEL_FLOOR).exp_(), KERNEL_FLOOR, 0.0)


def log_weights(weights: torch.Tensor) -> torch.Tensor:
    """``log(weights)`` with -inf on zero weights, without ``log``'s slow path on zeros.

    Torch's vectorised ``log`` is about 20x slower on zeros than on positive numbers; the
    weights of image histograms are mostly zeros.

    Parameters
    ----------
    weights : torch.Tensor
        Non-negative weights.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import torch
    >>> log_weights(torch.tensor([1.0, 0.0]))
    tensor([0., -inf])
    """
    empty = weights <= 0
    return weights.masked_fill(empty, 1.0).log_().masked_fill_(empty, float("-inf"))


#: Just below log(KERNEL_FLOOR): clamped arguments fall under the threshold.
_LOG_KERNEL_FLOOR = math.log(KERNEL_FLOOR) - 1.0
#: Above this fraction of suspect entries, the whole reduction is done with the exact kernel.
_DENSE_FALLBACK_FRACTION = 0.25


def softmin_matmul(values: torch.Tensor, kernel: torch.Tensor, kernel_exp: torch.Tensor,
                   scale: float = 1.0):
    """:func:`softmin_last` through a float64 matrix product, exact fallback on underflow.

    Each row is shifted by its own maximum, so ``exp(values - peak) <= 1``; the sum against
    ``exp(-kernel)`` is then a matrix product (n exponentials per row instead of n * m). The
    result equals the log-sum-exp to float64 rounding whenever the sum is above ``1e-280`` (every
    term lost to underflow is below 1e-308); the entries under that are recomputed one by one
    with the exact shifted log-sum-exp (by blocks, :func:`softmin_blocks`, when they are many).
    Differentiable (the shift is a constant for autograd).

    Parameters
    ----------
    values : torch.Tensor of shape (..., n)
        Scaled potentials; with a batched kernel, the first axis is the batch.
    kernel : torch.Tensor of shape (m, n) or (B, m, n)
        Costs, scaled by ``scale`` (a strided view, e.g. a transposed cost, is fine).
    kernel_exp : torch.Tensor of shape (n, m) or (B, n, m), float64
        ``exp(-scale * kernel)`` transposed, precomputed (a transposed view is fine).
    scale : float, default=1.0
        Multiplies ``kernel`` where it is read, so a cost serves without a scaled copy.

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
    if suspect is None or not bool(suspect.any()):
        return out
    if float(suspect.float().mean()) > _DENSE_FALLBACK_FRACTION:
        # The row shift fails almost everywhere (e.g. tiny eps on a large domain): the exact
        # reduction over blocks is cheaper than gathering most entries one by one.
        if kernel.ndim == 3:
            shape = values.shape
            flat = values.reshape(shape[0], -1, shape[-1])
            return softmin_blocks(flat, kernel[:, None], scale).reshape(*shape[:-1], -1)
        return softmin_blocks(values, kernel, scale)
    index = suspect.nonzero(as_tuple=True)
    rows = values[index[:-1]]
    costs = kernel[index[0], index[-1]] if kernel.ndim == 3 else kernel[index[-1]]
    # Not torch.logsumexp: the suspect entries are those whose terms underflow, exactly where
    # its exp takes the slow path (on the sphere at eps = 1e-3, 160 ms for 7M terms vs 10 ms).
    if torch.is_grad_enabled() and (rows.requires_grad or costs.requires_grad):
        exact = softmin_last(rows, (scale * costs)[:, None, :]).squeeze(-1)
    else:
        exact = lse_(torch.sub(rows, costs, alpha=scale))
    return out.index_put(index, exact)


def _row_sums(weights: torch.Tensor, kernel_exp: torch.Tensor) -> torch.Tensor:
    """``weights @ kernel_exp``, batched along the first axis for one kernel per problem."""
    if kernel_exp.ndim == 3:
        flat = weights.reshape(weights.shape[0], -1, weights.shape[-1])
        return torch.bmm(flat, kernel_exp).reshape(*weights.shape[:-1], kernel_exp.shape[-1])
    return weights @ kernel_exp


def _softmin_matmul_values(values: torch.Tensor, kernel_exp: torch.Tensor):
    """The fast path of :func:`softmin_matmul` without autograd: (result, suspect entries).

    The Sinkhorn loop's hot path, where a reduction on a small problem is a few microseconds of
    arithmetic and as much dispatch: one test says whether every sum is safely above
    underflow (suspect is then None). Only when one is not are dead (all -inf) rows, whose
    sums are NaN, and the suspect entries sorted out, from the same sums.
    """
    wide = values if values.dtype == torch.float64 else values.to(torch.float64)
    peak = wide.amax(-1, keepdim=True)
    total = _row_sums(exp_or_zero_(wide - peak), kernel_exp)
    guard = _guard(kernel_exp.shape[-2])
    # min() is NaN when a row is all -inf: that fails the test too.
    if float(total.min()) >= guard:
        out = total.log_().add_(peak)
        return (out if out.dtype == values.dtype else out.to(values.dtype)), None
    dead = peak == float("-inf")
    total.masked_fill_(dead, 1.0)
    suspect = total < guard
    out = total.log_().add_(peak.masked_fill_(dead, 0.0)).masked_fill_(dead, float("-inf"))
    return out.to(values.dtype), suspect


def _softmin_matmul_differentiable(values: torch.Tensor, kernel_exp: torch.Tensor):
    """:func:`_softmin_matmul_values` under autograd (the shift is a constant for it)."""
    wide = values.to(torch.float64)
    peak = wide.detach().amax(-1, keepdim=True)
    live = torch.isfinite(peak)
    peak = torch.where(live, peak, torch.zeros((), dtype=peak.dtype, device=peak.device))
    weights = torch.nn.functional.threshold(
        torch.exp((wide - peak).clamp_min(_LOG_KERNEL_FLOOR)), KERNEL_FLOOR, 0.0)
    total = _row_sums(weights, kernel_exp)
    suspect = (total.detach() < _guard(kernel_exp.shape[-2])) & live
    # Suspect entries are replaced by the caller and dead rows are -inf: keep log() finite on
    # both so that their zero upstream gradient never meets an infinite local one (0 * inf = NaN).
    total = torch.where(suspect, torch.ones((), dtype=total.dtype, device=total.device), total)
    return (_safe_log(total, live.expand_as(total)) + peak).to(values.dtype), suspect


def plan_cost_moment(scaled_f: torch.Tensor, scaled_g: torch.Tensor, rows: int,
                     cost_rows: Callable[[int, int], torch.Tensor], epsilon: float):
    """``<C, P>`` of the plans ``P_ij = exp(F_i + G_j - C_ij / eps)``, by blocks of rows of C.

    Each block of the plan is formed from its block of costs and summed at once, in float64,
    so that the memory is ``BLOCK_ELEMENTS``, not a plan.

    Parameters
    ----------
    scaled_f : torch.Tensor of shape (B, n)
        ``f / eps`` (-inf on atoms without mass).
    scaled_g : torch.Tensor of shape (B, m)
        ``g / eps``.
    rows : int
        n.
    cost_rows : callable
        ``cost_rows(start, stop)`` returns the costs of source atoms ``start:stop``,
        (stop - start, m) or (B, stop - start, m).
    epsilon : float

    Returns
    -------
    torch.Tensor of shape (B,), float64

    Examples
    --------
    >>> import torch
    >>> cost = torch.rand(30, 20, dtype=torch.float64)
    >>> f, g = torch.randn(2, 30, dtype=torch.float64), torch.randn(2, 20, dtype=torch.float64)
    >>> moment = plan_cost_moment(f, g, 30, lambda i, j: cost[i:j], 0.5)
    >>> plans = torch.exp(f[:, :, None] + g[:, None, :] - cost / 0.5)
    >>> torch.allclose(moment, (plans * cost).sum((1, 2)))
    True
    """
    wide_f, wide_g = scaled_f.to(torch.float64), scaled_g.to(torch.float64)
    step = block_rows(wide_g.numel())
    floor = exp_floor(torch.float64)
    total = wide_f.new_zeros(wide_f.shape[0])
    for start in range(0, rows, step):
        stop = min(start + step, rows)
        cost = cost_rows(start, stop).to(torch.float64)
        log_plan = torch.sub(wide_f[:, start:stop, None] + wide_g[:, None, :], cost,
                             alpha=1.0 / epsilon)
        # Entries that underflow (atoms without mass: -inf) are exactly 0, without the slow
        # path of exp on them.
        negligible = log_plan < floor
        plan = log_plan.clamp_min_(floor).exp_().masked_fill_(negligible, 0.0)
        total += plan.mul_(cost).sum((-1, -2))
    return total




def softmin_separable(values: torch.Tensor, shape: list[int], kernels_exp: list[torch.Tensor],
                      kernels_exp_t: list[torch.Tensor]):
    """Soft-min of a separable kernel in one shift: the no-autograd fast path on grids.

    ``values`` (B, n_1 * ... * n_D) is shifted by each problem's maximum, exponentiated once,
    and multiplied by the D one-axis kernels ``exp(-K_k)`` (float64 matrix products, no log
    in between), so a reduction costs about a dozen operator calls whatever D: at batch 1 on
    a 28 x 28 grid, the operator dispatches are the whole cost. The shift argument of
    :func:`softmin_matmul` holds here too (the result is exact to float64 rounding wherever
    the sum is above ``1e-280``); when any entry is below it, or a problem is all -inf, the
    function returns None and the caller reduces exactly one axis at a time.

    Parameters
    ----------
    values : torch.Tensor of shape (B, n_1 * ... * n_D)
        Scaled potentials, flattened in row-major order.
    shape : list of int
        ``[n_1, ..., n_D]``.
    kernels_exp, kernels_exp_t : list of torch.Tensor of shape (n_k, m_k) and (m_k, n_k)
        ``exp(-K_k)`` in float64, transposed and as is (views are fine), per axis.

    Returns
    -------
    torch.Tensor of shape (B, m_1 * ... * m_D) in the dtype of ``values``, or None

    Examples
    --------
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> values = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    >>> k1 = torch.rand(5, 3, generator=gen, dtype=torch.float64)  # (m_1, n_1)
    >>> k2 = torch.rand(6, 4, generator=gen, dtype=torch.float64)  # (m_2, n_2)
    >>> kernel = k1[:, None, :, None] + k2[None, :, None, :]       # (m_1, m_2, n_1, n_2)
    >>> exact = torch.logsumexp(values[:, None, None] - kernel, dim=(-2, -1)).reshape(2, -1)
    >>> fast = softmin_separable(values.reshape(2, -1), [3, 4],
    ...                          [torch.exp(-k1).T, torch.exp(-k2).T],
    ...                          [torch.exp(-k1), torch.exp(-k2)])
    >>> torch.allclose(fast, exact)
    True
    """
    batch = values.shape[0]
    wide = values if values.dtype == torch.float64 else values.to(torch.float64)
    # One problem: a scalar peak broadcasts everywhere (no reshape of it).
    peak = wide.amax() if batch == 1 else wide.amax(-1, keepdim=True)
    total = exp_or_zero_(wide - peak)
    total = separable_product(total, shape, kernels_exp, kernels_exp_t)
    # min() is NaN when a problem has no finite value: that fails the test too.
    if not float(total.min()) >= _guard(values.shape[-1]):
        return None
    out = total.log_().add_(peak)
    return out if out.dtype == values.dtype else out.to(values.dtype)


def separable_product(values: torch.Tensor, shape: list[int], kernels_exp: list[torch.Tensor],
                      kernels_exp_t: list[torch.Tensor], *, floor: bool = True,
                      grid_layout: bool = False) -> torch.Tensor:
    """``sum_i values[b, i] exp(-K[i, j])`` for a separable kernel: D float64 matrix products.

    The kernel application of :func:`softmin_separable`, and the whole of a Sinkhorn half-step
    in the scaling domain. With ``floor``, partial sums below :data:`KERNEL_FLOOR` are exactly
    0, as the factors are, so that no product is subnormal; a result is then exact to float64
    rounding where it is at least ``n * 1e-134`` (the callers test this).

    Parameters
    ----------
    values : torch.Tensor of shape (B, n_1 * ... * n_D), float64
        Non-negative (scalings, or shifted exponentials of potentials); not modified. With
        ``grid_layout``, of shape (n_1, ..., n_D) for one problem or (B, n_1, ..., n_D).
    shape : list of int
        ``[n_1, ..., n_D]``.
    kernels_exp, kernels_exp_t : list of torch.Tensor of shape (n_k, m_k) and (m_k, n_k)
        ``exp(-K_k)`` in float64, transposed and as is, per axis.
    floor : bool, default=True
        Floor the partial sums (see above).
    grid_layout : bool, default=False
        ``values`` (and the result) are laid out on the grid, not flattened: no reshapes.

    Returns
    -------
    torch.Tensor of shape (B, m_1 * ... * m_D), float64
        Or (m_1, ..., m_D) / (B, m_1, ..., m_D) with ``grid_layout``.

    Examples
    --------
    >>> import torch
    >>> k1, k2 = torch.rand(5, 3, dtype=torch.float64), torch.rand(6, 4, dtype=torch.float64)
    >>> values = torch.rand(2, 12, dtype=torch.float64)
    >>> dense = torch.kron(k1, k2)                                  # (30, 12)
    >>> torch.allclose(separable_product(values, [3, 4], [k1.T, k2.T], [k1, k2]),
    ...                values @ dense.T)
    True
    >>> one = separable_product(values[0].view(3, 4), [3, 4], [k1.T, k2.T], [k1, k2],
    ...                         grid_layout=True)
    >>> one.shape, torch.allclose(one.reshape(-1), values[0] @ dense.T)
    (torch.Size([5, 6]), True)
    """
    n_axes = len(shape)
    single = grid_layout and values.ndim == n_axes
    batch = 1 if single else values.shape[0]
    if n_axes == 2 and (batch == 1 or single):
        # exp(-K_1) E exp(-K_2)^T as two plain matrix products: fewest operator calls.
        partial = kernels_exp_t[0].mm(values if single else values.view(shape))
    elif n_axes == 2:
        partial = torch.matmul(kernels_exp_t[0], values if grid_layout
                               else values.view(batch, *shape))
    if n_axes == 2:
        if floor:
            torch.threshold_(partial, KERNEL_FLOOR, 0.0)
        total = partial.mm(kernels_exp[1]) if partial.ndim == 2 else partial @ kernels_exp[1]
    else:
        total = values if single else values.view(batch, *shape)
        if single:
            total = total[None]
        for axis in reversed(range(n_axes)):
            total = (total.movedim(axis + 1, -1) @ kernels_exp[axis]).movedim(-1, axis + 1)
            if axis and floor:
                torch.threshold_(total, KERNEL_FLOOR, 0.0)
        if single:
            return total[0]
    if grid_layout:
        return total
    return total.reshape(batch, -1)
