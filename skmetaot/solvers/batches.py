"""How a collection of pairs becomes batches: each batch's geometry and its number of pairs."""

from __future__ import annotations

import torch

from skmetaot.costs import CostSpec, is_sqeuclidean
from skmetaot.geometry import DENSE_CHUNK_ELEMENTS, make_geometry
from skmetaot.measures import MeasurePairs
from skmetaot.solvers.sinkhorn import Geometry


def pair_geometry(
    pairs: MeasurePairs,
    indices: list[int],
    *,
    epsilon: float,
    cost: CostSpec,
    cost_matrix: torch.Tensor | None,
    geometry: str = "auto",
) -> tuple[Geometry, tuple[torch.Tensor, ...]]:
    """Geometry and padded ``(x, a, y, b)`` of the pairs ``indices``.

    Parameters
    ----------
    pairs : MeasurePairs
    indices : list of int
    epsilon : float
    cost : str or callable
    cost_matrix : torch.Tensor, optional
        (n, m) shared or (N, n, m) per-pair costs overriding ``cost``.
    geometry : {"auto", "dense", "online"}, default="auto"
        As in :func:`~skmetaot.sinkhorn`.

    Returns
    -------
    geometry : DenseGeometry, GridGeometry or OnlineGeometry
    tensors : tuple of torch.Tensor
        ``(x, a, y, b)`` as returned by :meth:`MeasurePairs.padded`.
    """
    x, a, y, b = pairs.padded(indices)
    tensors = (x, a, y, b)
    if cost_matrix is not None:
        matrix = cost_matrix if cost_matrix.ndim == 2 else cost_matrix[indices]
        return make_geometry(epsilon=epsilon, cost_matrix=matrix, kind=geometry), tensors
    if geometry == "auto" and pairs.shared_support and is_sqeuclidean(cost):
        grid = pairs.grid_geometry(epsilon)  # cached on the pairs, per epsilon
        if grid is not None:
            return grid, tensors
    return make_geometry(epsilon=epsilon, x=x, y=y, cost=cost, kind=geometry), tensors


#: Elements of a batch's (B, n + m) working tensors on a CPU (2 MB in float64): beyond the
#: cache, larger batches of problems on shared supports only run slower there.
CPU_BATCH_ELEMENTS = 1 << 18


def default_batch_size(
    pairs: MeasurePairs,
    *,
    cost: CostSpec = "sqeuclidean",
    cost_matrix: torch.Tensor | None = None,
    dense: bool = False,
) -> int:
    """Problems per batch that keep a batch's intermediate tensors within the memory budget.

    The budget is :data:`~skmetaot.geometry.DENSE_CHUNK_ELEMENTS` elements (256 MB in
    float64). A batch that forms (B, n, m) tensors (per-pair supports or costs, plans, maps:
    ``dense=True``) holds ``n m`` elements per problem. On shared supports a Sinkhorn step,
    a prediction or the values of a plan hold O(n + m), with a worst case (the kernels'
    exact fallback) of ``n m`` for a dense kernel and ``n`` times the longest axis on a grid;
    on a CPU the batch is further capped at ``CPU_BATCH_ELEMENTS / (n + m)`` problems, which
    run fastest there.

    Parameters
    ----------
    pairs : MeasurePairs
        The pairs (their sizes, supports and device decide).
    cost : str or callable, default="sqeuclidean"
    cost_matrix : torch.Tensor, optional
        (n, m) or (N, n, m) costs overriding ``cost``.
    dense : bool, default=False
        Whether the batch forms (B, n, m) tensors.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> from skmetaot.datasets import make_mnist_pairs
    >>> pairs = make_mnist_pairs(10, split="test", random_state=0)  # 28 x 28 grids, on the CPU
    >>> default_batch_size(pairs), default_batch_size(pairs, dense=True)
    (167, 54)
    """
    if pairs.n_pairs == 1:  # one batch whatever the budget: batch-1 calls skip the sizing
        return 1
    n, m = max(pairs.source_sizes), max(pairs.target_sizes)
    per_problem = n * m
    shared = pairs.shared_support and (cost_matrix is None or cost_matrix.ndim == 2)
    if not shared or dense:
        return max(1, DENSE_CHUNK_ELEMENTS // per_problem)
    grid_x, grid_y = getattr(pairs, "grid_x", None), getattr(pairs, "grid_y", None)
    if cost_matrix is None and is_sqeuclidean(cost) and grid_x is not None and (
            grid_y is not None):
        per_problem = max(n * max(len(v) for v in grid_y), m * max(len(u) for u in grid_x))
    size = DENSE_CHUNK_ELEMENTS // per_problem
    if _device_of(pairs).type == "cpu":
        size = min(size, CPU_BATCH_ELEMENTS // (n + m))
    return max(1, size)


def _device_of(pairs: MeasurePairs) -> torch.device:
    weights = pairs.a if isinstance(pairs.a, torch.Tensor) else pairs.a[0]
    return weights.device
