"""B1, cold part: our batched Sinkhorn against POT's ``sinkhorn_log`` on MNIST test pairs.

Both solvers run the same iteration (alternate log-domain updates from zero potentials) and are
measured to the same stopping rule, the L1 marginal error of eq. (7) (both marginals): ours stops
on it per problem; POT (which stops on the L2 norm of the b-marginal error) is given the iteration
count at which its own plan meets the L1 tolerance (our count, raised in steps of 10 until it
does), with ``stopThr=0`` so it runs exactly those iterations. Seconds are medians over pairs;
batch-64 seconds per pair are the median block time divided by the block size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import ot
import torch
from tqdm.auto import tqdm

from harness.common import machine_info, markdown_table, pot_to_tolerance, timed
from skmetaot.datasets import make_mnist_pairs
from skmetaot.solvers import sinkhorn

COLUMNS = ["dtype", "tol", "iters (ours)", "iters (POT)", "POT s/pair", "ours s/pair b=1",
           "ours s/pair b=64", "ratio b=1", "ratio b=64", "ours pairs/s b=64", "POT met tol"]


def run(
    n_pairs: int = 128,
    *,
    n_single: int | None = None,
    dtypes: Iterable[str] = ("float32", "float64"),
    tolerances: Iterable[float] = (1e-2, 1e-3),
    epsilon: float = 1e-2,
    block: int = 64,
    repeats: int = 3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Measure cold-start solves on MNIST test pairs; return rows and metadata.

    Parameters
    ----------
    n_pairs : int, default=128
        Test pairs (images 8000-9999 of the MNIST test set).
    n_single : int, optional
        Pairs solved one at a time (ours at batch 1, and POT); default all.
    dtypes : iterable of {"float32", "float64"}
    tolerances : iterable of float
        L1 marginal error targets (eq. (7)).
    epsilon : float, default=1e-2
    block : int, default=64
        Batch size of the batched measurement.
    repeats : int, default=3
        Timed repeats of each batch (median), after one warm-up.
    seed : int, default=0
    device : str, default="cpu"
    progress : bool, default=True

    Returns
    -------
    dict
        ``rows`` (one per dtype and tolerance), ``table`` (Markdown), ``machine`` and settings.
    """
    torch_device = torch.device(device)
    n_single = n_pairs if n_single is None else min(n_single, n_pairs)
    rows = []
    for dtype in dtypes:
        pairs = make_mnist_pairs(n_pairs, split="test", random_state=seed, dtype=dtype)
        pairs = pairs.to(device=torch_device)
        a_np = pairs.a.cpu().numpy()
        b_np = pairs.b.cpu().numpy()
        cost = ot.dist(pairs.x.cpu().numpy()).astype(dtype)
        for tol in tolerances:
            def solve(sub, tol=tol):
                result = sinkhorn(sub, epsilon=epsilon, tol=tol, max_iter=5000)
                if torch_device.type == "cuda":
                    torch.cuda.synchronize()
                return result

            solve(pairs[:block])  # warm-up
            block_seconds, n_iter = [], []
            for start in range(0, n_pairs, block):
                sub = pairs[start:start + block]
                runs = [timed(lambda s=sub: solve(s)) for _ in range(repeats)]
                block_seconds.append(float(np.median([r[0] for r in runs])) / len(sub))
                n_iter.extend(np.asarray(runs[0][1].n_iter).tolist())
            ours_single, pot_single, pot_iters, pot_met = [], [], [], []
            pair_iter = range(n_single)
            if progress:
                pair_iter = tqdm(pair_iter, desc=f"{dtype} tol={tol:g} one by one", leave=False)
            for k in pair_iter:
                one = pairs[k]
                ours_single.append(timed(lambda one=one: solve(one))[0])
                seconds, iters, met = pot_to_tolerance(a_np[k], b_np[k], cost, epsilon, tol,
                                                       n_iter[k])
                pot_single.append(seconds)
                pot_iters.append(iters)
                pot_met.append(met)
            pot_s = float(np.median(pot_single))
            ours_b1 = float(np.median(ours_single))
            ours_b64 = float(np.median(block_seconds))
            rows.append({
                "dtype": dtype, "tol": tol,
                "iters (ours)": float(np.median(n_iter)),
                "iters (POT)": float(np.median(pot_iters)),
                "POT s/pair": pot_s, "ours s/pair b=1": ours_b1, "ours s/pair b=64": ours_b64,
                "ratio b=1": pot_s / ours_b1, "ratio b=64": pot_s / ours_b64,
                "ours pairs/s b=64": 1.0 / ours_b64,
                "POT met tol": f"{sum(pot_met)}/{len(pot_met)}",
            })
    return {
        "benchmark": "B1 cold (bench_sinkhorn)",
        "settings": {"n_pairs": n_pairs, "n_single": n_single, "epsilon": epsilon,
                     "block": block, "repeats": repeats, "data": "MNIST test images 8000-9999",
                     "error": "L1 marginal error, both marginals (eq. 7)"},
        "seed": seed,
        "machine": machine_info(torch_device),
        "rows": rows,
        "table": markdown_table(rows, COLUMNS),
        "notes": [
            "POT: ot.sinkhorn(method='sinkhorn_log', stopThr=0) run for the fewest iterations "
            "(ours, then +10 steps) at which its plan meets the same L1 tolerance; numpy backend.",
            "ratio = POT seconds per pair / ours (higher is better for us).",
        ],
    }


def run_benchmark(quick: bool = False, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """What ``skmetaot bench sinkhorn`` runs: the payloads by result-file name.

    The runner every benchmark of the command line has (same signature): ``quick`` is the
    smoke-test size.
    """
    payload = (run(64, n_single=8, repeats=1, device=device) if quick
               else run(128, device=device))
    # Its own file: POT alone, not benchmarks/bench_sinkhorn.py's table with the peers.
    return {"bench_sinkhorn_pot" + ("_quick" if quick else ""): payload}
