"""Soft-min through the exponentiated kernel: matrix products instead of log-sum-exps.

The scaling-domain forms of :mod:`skmetaot._softmin`'s reductions, the fast paths of small
dense costs and of grids: :func:`softmin_matmul` sums ``exp(values - peak)`` against a
precomputed float64 ``exp(-kernel)`` (n exponentials per row instead of n * m), with the exact
log-sum-exp where the product underflows; :func:`softmin_separable` and
:func:`separable_product` do the same one grid axis at a time.
"""

from __future__ import annotations

import torch

from skmetaot._softmin import (
    KERNEL_FLOOR,
    LOG_KERNEL_FLOOR,
    exp_or_zero_,
    lse_,
    safe_log,
    softmin_blocks,
    softmin_last,
    sum_guard,
)

__all__ = ["separable_product", "softmin_matmul", "softmin_separable"]


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
        if not (kernel.requires_grad or kernel_exp.requires_grad):
            fused = _softmin_matmul_fused(values, kernel_exp)
            if fused is not None:
                return fused
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
    guard = sum_guard(kernel_exp.shape[-2])
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
        torch.exp((wide - peak).clamp_min(LOG_KERNEL_FLOOR)), KERNEL_FLOOR, 0.0)
    total = _row_sums(weights, kernel_exp)
    suspect = (total.detach() < sum_guard(kernel_exp.shape[-2])) & live
    # Suspect entries are replaced by the caller and dead rows are -inf: keep log() finite on
    # both so that their zero upstream gradient never meets an infinite local one (0 * inf = NaN).
    total = torch.where(suspect, torch.ones((), dtype=total.dtype, device=total.device), total)
    return (safe_log(total, live.expand_as(total)) + peak).to(values.dtype), suspect


def _softmin_matmul_fused(values: torch.Tensor, kernel_exp: torch.Tensor):
    """:func:`softmin_matmul` under autograd for ``values`` only, or None where a sum is suspect.

    One shifted exponential and one product forward; the backward is the transposed product,
    ``exp(values - peak) * (grad / total) K^T``, instead of autograd's record of the masks,
    the threshold and the logarithm of :func:`_softmin_matmul_differentiable` (the fallback).
    """
    wide = values.detach().to(torch.float64)
    peak = wide.amax(-1, keepdim=True)
    live = torch.isfinite(peak)
    peak.masked_fill_(~live, 0.0)  # a dead row's terms are then exactly 0, not NaN
    scaled = exp_or_zero_(wide - peak)
    total = _row_sums(scaled, kernel_exp)
    low = total < sum_guard(kernel_exp.shape[-2])
    dead = bool(low.any())
    if dead and bool((low & live).any()):
        return None
    transposed = kernel_exp.transpose(-1, -2)
    return _LogOfSums.apply(values, scaled, total, peak,
                            lambda ratio: _row_sums(ratio, transposed), dead)


class _LogOfSums(torch.autograd.Function):
    """``log(total) + peak``, a soft-min from its sums of ``scaled`` against a kernel.

    Its backward pass is the kernel's transposed product, ``scaled * adjoint(grad / total)``
    (``d out_j / d values_i = scaled_i K_ij / total_j``); ``dead`` says that some rows have
    no finite value (their sums are 0, and they get no gradient).
    """

    @staticmethod
    def forward(ctx, values: torch.Tensor, scaled: torch.Tensor, total: torch.Tensor,
                peak: torch.Tensor, adjoint, dead: bool) -> torch.Tensor:
        ctx.save_for_backward(scaled, total)
        ctx.adjoint, ctx.dead, ctx.dtype = adjoint, dead, values.dtype
        return (total.log() + peak).to(values.dtype)  # dead rows: log(0) = -inf

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        scaled, total = ctx.saved_tensors
        ratio = grad_out.to(torch.float64) / total
        if ctx.dead:
            ratio = torch.where(total > 0, ratio, 0.0)
        return ctx.adjoint(ratio).mul_(scaled).to(ctx.dtype), None, None, None, None, None


def softmin_separable(values: torch.Tensor, shape: list[int], kernels_exp: list[torch.Tensor],
                      kernels_exp_t: list[torch.Tensor]):
    """Soft-min of a separable kernel in one shift: the no-autograd fast path on grids.

    ``values`` (B, n_1 * ... * n_D) is shifted by each problem's maximum, exponentiated once,
    and multiplied by the D one-axis kernels ``exp(-K_k)`` (float64 matrix products, no log
    in between), so a reduction costs about a dozen operator calls whatever D: at batch 1 on
    a 28 x 28 grid, the operator dispatches are the whole cost. The shift argument of
    :func:`softmin_matmul` holds here too (the result is exact to float64 rounding wherever
    the sum is above ``1e-280``); when any entry is below it, or a problem is all -inf, the
    function returns None and the caller reduces exactly one axis at a time, as it does when
    the kernels require a gradient. Under autograd for ``values`` the backward pass is the
    same two products transposed, ``exp(values - peak) * K^T (grad / total)``: a few operator
    calls instead of the per-axis reductions' masks and logarithms, which made up most of a
    meta-training step on MNIST.

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
    differentiable = torch.is_grad_enabled() and values.requires_grad
    if differentiable and any(kernel.requires_grad for kernel in kernels_exp):
        return None  # a gradient for the kernels too: the per-axis reductions give it
    wide = values.detach() if differentiable else values
    wide = wide if wide.dtype == torch.float64 else wide.to(torch.float64)
    # One problem: a scalar peak broadcasts everywhere (no reshape of it).
    peak = wide.amax() if batch == 1 else wide.amax(-1, keepdim=True)
    scaled = exp_or_zero_(wide - peak)
    total = separable_product(scaled, shape, kernels_exp, kernels_exp_t)
    # min() is NaN when a problem has no finite value: that fails the test too.
    if not float(total.min()) >= sum_guard(values.shape[-1]):
        return None
    if differentiable:
        # No floor in the transposed products: the ratios have both signs.
        target_shape = [kernel.shape[-1] for kernel in kernels_exp]
        return _LogOfSums.apply(values, scaled, total, peak, lambda ratio: separable_product(
            ratio, target_shape, kernels_exp_t, kernels_exp, floor=False), False)
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
