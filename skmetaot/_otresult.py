"""POT ``OTResult`` objects that hold potentials, not plans (imported lazily: POT loads slowly).

A refined pair's plan ``P_ij = exp((f_i + g_j - C_ij) / eps)`` is (n, m), its potentials are
n + m numbers: 10,000 MNIST pairs hold 25 GB of plans and 63 MB of potentials. The results
built here keep the potentials and the values, and rebuild a plan from them when it is read.
"""

from __future__ import annotations

from typing import Any

import torch
from ot.backend import get_backend
from ot.utils import OTResult

from skmetaot._backend import ArrayKind
from skmetaot.measures import MeasurePairs
from skmetaot.solvers.entropic import pair_geometry, pair_values
from skmetaot.solvers.plans import transport_plan


class PlanCosts:
    """The cost matrix of each solved pair, rebuilt on demand (what a lazy plan needs).

    Parameters
    ----------
    pairs : MeasurePairs
        The solved pairs, on the device and dtype they were solved in. On shared supports
        only one pair is kept (the supports), not the batch's weights.
    epsilon : float
    cost : str or callable
    cost_matrix : torch.Tensor, optional
        (n, m) or (N, n, m) costs overriding ``cost``.
    """

    def __init__(self, pairs: MeasurePairs, *, epsilon: float, cost: Any,
                 cost_matrix: torch.Tensor | None = None) -> None:
        self.epsilon = float(epsilon)
        self.cost = cost
        self.cost_matrix = cost_matrix
        self.shared = pairs.shared_support and (cost_matrix is None or cost_matrix.ndim == 2)
        self.pairs = pairs[[0]] if self.shared else pairs

    def __call__(self, index: int) -> torch.Tensor:
        """The (n, m) cost of pair ``index``, built as the solver built it."""
        k = 0 if self.shared else index
        geometry, _ = pair_geometry(self.pairs, [k], epsilon=self.epsilon, cost=self.cost,
                                    cost_matrix=self.cost_matrix)
        matrix = geometry.cost_matrix()
        matrix = matrix[0] if matrix.ndim == 3 else matrix
        return matrix[: self.pairs.source_sizes[k], : self.pairs.target_sizes[k]]


class BatchValues:
    """``(value, value_linear)`` of a batch of solved pairs, computed for all on first read.

    A refined pair's values cost two more Sinkhorn reductions and a cost moment (a third of a
    batch-1 refinement's time); most callers read the potentials or the plan, so the values
    wait until one of the batch's results is asked for its ``value``.

    Parameters
    ----------
    pairs : MeasurePairs
    indices : list of int
        The batch's pairs in ``pairs``.
    f, g : torch.Tensor of shape (B, n), (B, m)
        Their potentials, as solved.
    epsilon : float
    cost : str or callable
    cost_matrix : torch.Tensor, optional
    """

    def __init__(self, pairs: MeasurePairs, indices: list[int], f: torch.Tensor,
                 g: torch.Tensor, *, epsilon: float, cost: Any,
                 cost_matrix: torch.Tensor | None = None) -> None:
        self._inputs = (pairs, indices, f, g, float(epsilon), cost, cost_matrix)
        self._values: tuple[list[float], list[float]] | None = None

    def __getitem__(self, offset: int) -> tuple[float, float]:
        """``(value, value_linear)`` of the batch's pair ``offset``."""
        if self._values is None:
            pairs, indices, f, g, epsilon, cost, cost_matrix = self._inputs
            value, linear = pair_values(pairs, indices, f, g, epsilon=epsilon, cost=cost,
                                        cost_matrix=cost_matrix)
            self._values = (value.tolist(), linear.tolist())
            self._inputs = None
        return self._values[0][offset], self._values[1][offset]


class LazyPlanOTResult(OTResult):
    """An :class:`ot.utils.OTResult` whose plan is computed from its potentials when read.

    ``plan``, ``marginals``, ``marginal_a``, ``marginal_b`` and ``sparse_plan`` build the
    (n, m) plan ``exp((f_i + g_j - C_ij) / eps)`` at each access and keep nothing, so a list of
    results holds O(n + m) numbers per pair. Everything else is stored as in ``OTResult``.

    Parameters
    ----------
    costs : PlanCosts
        Builds the pair's cost matrix.
    index : int
        The pair's index for ``costs``.
    kind : ArrayKind
        numpy or torch (and device) of the returned plan.
    **kwargs
        ``OTResult``'s arguments (``potentials``, ``value``, ...), without ``plan``.
    """

    def __init__(self, costs: PlanCosts, index: int, kind: ArrayKind,
                 values: tuple[BatchValues, int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._costs, self._index, self._kind = costs, index, kind
        self._lazy_values = values

    @property
    def value(self) -> Any:
        """Entropic OT value (``ot.solve``'s, ``reg_type="entropy"``), computed when first read."""
        if self._lazy_values is not None:
            batch, offset = self._lazy_values
            self._value, self._value_linear = batch[offset]
            self._lazy_values = None
        return self._value

    @property
    def value_linear(self) -> Any:
        """``<C, P>``, computed with :attr:`value` when first read."""
        self.value  # noqa: B018 (reads and stores both values)
        return self._value_linear

    @property
    def plan(self) -> Any:
        """Transport plan (n, m), computed from the potentials at each access."""
        cost = self._costs(self._index)
        f, g = (torch.as_tensor(p).to(device=cost.device, dtype=cost.dtype)
                for p in self._potentials)
        return self._kind.wrap(transport_plan(cost, f[None], g[None], self._costs.epsilon)[0])

    @property
    def sparse_plan(self) -> Any:
        """Transport plan as a sparse array (from the dense one)."""
        plan = self.plan
        return get_backend(plan).tocsr(plan)

    @property
    def marginals(self) -> tuple[Any, Any]:
        """Both marginals of the plan (one plan computed)."""
        plan = self.plan
        return plan.sum(1), plan.sum(0)

    @property
    def marginal_a(self) -> Any:
        """Source marginal of the plan."""
        return self.plan.sum(1)

    @property
    def marginal_b(self) -> Any:
        """Target marginal of the plan."""
        return self.plan.sum(0)

    def __repr__(self) -> str:
        n, m = (len(p) for p in self._potentials)
        return (f"OTResult(value={self.value},value_linear={self.value_linear},"
                f"plan=lazy(shape=({n}, {m})))")
