"""The POT drop-in: ``skmetaot.pot.sinkhorn`` against ``ot.sinkhorn`` on the same calls.

Random problems (uniform weights on random points of the unit square, squared Euclidean cost,
``reg=0.05``, POT's defaults ``stopThr=1e-9, numItermax=1000``), float64, numpy and torch (CPU)
inputs, one problem per call; and a batch of problems sharing one cost, which POT solves one call
at a time and the drop-in in one call (a 2-D ``a``). Calls are interleaved, POT first, and the
median of ``repeats`` runs is reported with the largest plan difference and whether both took
the same number of iterations.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import numpy as np
import ot
import torch

from harness.common import machine_info, markdown_table, timed
from skmetaot import pot

QUICK: dict[str, Any] = {"sizes": (100, 300), "batch": 8, "repeats": 1}
COLUMNS = ["problem", "input", "method", "POT ms", "ours ms", "speed-up", "max |P - P_POT|",
           "same niter"]


def _problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.full(n, 1.0 / n), np.full(n, 1.0 / n), ot.dist(rng.random((n, 2)),
                                                             rng.random((n, 2)))


def _row(problem: str, kind: str, method: str, theirs, ours, repeats: int) -> dict[str, Any]:
    pot_times, our_times = [], []
    for _ in range(repeats):
        seconds, (plan_pot, log_pot) = timed(theirs)
        pot_times.append(seconds)
        seconds, (plan, log) = timed(ours)
        our_times.append(seconds)
    pot_ms, our_ms = 1e3 * float(np.median(pot_times)), 1e3 * float(np.median(our_times))
    difference = float(np.max(np.abs(np.asarray(plan) - np.asarray(plan_pot))))
    return {"problem": problem, "input": kind, "method": method, "POT ms": pot_ms,
            "ours ms": our_ms, "speed-up": pot_ms / our_ms, "max |P - P_POT|": difference,
            "same niter": bool(np.all(np.asarray(log["niter"])
                                      == np.asarray(log_pot["niter"]))),
            "repeats": repeats}


def run(sizes: tuple[int, ...] = (200, 500, 1000), batch: int = 64, repeats: int = 3,
        reg: float = 0.05, device: str = "cpu") -> dict[str, Any]:
    """Time both on every size and method, and on a batch; returns the result payload.

    Parameters
    ----------
    sizes : tuple of int, default=(200, 500, 1000)
        Points per side of the single problems.
    batch : int, default=64
        Problems (of the smallest size) sharing one cost in the batched row.
    repeats : int, default=3
        Runs per row (median reported).
    reg : float, default=0.05
    device : str, default="cpu"
        Only the CPU is measured (POT's numpy backend); kept for the command line.

    Returns
    -------
    dict
        ``rows``, ``table``, ``machine``, ``settings`` and ``notes``.
    """
    rows = []
    warnings.simplefilter("ignore", UserWarning)  # unconverged runs warn in both, alike
    for n in sizes:
        a, b, M = _problem(n, n)
        for method in ("sinkhorn", "sinkhorn_log"):
            rows.append(_row(f"n = m = {n}", "numpy", method,
                             partial(ot.sinkhorn, a, b, M, reg, method, log=True),
                             partial(pot.sinkhorn, a, b, M, reg, method, log=True), repeats))
        tensors = [torch.from_numpy(v) for v in (a, b, M)]
        rows.append(_row(f"n = m = {n}", "torch (CPU)", "sinkhorn_log",
                         partial(ot.sinkhorn, *tensors, reg, "sinkhorn_log", log=True),
                         partial(pot.sinkhorn, *tensors, reg, "sinkhorn_log", log=True),
                         repeats))
    n = sizes[0]
    _, _, M = _problem(n, 0)
    weights = np.random.default_rng(1).dirichlet(np.ones(n), size=(2, batch))
    for method in ("sinkhorn", "sinkhorn_log"):
        def one_by_one(method=method):
            out = [ot.sinkhorn(weights[0, k], weights[1, k], M, reg, method, log=True)
                   for k in range(batch)]
            return np.stack([p for p, _ in out]), np.array([log["niter"] for _, log in out])

        def batched(method=method):
            plans, log = pot.sinkhorn(weights[0], weights[1], M, reg, method, log=True)
            return plans, log

        row = _row(f"{batch} problems, n = m = {n}, one cost", "numpy", method,
                   lambda: _niter_pair(one_by_one()), batched, repeats)
        rows.append(row)
    notes = ["POT ms: ot.sinkhorn; ours ms: skmetaot.pot.sinkhorn with the same arguments "
             "(POT's iterates and stopping rule, run by the batched log-domain solver). "
             "method='sinkhorn' is POT's Sinkhorn-Knopp in numpy (matrix-vector products); "
             "the drop-in runs every method in the log domain. The batched rows call POT once "
             "per problem and the drop-in once for all."]
    table = "\n\n".join([
        f"## skmetaot.pot.sinkhorn against ot.sinkhorn (reg = {reg:g}, stopThr = 1e-9, "
        f"numItermax = 1000, float64), median of {repeats}",
        markdown_table(rows, COLUMNS), *notes])
    return {"benchmark": "POT drop-in (bench_pot_dropin)", "machine": machine_info(),
            "settings": {"sizes": list(sizes), "batch": batch, "repeats": repeats, "reg": reg},
            "rows": rows, "table": table, "notes": notes}


def _niter_pair(out: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
    plans, niter = out
    return plans, {"niter": niter}


def run_benchmark(quick: bool = False, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """What ``skmetaot bench pot_dropin`` runs: the payloads by result-file name.

    The runner every benchmark of the command line has (same signature): ``quick`` is the
    smoke-test size.
    """
    payload = run(**(QUICK if quick else {}), device=device)
    return {"bench_pot_dropin" + ("_quick" if quick else ""): payload}
