"""How much a meta model speeds up Sinkhorn: iterations and seconds to a tolerance per start.

The measurements behind the demo (``python -m skmetaot``) and benchmarks B1/B2: the same
solver (the estimator's :meth:`~skmetaot.MetaSinkhornTransport.refine_state`) starts from zeros,
from the Gaussian potential or from the network's prediction, and runs until the L1 marginal
error of eq. (7) meets each tolerance. Seconds include computing the initialisation (the
forward pass for ``"meta"``, the Gaussian fit for ``"gaussian"``). ``INIT_COLUMNS`` and
``PREDICTION_COLUMNS`` list the keys of their rows in table order, for :func:`markdown_table`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from skmetaot.amortize import unrolled_marginal_error
from skmetaot.measures import as_pairs
from skmetaot.solvers.entropic import pair_geometry, solve_pairs
from skmetaot.solvers.sinkhorn import SinkhornState

__all__ = [
    "compare_initialisations",
    "markdown_table",
    "prediction_summary",
    "time_to_tolerances",
]

#: Columns of :func:`compare_initialisations`' rows, in table order.
INIT_COLUMNS = ["problem", "tol", "init", "iters", "seconds", "speed-up vs zeros (s)",
                "speed-up vs zeros (iters)", "batch", "s/pair batched", "speed-up batched",
                "converged"]
#: Columns of :func:`prediction_summary`'s row, in table order.
PREDICTION_COLUMNS = ["problem", "predict s", "cold solve s (zeros)", "cold tol",
                      "cold / predict", "prediction L1 error", "zeros-init L1 error",
                      "batch-64 pairs/s predict"]
INITS = ("zeros", "gaussian", "meta")


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def time_to_tolerances(estimator: Any, pairs: Any, tolerances: Sequence[float],
                       init: str = "meta", *, chain: bool = False,
                       max_iter: int = 100000) -> list[tuple[float, SinkhornState]]:
    """Seconds and solver state of a refinement to each tolerance, loosest first.

    Parameters
    ----------
    estimator : MetaSinkhornTransport or MetaSinkhornCloudTransport
        A fitted estimator (any with ``refine_state``, ``epsilon`` and ``cost``).
    pairs : MeasurePairs or anything :func:`skmetaot.as_pairs` accepts
    tolerances : sequence of float
        L1 marginal errors to reach.
    init : {"meta", "zeros", "gaussian"}, default="meta"
    chain : bool, default=False
        One run serves every tolerance: the run to a tighter one continues from the
        potentials that met the looser one (Sinkhorn's whole state is ``f``), so seconds and
        iterations accumulate along a single trajectory. The continuation's first iteration
        repeats the g-update that ended the previous leg, so it is not counted (its time is).
        Without it, each tolerance is a run of its own from ``init``.
    max_iter : int, default=100000
        Iteration cap of each run.

    Returns
    -------
    list of (float, SinkhornState)
        Per tolerance, loosest first: seconds (initialisation included) and the solver's state.

    Examples
    --------
    >>> from skmetaot import MetaSinkhornTransport
    >>> from skmetaot.datasets import make_mnist_pairs
    >>> from skmetaot.evaluation import time_to_tolerances
    >>> est = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=5, device="cpu",
    ...                             random_state=0).fit(make_mnist_pairs(64, random_state=0))
    >>> test = make_mnist_pairs(2, split="test", random_state=1)
    >>> legs = time_to_tolerances(est, test, (1e-3, 1e-2), chain=True)
    >>> bool((legs[1][1].n_iter > legs[0][1].n_iter).all())
    True
    """
    results: list[tuple[float, SinkhornState]] = []
    for tol in sorted(tolerances, reverse=True):
        if not chain or not results:
            results.append(_timed(lambda tol=tol: estimator.refine_state(
                pairs, tol, max_iter, init)))
            continue
        before_s, before = results[-1]
        # The continuation solves the pairs where the estimator does (no copy when they are).
        moved = as_pairs(pairs).to(before.f.dtype, before.f.device)
        elapsed, state = _timed(lambda tol=tol, f=before.f, moved=moved: solve_pairs(
            moved, epsilon=estimator.epsilon, cost=estimator.cost, init=f, tol=tol,
            max_iter=max_iter))
        state.n_iter = state.n_iter + before.n_iter - 1
        results.append((before_s + elapsed, state))
    return results


def compare_initialisations(estimator: Any, pairs: Any, tolerances: Sequence[float] = (1e-2,
                            1e-3), *, name: str = "pairs", n_single: int = 32, n_batch: int = 64,
                            batch_repeats: int = 3, chain: bool = False,
                            progress: bool = False) -> list[dict[str, Any]]:
    """Iterations and seconds Sinkhorn needs from zeros, Gaussian and the prediction.

    Each of the first ``n_single`` pairs is solved alone (batch 1), and the first ``n_batch``
    pairs together (``batch_repeats`` times, median), from each initialisation to each
    tolerance (see :func:`time_to_tolerances`). Medians over the pairs.

    Parameters
    ----------
    estimator : MetaSinkhornTransport or MetaSinkhornCloudTransport
        A fitted estimator.
    pairs : MeasurePairs or anything :func:`skmetaot.as_pairs` accepts
        Held-out pairs.
    tolerances : sequence of float, default=(1e-2, 1e-3)
        L1 marginal errors to reach.
    name : str, default="pairs"
        The rows' ``problem``.
    n_single : int, default=32
        Pairs solved one at a time (at most all of them).
    n_batch : int, default=64
        Pairs solved together.
    batch_repeats : int, default=3
        Timed runs of the batch.
    chain : bool, default=False
        As in :func:`time_to_tolerances`.
    progress : bool, default=False
        Show a progress bar per initialisation.

    Returns
    -------
    list of dict
        One row per tolerance and initialisation, with the keys of ``INIT_COLUMNS`` and
        ``pair_iters``, the iterations of each pair solved alone (for paired comparisons:
        medians over a few dozen pairs hide which start wins on how many).

    Examples
    --------
    >>> from skmetaot import MetaSinkhornTransport
    >>> from skmetaot.datasets import make_mnist_pairs
    >>> from skmetaot.evaluation import INIT_COLUMNS, compare_initialisations, markdown_table
    >>> est = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=5, device="cpu",
    ...                             random_state=0).fit(make_mnist_pairs(64, random_state=0))
    >>> rows = compare_initialisations(est, make_mnist_pairs(4, split="test", random_state=1),
    ...                                (1e-2,), n_single=2, n_batch=4, batch_repeats=1)
    >>> [row["init"] for row in rows]
    ['zeros', 'gaussian', 'meta']
    >>> markdown_table(rows, INIT_COLUMNS).splitlines()[0].startswith("| problem | tol |")
    True
    """
    from tqdm.auto import tqdm

    tolerances = sorted(tolerances, reverse=True)
    pairs = as_pairs(pairs)
    n_single = min(n_single, pairs.n_pairs)
    stats: dict[float, dict[str, tuple]] = {tol: {} for tol in tolerances}
    for init in INITS:
        warm_up = estimator.refine_state(pairs[:1], tolerances[0], 100000, init)
        # Solved where the estimator works, so that no run's seconds include a copy there.
        pairs = pairs.to(warm_up.f.dtype, warm_up.f.device)
        block = pairs[:min(n_batch, pairs.n_pairs)]
        pair_iter = range(n_single)
        if progress:
            pair_iter = tqdm(pair_iter, desc=f"{name} {init}", leave=False)
        per_pair = [time_to_tolerances(estimator, pairs[k], tolerances, init, chain=chain)
                    for k in pair_iter]
        batch_runs = [time_to_tolerances(estimator, block, tolerances, init, chain=chain)
                      for _ in range(batch_repeats)]
        for t, tol in enumerate(tolerances):
            seconds = [run[t][0] for run in per_pair]
            iters = [int(run[t][1].n_iter[0]) for run in per_pair]
            conv = [bool(run[t][1].converged[0]) for run in per_pair]
            batch_s = float(np.median([run[t][0] for run in batch_runs])) / block.n_pairs
            stats[tol][init] = (float(np.median(seconds)), iters, conv, batch_s,
                                block.n_pairs)
    rows = []
    for tol in tolerances:
        zeros = stats[tol]["zeros"]
        zeros_iters = float(np.median(zeros[1]))
        for init, (sec, iters, conv, batch_s, batch) in stats[tol].items():
            it = float(np.median(iters))
            rows.append({"problem": name, "tol": tol, "init": init, "iters": it, "seconds": sec,
                         "speed-up vs zeros (s)": zeros[0] / sec,
                         "speed-up vs zeros (iters)": zeros_iters / it,
                         "batch": batch, "s/pair batched": batch_s,
                         "speed-up batched": zeros[3] / batch_s,
                         "converged": f"{sum(conv)}/{len(conv)}", "pair_iters": iters})
    return rows


def prediction_summary(estimator: Any, pairs: Any, *, cold_seconds: float, cold_tol: float,
                       name: str = "pairs", n_single: int = 32) -> dict[str, Any]:
    """Time and error of the prediction alone, against a cold solve.

    Parameters
    ----------
    estimator : MetaSinkhornTransport
        A fitted estimator.
    pairs : HistogramPairs or anything :func:`skmetaot.as_pairs` accepts
        Held-out pairs.
    cold_seconds : float
        Seconds of the cold solve it is compared with (the ``"zeros"`` row of
        :func:`compare_initialisations` at ``cold_tol``).
    cold_tol : float
        That solve's tolerance (reported).
    name : str, default="pairs"
        The row's ``problem``.
    n_single : int, default=32
        Pairs predicted one at a time (median seconds and errors); the first 64 are also
        predicted together (median of 3).

    Returns
    -------
    dict
        The keys of ``PREDICTION_COLUMNS``; the errors are eq. (7) of ``(f, g(f))``, what
        the prediction (and the cold start) give before any update.

    Examples
    --------
    >>> from skmetaot import MetaSinkhornTransport
    >>> from skmetaot.datasets import make_mnist_pairs
    >>> from skmetaot.evaluation import prediction_summary
    >>> est = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=5, device="cpu",
    ...                             random_state=0).fit(make_mnist_pairs(64, random_state=0))
    >>> row = prediction_summary(est, make_mnist_pairs(4, split="test", random_state=1),
    ...                          cold_seconds=0.01, cold_tol=1e-2, n_single=2)
    >>> row["prediction L1 error"] < row["zeros-init L1 error"]
    True
    """
    where = estimator.support_x_  # a fitted tensor: the estimator's dtype and device
    pairs = as_pairs(pairs).to(where.dtype, where.device)
    estimator.predict_potentials(pairs[:1])  # warm-up
    geometry = pair_geometry(pairs, [0], epsilon=estimator.epsilon, cost=estimator.cost,
                             cost_matrix=None)[0]
    predict_s, errors, zero_errors = [], [], []
    for k in range(min(n_single, pairs.n_pairs)):
        one = pairs[k]
        elapsed, (f, _) = _timed(lambda one=one: estimator.predict_potentials(one))
        predict_s.append(elapsed)
        f = torch.as_tensor(f, device=where.device)
        errors.append(float(unrolled_marginal_error(geometry, f, one.a, one.b, 0)))
        zero_errors.append(float(unrolled_marginal_error(geometry, torch.zeros_like(one.a),
                                                         one.a, one.b, 0)))
    block = pairs[:64]
    estimator.predict_potentials(block)
    batch_s = np.median([_timed(lambda: estimator.predict_potentials(block))[0]
                         for _ in range(3)])
    p = float(np.median(predict_s))
    return {"problem": name, "predict s": p, "cold solve s (zeros)": cold_seconds,
            "cold tol": cold_tol, "cold / predict": cold_seconds / p,
            "prediction L1 error": float(np.median(errors)),
            "zeros-init L1 error": float(np.median(zero_errors)),
            "batch-64 pairs/s predict": block.n_pairs / batch_s}


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Render ``rows`` as a Markdown table with the given column order.

    Parameters
    ----------
    rows : sequence of dict
        One dict per row; a missing key is an empty cell.
    columns : sequence of str
        The keys shown, in order.

    Returns
    -------
    str
        Floats with 3 significant digits (scientific notation from 10,000).

    Examples
    --------
    >>> from skmetaot.evaluation import markdown_table
    >>> print(markdown_table([{"init": "meta", "iters": 7.0}], ["init", "iters"]))
    | init | iters |
    |---|---|
    | meta | 7 |
    """
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
