"""Validation of :func:`~skmetaot.sinkhorn`'s arguments: scalars, arrays, precision, autograd."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from skmetaot._backend import as_float_tensor, kind_of
from skmetaot._validation import check_positive_float, check_positive_int
from skmetaot.measures import HistogramPairs, MeasurePairs


def _check_scalars(epsilon: float, tol: float, max_iter: int, batch_size: int | None) -> None:
    check_positive_float(epsilon, "epsilon")
    check_positive_float(tol, "tol")
    check_positive_int(max_iter, "max_iter")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")


def _shape(tensor: torch.Tensor | None) -> tuple[int, ...] | None:
    return None if tensor is None else tuple(tensor.shape)


def _batch(tensor: torch.Tensor | None, shared_ndim: int) -> int | None:
    """Problems held by one argument: None when it is shared (no batch axis), else its rows."""
    if tensor is None or tensor.ndim != shared_ndim + 1:
        return None  # shared, or of a shape that the support checks refuse by name
    return int(tensor.shape[0])


def _agree(first: int | None, second: int | None) -> bool:
    """Whether two batch sizes broadcast (numpy's rule: equal, or either one or absent)."""
    return first is None or second is None or 1 in (first, second) or first == second


def _pairs_from_arrays(a, b, C, x, y) -> tuple[MeasurePairs, bool, torch.Tensor | None]:
    """The measure pairs of ``sinkhorn(a, b, C, x=, y=)``, the single-problem flag and ``C``.

    Batch axes broadcast as in numpy: one ``b`` (m,) (or (1, m)) pairs with every row of an
    ``a`` of shape (N, n) and vice versa, and one problem's weights, cost or supports are shared
    by the N problems of the other arguments.
    """
    kind = kind_of(a, b, C, x, y)
    a_t = as_float_tensor(a, "a", finite=False)
    b_t = as_float_tensor(b, "b", finite=False)
    for name, weights, size in (("a", a_t, "n"), ("b", b_t, "m")):
        if weights.ndim not in (1, 2):
            raise ValueError(f"{name} must have shape ({size},) or (N, {size}), got "
                             f"{tuple(weights.shape)}")
    n_a, n_b = _batch(a_t, 1), _batch(b_t, 1)
    if not _agree(n_a, n_b):
        raise ValueError(f"a has shape {tuple(a_t.shape)} but b has {tuple(b_t.shape)}: give "
                         "as many rows of each, or one measure (a 1-D a or b) to pair with "
                         "every row of the other")
    n_weights = max((n for n in (n_a, n_b) if n is not None), default=None)
    cost_matrix = None
    if C is not None:
        cost_matrix = as_float_tensor(C, "C (cost matrix)", finite=False)
        # min and max are NaN or infinite exactly when an entry is, and need no temporary
        # (torch.isfinite holds 7 bytes per entry: 700 MB for a 10,000^2 float32 cost).
        if cost_matrix.numel() and not all(
                bool(torch.isfinite(v)) for v in torch.aminmax(cost_matrix)):
            raise ValueError("C (cost matrix) contains NaN or infinite values")
        expected = (a_t.shape[-1], b_t.shape[-1])
        if cost_matrix.shape[-2:] != expected or cost_matrix.ndim not in (2, 3) or not _agree(
                _batch(cost_matrix, 2), n_weights):
            raise ValueError(f"C has shape {tuple(cost_matrix.shape)}; expected {expected} or "
                             f"({n_weights or 'N'}, {expected[0]}, {expected[1]})")
    elif x is None or y is None:
        raise ValueError("give either a cost matrix C or the supports x and y")
    x_t = None if x is None else as_float_tensor(x, "x")
    y_t = None if y is None else as_float_tensor(y, "y")
    per_problem = [t.ndim == 3 for t in (x_t, y_t) if t is not None]
    if len(set(per_problem)) > 1 or per_problem == [True]:
        raise ValueError(f"x has shape {_shape(x_t)} but y has {_shape(y_t)}: give shared "
                         "supports (n, d) and (m, d), or per-problem supports (N, n, d) and "
                         "(N, m, d)")
    n_x = _batch(x_t, 2)
    if n_x is not None and y_t.shape[0] != n_x:
        raise ValueError(f"x holds supports for {n_x} problems but y for {y_t.shape[0]}")
    if not _agree(n_x, n_weights):
        raise ValueError(f"x holds supports for {n_x} problems but a holds weights for "
                         f"{n_weights} (a has shape {tuple(a_t.shape)}, b {tuple(b_t.shape)})")
    n_cost = _batch(cost_matrix, 2)
    if not _agree(n_x, n_cost):
        raise ValueError(f"x holds supports for {n_x} problems but C holds costs for {n_cost} "
                         f"(C has shape {tuple(cost_matrix.shape)})")
    batches = [n for n in (n_weights, n_cost, n_x) if n is not None]
    single = not batches
    count = max(batches, default=1)
    # Views, not copies: a shared measure is stored once whatever the number of problems.
    a_t, b_t = ((w[None] if w.ndim == 1 else w).expand(count, -1) for w in (a_t, b_t))
    if n_cost is not None and n_cost != count:
        cost_matrix = cost_matrix.expand(count, -1, -1)
    if n_x is not None:
        x_t, y_t = (t.expand(count, -1, -1) for t in (x_t, y_t))
        pairs = MeasurePairs(list(x_t), list(y_t), list(a_t), list(b_t))
    else:
        pairs = HistogramPairs(a_t, b_t, x_t, y_t)
    pairs.kind = kind
    return pairs, single, cost_matrix


_HALF = (torch.float16, torch.bfloat16)


def _check_precision_and_autograd(inputs: dict[str, Any], dtype: Any) -> None:
    """Refuse half precision (unless ``dtype`` converts it) and warn that autograd is cut.

    Walks tensors and arrays nested in lists and tuples (the pair forms), never iterators.
    """
    half, grad = [], []
    for name, value in inputs.items():
        for leaf in _array_leaves(value):
            if isinstance(leaf, torch.Tensor):
                if leaf.dtype in _HALF:
                    half.append((name, leaf.dtype))
                if leaf.requires_grad:
                    grad.append(name)
            elif isinstance(leaf, np.ndarray) and leaf.dtype == np.float16:
                half.append((name, "numpy float16"))
    if half and dtype is None:
        name, kind = half[0]
        raise TypeError(f"{name} has dtype {kind}: sinkhorn computes in float32 or float64 "
                        "(half precision cannot hold the log-domain potentials' digits); "
                        "convert it, or pass dtype='float32' to convert it explicitly")
    if grad:
        names = ", ".join(dict.fromkeys(grad))
        warnings.warn(f"{names} require{'s' if len(set(grad)) == 1 else ''} grad, but sinkhorn "
                      "does not differentiate through its iterations: its outputs are "
                      "detached. The solution is the gradient of the entropic OT value "
                      "(dOT/da = f, dOT/db = g, dOT/dC = the plan; see the user guide, "
                      "'Gradients'); pass detached tensors to silence this warning.",
                      UserWarning, stacklevel=3)


def _array_leaves(value: Any, depth: int = 0):
    """Tensors and numpy arrays in ``value`` and in lists/tuples of it, three levels deep."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        yield value
    elif isinstance(value, (list, tuple)) and depth < 3:
        for item in value:
            yield from _array_leaves(item, depth + 1)
