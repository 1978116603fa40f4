"""What the entropic solver returns (:class:`SinkhornResult`); the plans and values of solved pairs.

The solver's tensors (:class:`~skmetaot.solvers.SinkhornState`: padded potentials and per-pair
counters) are the state; :class:`SinkhornResult` is the user's view of them, in the input's
array kind, with the plans, the values and POT's ``OTResult`` computed from the potentials on
request (never stored unless asked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from skmetaot._backend import ArrayKind
from skmetaot.costs import CostSpec
from skmetaot.measures import MeasurePairs
from skmetaot.solvers.batches import default_batch_size, pair_geometry
from skmetaot.solvers.plans import plan_values, transport_plan
from skmetaot.solvers.sinkhorn import SinkhornState


@dataclass
class SinkhornResult:
    """What :func:`sinkhorn` returns, in the user's array kind (numpy or torch).

    Attributes
    ----------
    f, g : array of shape (N, n), (N, m), or list of arrays
        Dual potentials in cost units; -inf on zero-weight atoms; ``g = g(f)`` exactly. Shapes
        (n,) and (m,) for one problem, and lists of 1-D arrays when the pairs have different
        sizes.
    n_iter : array of shape (N,)
        Iterations per problem.
    errors : array of shape (N,)
        L1 marginal error ``|P 1 - a|_1 + |P^T 1 - b|_1`` at the returned potentials.
    converged : array of shape (N,)
        Whether each problem reached ``tol``.
    epsilon : float
        The regularisation used.
    plans : array of shape (N, n, m) or None
        The couplings when ``return_plan=True`` (else call :meth:`plan`).

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot import sinkhorn
    >>> a, b = np.full((2, 3), 1 / 3), np.array([[0.2, 0.3, 0.5], [0.5, 0.25, 0.25]])
    >>> res = sinkhorn(a, b, x=np.eye(3), y=np.eye(3), epsilon=0.1, tol=1e-6)
    >>> res.f.shape, res.n_iter.shape, bool(res.converged.all())
    ((2, 3), (2,), True)
    >>> res.plan().sum(-2).round(3)  # the b-marginal is exact: g = g(f)
    array([[0.2 , 0.3 , 0.5 ],
           [0.5 , 0.25, 0.25]])
    >>> [r.status for r in res.to_pot()]  # POT's OTResult, one per problem
    ['converged', 'converged']
    """

    f: Any
    g: Any
    n_iter: Any
    errors: Any
    converged: Any
    epsilon: float
    plans: Any = None
    _state: SinkhornState | None = field(default=None, repr=False)
    _pairs: MeasurePairs | None = field(default=None, repr=False)
    _cost: Any = field(default=None, repr=False)
    _cost_matrix: torch.Tensor | None = field(default=None, repr=False)
    _single: bool = field(default=False, repr=False)

    @property
    def state(self) -> SinkhornState:
        """The solver's tensors (potentials padded to the largest pair, per-pair counters)."""
        return self._state

    @property
    def pairs(self) -> MeasurePairs:
        """The solved pairs, as the solver saw them (weights normalised)."""
        return self._pairs

    def plan(self) -> Any:
        """The couplings ``P_ij = exp((f_i + g_j - C_ij)/eps)``, one per problem."""
        plans = pair_plans(self._pairs, self._state, epsilon=self.epsilon, cost=self._cost,
                           cost_matrix=self._cost_matrix)
        return _to_user(plans, self._single, kind=self._pairs.kind)

    def values(self) -> tuple[Any, Any]:
        """POT's ``(value, value_linear)`` of each problem, computed from the potentials.

        ``value`` is ``ot.solve``'s entropic value (``reg_type="entropy"``):
        ``<C, P> + eps sum P log P``; ``value_linear`` is ``<C, P>``. Computed batch by batch
        from two marginals and a cost moment, without forming a plan.

        Returns
        -------
        value, value_linear : array of shape (N,), float64 (floats for one problem)
        """
        state, pairs = self._state, self._pairs
        step = default_batch_size(pairs, cost=self._cost, cost_matrix=self._cost_matrix)
        parts = [pair_values(pairs, list(range(start, min(start + step, pairs.n_pairs))),
                             state.f[start:start + step], state.g[start:start + step],
                             epsilon=self.epsilon, cost=self._cost,
                             cost_matrix=self._cost_matrix)
                 for start in range(0, pairs.n_pairs, step)]
        value, linear = (torch.cat(column) for column in zip(*parts, strict=True))
        if self._single:
            return float(value[0]), float(linear[0])
        return pairs.kind.wrap(value), pairs.kind.wrap(linear)

    @classmethod
    def from_state(cls, state: SinkhornState, pairs: MeasurePairs, *, epsilon: float,
                   cost: CostSpec, cost_matrix: torch.Tensor | None = None,
                   single: bool = False, kind: ArrayKind | None = None) -> SinkhornResult:
        """The result of solved pairs: potentials trimmed to each pair's sizes, in ``kind``.

        Parameters
        ----------
        state : SinkhornState
            The solver's tensors for ``pairs``.
        pairs : MeasurePairs
            The solved pairs, as the solver saw them.
        epsilon : float
        cost : str or callable
        cost_matrix : torch.Tensor, optional
            (n, m) or (N, n, m) costs the pairs were solved with.
        single : bool, default=False
            One problem given as 1-D arrays: fields without the leading axis.
        kind : ArrayKind, optional
            numpy or torch of the user's input (default: the pairs').

        Returns
        -------
        SinkhornResult
        """
        kind = pairs.kind if kind is None else kind
        return cls(
            f=_to_user(_trim(state.f, pairs.source_sizes, pairs), single, kind=kind),
            g=_to_user(_trim(state.g, pairs.target_sizes, pairs), single, kind=kind),
            n_iter=_to_user(state.n_iter, single, kind=kind),
            errors=_to_user(state.errors, single, kind=kind),
            converged=_to_user(state.converged, single, kind=kind),
            epsilon=float(epsilon),
            _state=state, _pairs=pairs, _cost=cost, _cost_matrix=cost_matrix, _single=single,
        )

    def to_pot(self) -> list:
        """One POT ``ot.utils.OTResult`` per problem (:func:`skmetaot.pot.to_otresult`).

        Each holds its potentials, value, status and log, and builds its ``plan`` when read.

        Returns
        -------
        list of ot.utils.OTResult
        """
        from skmetaot.pot import otresults_from_state

        return otresults_from_state(self._pairs, self._state, epsilon=self.epsilon,
                                    cost=self._cost, cost_matrix=self._cost_matrix)


def iter_plans_and_costs(
    pairs: MeasurePairs,
    state: SinkhornState,
    *,
    epsilon: float,
    cost: CostSpec,
    cost_matrix: torch.Tensor | None = None,
):
    """Yield ``(plan, cost)`` of each solved pair, trimmed to its sizes, in order.

    Plans are computed a batch at a time from one geometry per batch, so a shared cost is
    built once per batch.
    """
    step = default_batch_size(pairs, cost=cost, cost_matrix=cost_matrix, dense=True)
    sizes = list(zip(pairs.source_sizes, pairs.target_sizes, strict=True))
    for start in range(0, pairs.n_pairs, step):
        indices = list(range(start, min(start + step, pairs.n_pairs)))
        geometry, _ = pair_geometry(pairs, indices, epsilon=epsilon, cost=cost,
                                    cost_matrix=cost_matrix)
        matrix = geometry.cost_matrix()
        plans = transport_plan(matrix, state.f[indices], state.g[indices], epsilon)
        for offset, k in enumerate(indices):
            n, m = sizes[k]
            pair_cost = matrix[offset] if matrix.ndim == 3 else matrix
            yield plans[offset, :n, :m], pair_cost[:n, :m]


def pair_values(
    pairs: MeasurePairs,
    indices: list[int],
    f: torch.Tensor,
    g: torch.Tensor,
    *,
    epsilon: float,
    cost: CostSpec,
    cost_matrix: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """POT's ``(value, value_linear)`` of solved pairs ``indices``, never forming a plan.

    ``value`` is ``ot.solve``'s entropic value (``reg_type="entropy"``),
    ``<C, P> + eps sum P log P``; ``value_linear`` is ``<C, P>``.

    Parameters
    ----------
    pairs : MeasurePairs
    indices : list of int
        The pairs, one geometry for all of them.
    f, g : torch.Tensor of shape (len(indices), n), (len(indices), m)
        Their potentials, as solved.
    epsilon : float
    cost : str or callable
    cost_matrix : torch.Tensor, optional

    Returns
    -------
    value, value_linear : torch.Tensor of shape (len(indices),), float64
    """
    geometry, _ = pair_geometry(pairs, indices, epsilon=epsilon, cost=cost,
                                cost_matrix=cost_matrix)
    value, linear = plan_values(geometry, f, g)
    # plan_values gives <C, P> + eps sum P (log P - 1); POT's value drops the -1, i.e. adds
    # eps sum P, and sum P = sum b = 1 exactly because g = g(f).
    return value + epsilon, linear


def pair_plans(
    pairs: MeasurePairs,
    state: SinkhornState,
    *,
    epsilon: float,
    cost: CostSpec,
    cost_matrix: torch.Tensor | None = None,
) -> list[torch.Tensor] | torch.Tensor:
    """Plans of solved pairs: a (N, n, m) tensor for equal sizes, else a list of (n_k, m_k)."""
    plans = [plan for plan, _ in iter_plans_and_costs(pairs, state, epsilon=epsilon, cost=cost,
                                                      cost_matrix=cost_matrix)]
    if len({tuple(p.shape) for p in plans}) == 1:
        return torch.stack(plans)
    return plans


def _to_user(values, single: bool, *, kind: ArrayKind):
    if isinstance(values, list):
        out = [kind.wrap(v) for v in values]
        return out[0] if single else out
    out = kind.wrap(values)
    return out[0] if single else out


def _trim(values: torch.Tensor, sizes: list[int], pairs: MeasurePairs):
    if pairs.shared_support or len(set(sizes)) == 1:
        return values[:, : sizes[0]]
    return [values[k, :n] for k, n in enumerate(sizes)]
