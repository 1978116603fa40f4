"""Soft-min reductions, the arithmetic of every Sinkhorn kernel (re-exported by geometry).

``softmin(values, kernel)[..., j] = LSE_i(values[..., i] - kernel[..., j, i])`` in three forms:

* :func:`softmin_last`, the exact shifted log-sum-exp on one (..., m, n) temporary;
* ``softmin_matmul`` (in ``skmetaot._kernel_softmin``), a float64 matrix product against a
  precomputed ``exp(-kernel)``, with an exact fallback where the product underflows (the fast
  path of small dense costs and grids);
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


def safe_log(total: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
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


def sum_guard(n_terms: int) -> float:
    """Smallest sum of ``n_terms`` floored products that is exact to float64 rounding."""
    return max(_UNDERFLOW_GUARD, n_terms * _DROP_GUARD)


#: Just below log(KERNEL_FLOOR): clamped arguments fall under the threshold.
LOG_KERNEL_FLOOR = math.log(KERNEL_FLOOR) - 1.0


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
    return torch.threshold_(shifted.clamp_min_(LOG_KERNEL_FLOOR).exp_(), KERNEL_FLOOR, 0.0)


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
