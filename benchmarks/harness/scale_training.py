"""Training at scale: memory of streamed training at 1x/10x/100x pairs, and 1 vs 2 processes.

Every measurement runs in a fresh Python process (``python -m harness.scale_training KIND
PAIRS STEPS``, with ``benchmarks/`` on the path), so that its peak resident memory is its own
(VmHWM, as in :mod:`harness.scale`). Rank 0 prints one JSON line.

* ``stream``: :class:`~skmetaot.MetaSinkhornTransport` trained on a
  :class:`~skmetaot.sampling.PairSampler` over the 8,000 MNIST training images for
  ``pairs / batch_size`` steps (one pass over ``pairs`` freshly drawn pairs);
* ``memory``: the same number of pairs built as an (N, 2, 28, 28) float32 array first (what a
  user without a sampler does), then trained on in memory for the same steps;
* ``processes``: the stream under ``torchrun --nproc_per_node=K`` (``gloo``), pairs per second
  summed over the processes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

from harness.common import machine_info, markdown_table, run_json_worker
from harness.scale import peak_rss_mb

#: Network and schedule of every run (a small network: the data path dominates).
HIDDEN = (256,)
BATCH = 128
BASE_PAIRS = 2560
TRAINING_QUICK: dict[str, Any] = {"base_pairs": 640, "scales": (1, 10), "repeats": 1,
                         "process_steps": 40}


def _worker(kind: str, n_pairs: int, steps: int) -> dict[str, Any]:
    import torch

    from skmetaot import MetaSinkhornTransport, distributed
    from skmetaot.datasets import load_mnist
    from skmetaot.sampling import PairSampler

    distributed.init_from_environment()
    images, _ = load_mnist("train")
    est = MetaSinkhornTransport(hidden_layer_sizes=HIDDEN, batch_size=BATCH, max_iter=steps,
                                device="cpu", random_state=0)
    sampler = PairSampler(images, batch_size=BATCH, random_state=0)
    baseline = peak_rss_mb()
    if kind == "memory":
        # The pairs as a user would build them without a sampler: all of them, then fit.
        draws = sampler.iterate(0)
        data = np.concatenate([next(draws) for _ in range(-(-n_pairs // BATCH))])[:n_pairs]
        data = data.astype(np.float32)
        start = time.perf_counter()
        est.fit(data)
    else:
        start = time.perf_counter()
        est.fit(sampler)
    total_seconds = time.perf_counter() - start
    seconds = est.history_["seconds"]  # the training loop alone (not the set-up)
    return {"total_seconds": total_seconds, "kind": kind, "pairs": n_pairs,
            "steps": est.n_iter_, "seconds": seconds,
            "pairs_per_second": distributed.world_size() * BATCH * est.n_iter_ / seconds,
            "peak_rss_mb": peak_rss_mb(), "rss_before_fit_mb": baseline,
            "processes": distributed.world_size(), "rank": distributed.rank(),
            "threads": torch.get_num_threads()}


def _run_worker(args: list[str], processes: int = 1, threads: int = 1) -> list[dict[str, Any]]:
    return run_json_worker("harness.scale_training", args, threads=str(threads),
                           processes=processes, timeout=3600)


def run_training(base_pairs: int = BASE_PAIRS, scales: tuple[int, ...] = (1, 10, 100),
                 repeats: int = 3, process_steps: int = 200,
                 memory_scales: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Measure streamed vs in-memory training memory, and 1 vs 2 processes.

    Parameters
    ----------
    base_pairs : int
        Pairs at scale 1x (a multiple of the batch size, 128).
    scales : tuple of int
        Multiples of ``base_pairs`` to train on.
    repeats : int
        Runs per configuration (medians are reported).
    process_steps : int
        Steps of the 1- vs 2-process comparison.
    memory_scales : tuple of int, optional
        Scales of the in-memory contrast (default: ``scales``).

    Returns
    -------
    dict
        ``rows`` (memory), ``process_rows``, ``table``, ``machine``, ``notes``.
    """
    rows = []
    for kind, kind_scales in (("stream", scales), ("memory", memory_scales or scales)):
        for scale in kind_scales:
            n_pairs = base_pairs * scale
            runs = [_run_worker([kind, str(n_pairs), str(n_pairs // BATCH)])[0]
                    for _ in range(repeats)]
            rows.append({"form": "PairSampler stream" if kind == "stream"
                         else "(N, 2, 28, 28) array in memory", "scale": f"{scale}x",
                         "pairs": n_pairs, "steps": runs[0]["steps"],
                         "peak_rss_mb": float(np.median([r["peak_rss_mb"] for r in runs])),
                         "pairs_per_s": float(np.median([r["pairs_per_second"] for r in runs]))})
    for kind in ("stream", "memory"):
        mine = [r for r in rows if r["form"].startswith("PairSampler") == (kind == "stream")]
        for row in mine:
            row["rss_vs_1x"] = row["peak_rss_mb"] / mine[0]["peak_rss_mb"]
    process_rows = []
    for processes, threads in ((1, 1), (1, 2), (2, 1)):
        runs = [_run_worker(["stream", str(process_steps * BATCH), str(process_steps)],
                            processes=processes, threads=threads) for _ in range(repeats)]
        per_run = [run[0]["pairs_per_second"] for run in runs]
        process_rows.append({"processes": processes, "steps": process_steps,
                             "batch_per_process": BATCH,
                             "pairs_per_s": float(np.median(per_run)),
                             "threads_per_process": runs[0][0]["threads"]})
    for row in process_rows:
        row["speedup"] = row["pairs_per_s"] / process_rows[0]["pairs_per_s"]
        row["efficiency"] = row["speedup"] / (row["processes"] * row["threads_per_process"])
    table = (markdown_table(rows, ["form", "scale", "pairs", "steps", "peak_rss_mb",
                                   "rss_vs_1x", "pairs_per_s"])
             + "\n\n" + markdown_table(process_rows, ["processes", "threads_per_process",
                                                      "batch_per_process", "steps",
                                                      "pairs_per_s", "speedup",
                                                      "efficiency"]))
    stream = [r for r in rows if r["form"].startswith("PairSampler")]
    notes = [
        f"Peak resident memory of a fresh process (VmHWM, the whole process: Python, torch, "
        f"the MNIST images, the model), median of {repeats} runs. "
        f"MetaSinkhornTransport(hidden_layer_sizes={HIDDEN}, batch_size={BATCH}), float32, "
        "CPU; one pass over the pairs (pairs / batch_size steps).",
        f"Streamed training: peak memory from 1x to {scales[-1]}x the pairs changes by "
        f"{100 * (stream[-1]['peak_rss_mb'] / stream[0]['peak_rss_mb'] - 1):+.1f}% "
        "(bar: within 20%).",
        "pairs/s: pairs trained per second of the training loop (set-up excluded).",
        "Processes: torchrun --standalone --nproc_per_node=K, gloo; pairs/s summed over the "
        "processes (each trains on its own batch of 128 per step); speed-up against one "
        "process with one thread, efficiency = speed-up / cores used. The row with one "
        "process and two threads is the fair single-process use of this 2-core machine.",
    ]
    return {"rows": rows, "process_rows": process_rows, "table": table, "notes": notes,
            "machine": machine_info(), "seed": 0,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def run_benchmark(quick: bool = False, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """What ``skmetaot bench scale`` runs: both scale sections, by result-file name.

    The runner every benchmark of the command line has (same signature): ``quick`` is the
    smoke-test size; ``device`` is not used (the memory measurements are of CPU processes).
    """
    del device
    from harness import scale

    suffix = "_quick" if quick else ""
    return {f"bench_scale_training{suffix}": run_training(**(TRAINING_QUICK if quick else {})),
            f"bench_scale_refine{suffix}": scale.run_refine(
                **(scale.REFINE_QUICK if quick else scale.REFINE_FULL))}


if __name__ == "__main__":
    result = _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    if result["rank"] == 0:  # one report per run: the throughput is summed over the ranks
        print(json.dumps(result), flush=True)
