"""Warm-started refinement of the meta Sinkhorn estimators' predictions (one implementation).

A mixin of :class:`~skmetaot.MetaSinkhornTransport` and
:class:`~skmetaot.MetaSinkhornCloudTransport`: both refine by :func:`solve_pairs` started from
the estimator itself (a fitted estimator is an :class:`~skmetaot.Initializer`), batch by batch,
and return POT ``OTResult`` objects, or the solver's tensors from :meth:`refine_state`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from skmetaot._validation import (
    Rule,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    one_of,
)
from skmetaot.costs import get_cost
from skmetaot.estimators._base import chunk_argument
from skmetaot.pot import otresults_from_state
from skmetaot.solvers.entropic import _check_scalars, solve_pairs
from skmetaot.solvers.initializers import refine_start
from skmetaot.solvers.sinkhorn import SinkhornState


class WarmStartRefinement:
    """``refine``, ``iter_refine`` and ``refine_state`` of a fitted meta Sinkhorn estimator.

    A mixin: it reads the estimator's ``tol``, ``refine_max_iter``, ``epsilon`` and ``cost``;
    the estimator provides ``_fitted_pairs(pairs)`` (its validated pairs, once fitted) and
    ``_refine_batches(pairs, batch_size)`` (the index groups solved together).
    """

    #: The parameters both entropic meta estimators share: the problem, the refinement and the
    #: training schedule (merged into the estimator's rules by ``BaseOTEstimator``).
    _parameter_rules: ClassVar[dict[str, Rule]] = {
        "epsilon": check_positive_float, "cost": lambda value, name: get_cost(value),
        "tol": check_positive_float, "refine_max_iter": check_positive_int,
        "learning_rate": check_positive_float, "unroll_steps": check_non_negative_int,
        "learning_rate_schedule": one_of(("cosine", "constant"))}

    @chunk_argument
    def refine(self, pairs: Any, tol: float | None = None, max_iter: int | None = None,
               init: str = "meta", *, chunk_size: int | None = None) -> list:
        """Solve each pair with log-domain Sinkhorn warm-started from the prediction.

        Pairs are predicted, solved and evaluated ``chunk_size`` at a time, as
        :meth:`iter_refine` yields them. A result keeps its potentials, not its plan: ``plan``
        is computed from them when read, so N results hold O(N (n + m)) numbers.

        Parameters
        ----------
        pairs : MeasurePairs or anything :func:`skmetaot.as_pairs` accepts
            Pairs of the kind seen in ``fit`` (for :class:`~skmetaot.MetaSinkhornTransport`, on
            its fitted supports).
        tol : float, optional
            L1 marginal error to reach (default: ``self.tol``).
        max_iter : int, optional
            Iteration cap (default: ``self.refine_max_iter``).
        init : {"meta", "zeros", "gaussian"}, default="meta"
            Start from the prediction (``"meta"``: the estimator itself, as in
            ``sinkhorn(pairs, init=self)``), or from the baselines, so that they compare on
            equal terms.
        chunk_size : int, optional
            Pairs solved together (default: a fixed memory budget; see
            :ref:`large_collections`). Each pair stops on its own error, so the results do
            not depend on it beyond rounding.

        Returns
        -------
        list of ot.utils.OTResult
            One per pair, with potentials of the pair's own sizes: plan, potentials, value,
            value_linear, ``log["niter"]``, ``log["err"]``.
        """
        batches = self.iter_refine(pairs, tol, max_iter, init, chunk_size=chunk_size)
        return [result for batch in batches for result in batch]

    @chunk_argument
    def iter_refine(self, pairs: Any, tol: float | None = None, max_iter: int | None = None,
                    init: str = "meta", *,
                    chunk_size: int | None = None) -> Iterator[list]:
        """Refine ``chunk_size`` pairs at a time, yielding each batch's results when solved.

        The streaming form of :meth:`refine` (same parameters, same results): what is held at
        once is one batch's tensors, plus whatever results the caller keeps.

        Parameters
        ----------
        pairs, tol, max_iter, init, chunk_size
            As in :meth:`refine`.

        Yields
        ------
        list of ot.utils.OTResult
            The results of the next ``chunk_size`` pairs (fewer in the last batch), in order.

        Examples
        --------
        >>> from skmetaot import MetaSinkhornTransport
        >>> from skmetaot.datasets import make_mnist_pairs
        >>> est = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=5, device="cpu",
        ...                             random_state=0).fit(make_mnist_pairs(64, random_state=0))
        >>> test = make_mnist_pairs(10, split="test", random_state=1)
        >>> [len(batch) for batch in est.iter_refine(test, chunk_size=4)]
        [4, 4, 2]
        """
        pairs = self._fitted_pairs(pairs)
        tol, max_iter = self._refine_arguments(tol, max_iter, init)  # checked now, not lazily
        return self._iter_refine(pairs, self._refine_batches(pairs, chunk_size), tol, max_iter,
                                 init)

    @chunk_argument
    def refine_state(self, pairs: Any, tol: float | None = None, max_iter: int | None = None,
                     init: str = "meta", *,
                     chunk_size: int | None = None) -> SinkhornState:
        """The solve of :meth:`refine`, returned as the solver's tensors (no result objects).

        For timing the refinement or counting its iterations: the same Sinkhorn runs as
        :meth:`refine`, without building one ``OTResult`` (and its value) per pair.

        Parameters
        ----------
        pairs, tol, max_iter, init, chunk_size
            As in :meth:`refine`.

        Returns
        -------
        SinkhornState
            Potentials ``f``, ``g`` (for pairs of different sizes, padded to the largest with
            ``-inf``), and per pair ``n_iter``, ``errors`` and ``converged``.

        Examples
        --------
        >>> from skmetaot import MetaSinkhornTransport
        >>> from skmetaot.datasets import make_mnist_pairs
        >>> est = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=5, device="cpu",
        ...                             random_state=0).fit(make_mnist_pairs(64, random_state=0))
        >>> state = est.refine_state(make_mnist_pairs(3, split="test", random_state=1), tol=1e-2)
        >>> state.n_iter.shape, bool(state.converged.all())
        (torch.Size([3]), True)
        """
        return self._refine_state(self._fitted_pairs(pairs), tol, max_iter, init,
                                  batch_size=chunk_size)

    def _refine_arguments(self, tol: float | None, max_iter: int | None, init: Any,
                          batch_size: int | None = None) -> tuple[float, int]:
        """``tol`` and ``max_iter`` with the estimator's defaults, all checked."""
        tol = self.tol if tol is None else tol
        max_iter = self.refine_max_iter if max_iter is None else max_iter
        _check_scalars(self.epsilon, tol, max_iter, batch_size)
        refine_start(self, init)
        return tol, max_iter

    def _iter_refine(self, pairs: Any, batches: list, tol: float, max_iter: int,
                     init: str) -> Iterator[list]:
        for part in batches:
            batch = pairs[part]
            state = self._refine_state(batch, tol, max_iter, init, batch_size=batch.n_pairs)
            yield otresults_from_state(batch, state, epsilon=self.epsilon, cost=self.cost,
                                       batch_size=batch.n_pairs)

    def _refine_state(self, pairs: Any, tol: float | None, max_iter: int | None, init: Any,
                      batch_size: int | None = None) -> SinkhornState:
        tol, max_iter = self._refine_arguments(tol, max_iter, init, batch_size)
        return solve_pairs(pairs, epsilon=self.epsilon, cost=self.cost,
                           init=refine_start(self, init), tol=tol, max_iter=max_iter,
                           batch_size=batch_size)
