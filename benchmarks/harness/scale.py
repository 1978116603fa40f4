"""Scale: refining a large collection of MNIST pairs at once vs by hand in batches of 64.

A briefly trained :class:`~skmetaot.MetaSinkhornTransport` (one hidden layer of 256 units, a
few hundred steps on MNIST training pairs) refines 10,000 MNIST test-set pairs
(``make_mnist_pairs(10000, split="test")``) to the same ``tol`` and ``max_iter`` in three ways:

* ``refine``: ``est.refine(pairs)``, at the default batch size (the memory budget);
* ``by hand, batches of 64``: ``[r for k in range(0, N, 64) for r in est.refine(pairs[k:k+64])]``;
* ``iter_refine``: ``for batch in est.iter_refine(pairs)``, keeping only each result's
  iteration count, error and value (a stream whose results are not all held).

Every measurement runs in a fresh Python process (``python -m harness.scale
refine-worker ...``), so that its peak resident memory (``ru_maxrss``) is its own; the worker
prints one JSON line. The estimator is trained once, in the parent, and pickled for the workers.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.common import machine_info, markdown_table, run_json_worker

#: The refinement measurement at full size and at ``--quick`` size.
REFINE_FULL: dict[str, Any] = {"n_pairs": 10_000, "repeats": 3, "train_steps": 500}
REFINE_QUICK: dict[str, Any] = {"n_pairs": 1_000, "repeats": 3, "train_steps": 100}
REFINE_VARIANTS = {"refine": "refine (default batch)", "hand": "by hand, batches of 64",
                   "stream": "iter_refine (results not held)"}
REFINE_COLUMNS = ["variant", "batch", "pairs", "seconds", "pairs/s", "pairs/s vs by hand",
                  "peak RSS MB", "RSS growth MB", "median iters", "converged"]


def _status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (``VmRSS``, ``VmHWM``), in MB; None without it."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident memory: VmHWM (what clear_refs resets), else ru_maxrss (kB on Linux).

    ru_maxrss also keeps the peak recorded when a thread exits, which a reset does not clear.
    """
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    """Current resident memory (VmRSS), in MB."""
    current = _status_mb("VmRSS")
    return current if current is not None else float("nan")


def _reset_peak_rss() -> bool:
    """Reset the peak (ru_maxrss, VmHWM) to the current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _refine_worker(variant: str, model: str, tol: float, max_iter: int,
                   hand_batch: int) -> dict[str, Any]:
    """Refine the pickled pairs one way; time, peak memory while refining and a summary."""
    import torch

    from skmetaot.solvers.entropic import default_batch_size

    with open(model, "rb") as handle:
        est, pairs = pickle.load(handle)
    n_pairs = pairs.n_pairs
    where = est.support_x_  # a fitted tensor: the estimator's dtype and device
    est.refine(pairs[:8], tol=tol, max_iter=max_iter)  # warm-up (allocator, kernels)
    reset = _reset_peak_rss()  # so that the peak is the refinement's, not the set-up's
    before = _rss_mb()
    start = time.perf_counter()
    if variant == "refine":
        results = est.refine(pairs, tol=tol, max_iter=max_iter)
        stats = [(r.log["niter"], r.log["err"], r.value) for r in results]
        batch = default_batch_size(pairs[:1].to(where.dtype, where.device), cost=est.cost)
    elif variant == "hand":
        results = [r for k in range(0, n_pairs, hand_batch)
                   for r in est.refine(pairs[k:k + hand_batch], tol=tol, max_iter=max_iter)]
        stats = [(r.log["niter"], r.log["err"], r.value) for r in results]
        batch = hand_batch
    elif variant == "stream":
        stats = [(r.log["niter"], r.log["err"], r.value)
                 for part in est.iter_refine(pairs, tol=tol, max_iter=max_iter) for r in part]
        batch = default_batch_size(pairs[:1].to(where.dtype, where.device), cost=est.cost)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    seconds = time.perf_counter() - start
    niter, err, value = (np.array(column) for column in zip(*stats, strict=True))
    return {"variant": variant, "batch": batch, "pairs": n_pairs, "seconds": seconds,
            "pairs_per_second": n_pairs / seconds, "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": before, "peak_reset": reset, "median_iters": float(np.median(niter)),
            "converged": int((err < tol).sum()), "value_sum": float(value.sum()),
            "threads": torch.get_num_threads()}


def _run_refine_worker(args: list[str]) -> dict[str, Any]:
    return run_json_worker("harness.scale", ["refine-worker", *args],
                           threads=os.environ.get("OMP_NUM_THREADS", "1"))[0]


def run_refine(n_pairs: int = 10_000, *, repeats: int = 3, train_steps: int = 500,
               tol: float = 1e-3, max_iter: int = 1000, hand_batch: int = 64,
               seed: int = 0) -> dict[str, Any]:
    """Measure refining ``n_pairs`` MNIST test pairs: ``refine`` vs by hand vs ``iter_refine``.

    Parameters
    ----------
    n_pairs : int, default=10000
        MNIST test-set pairs (``make_mnist_pairs(n_pairs, split="test", random_state=seed)``).
    repeats : int, default=3
        Fresh processes per variant (medians are reported).
    train_steps : int, default=500
        Training steps of the estimator (``hidden_layer_sizes=(256,)``, batch 128, on 4,096
        MNIST training pairs, float32, CPU).
    tol, max_iter : float, int
        Refinement stopping rule, the same for every variant.
    hand_batch : int, default=64
        Batch size of the by-hand loop.
    seed : int, default=0

    Returns
    -------
    dict
        ``rows``, ``runs`` (every process), ``table`` (Markdown), ``machine``, ``settings``,
        ``notes``.
    """
    from skmetaot import MetaSinkhornTransport
    from skmetaot.datasets import make_mnist_pairs

    train = make_mnist_pairs(4096, split="train", random_state=seed, dtype="float32")
    pairs = make_mnist_pairs(n_pairs, split="test", random_state=seed, dtype="float32")
    start = time.perf_counter()
    est = MetaSinkhornTransport(hidden_layer_sizes=(256,), max_iter=train_steps, device="cpu",
                                dtype="float32", random_state=seed).fit(train)
    train_seconds = time.perf_counter() - start
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in REFINE_VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        model = str(Path(folder) / "estimator_and_pairs.pkl")
        with open(model, "wb") as handle:
            pickle.dump((est, pairs), handle)
        args = [model, repr(tol), str(max_iter), str(hand_batch)]
        for _ in range(repeats):  # interleaved, so that drifts in machine load hit all alike
            for variant in REFINE_VARIANTS:
                runs[variant].append(_run_refine_worker([variant, *args]))
    rows = []
    for variant, label in REFINE_VARIANTS.items():
        mine = runs[variant]
        rows.append({
            "variant": label, "batch": mine[0]["batch"], "pairs": n_pairs,
            "seconds": float(np.median([r["seconds"] for r in mine])),
            "pairs/s": float(np.median([r["pairs_per_second"] for r in mine])),
            "peak RSS MB": float(np.median([r["peak_rss_mb"] for r in mine])),
            "RSS growth MB": float(np.median([r["peak_rss_mb"] - r["rss_before_mb"]
                                              for r in mine])),
            "median iters": mine[0]["median_iters"],
            "converged": f"{mine[0]['converged']}/{n_pairs}",
        })
    hand = rows[list(REFINE_VARIANTS).index("hand")]["pairs/s"]
    for row in rows:
        row["pairs/s vs by hand"] = row["pairs/s"] / hand
    values = {variant: mine[0]["value_sum"] for variant, mine in runs.items()}
    plan_gb = n_pairs * 784 * 784 * 4 / 1e9
    return {
        "benchmark": "scale: refine a large collection",
        "settings": {"n_pairs": n_pairs, "repeats": repeats, "tol": tol, "max_iter": max_iter,
                     "hand_batch": hand_batch, "epsilon": est.epsilon, "dtype": "float32",
                     "train_steps": train_steps, "train_seconds": train_seconds,
                     "hidden_layer_sizes": [256], "data": "make_mnist_pairs(split='test')",
                     "threads": runs["refine"][0]["threads"]},
        "seed": seed,
        "machine": machine_info(),
        "rows": rows,
        "runs": runs,
        "value_sums": values,
        "table": markdown_table(rows, REFINE_COLUMNS),
        "notes": [
            f"MetaSinkhornTransport(hidden_layer_sizes=(256,)) trained for {train_steps} steps "
            f"({train_seconds:.0f} s) on 4,096 MNIST training pairs; refinement to an L1 "
            f"marginal error of {tol:g} (max_iter={max_iter}), float32, CPU, "
            f"{runs['refine'][0]['threads']} torch thread(s).",
            "Each cell is the median over fresh processes. Peak RSS: the process's peak "
            "resident memory while refining (VmHWM, reset through /proc/self/clear_refs "
            "after loading the model and the pairs and a warm-up on 8 pairs; Python, torch, "
            "the model and the pairs included); RSS growth: that peak minus the resident "
            "memory just before refining.",
            "refine and the by-hand loop hold every result (potentials and values; plans are "
            "computed when read); iter_refine's consumer keeps three numbers per pair.",
            f"Sum of the refined values, refine / by hand / iter_refine: {values['refine']:.6f} "
            f"/ {values['hand']:.6f} / {values['stream']:.6f} (the same problems solved).",
            f"Holding the {n_pairs:,} dense float32 plans, as results did before the plans "
            f"became lazy, would take {plan_gb:.1f} GB.",
        ],
    }


def main(argv: list[str] | None = None) -> None:
    """Worker entry point: ``python -m harness.scale refine-worker ...``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "refine-worker":
        raise SystemExit("usage: python -m harness.scale refine-worker VARIANT "
                         "MODEL TOL MAX_ITER HAND_BATCH")
    variant, model, tol, max_iter, hand_batch = argv[1:6]
    result = _refine_worker(variant, model, float(tol), int(max_iter), int(hand_batch))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
