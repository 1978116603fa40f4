"""Sphere-sized dense problems: seconds per pair-iteration against peers and the bandwidth limit.

Usage::

    python benchmarks/bench_dense_kernel.py            # 100 x 10,000, batch 1 and 16 (~4 min)
    python benchmarks/bench_dense_kernel.py --quick    # fewer repeats and iterations
    python benchmarks/bench_dense_kernel.py --smoke    # 100 x 1,000, ours only, seconds
    python benchmarks/bench_dense_kernel.py --device cuda --peers   # ours on CUDA, no peers

The B2 instances (:func:`skmetaot.datasets.make_sphere_supply_demand`: 100 supply points, 10,000
demand points on the unit sphere, geodesic cost, eps = 1e-3, float32) are solved from zeros
for exactly K1 and K2 iterations by each solver (a tolerance no solver meets; OTT: threshold 0;
POT: ``stopThr=0``), and the cost of one pair-iteration is ``(t(K2) - t(K1)) / ((K2 - K1) B)``
at batch size B, which leaves out each call's fixed cost (building the cost, compiling). Solvers:

* skmetaot ``sinkhorn(pairs, cost="spherical", geometry="dense")`` (public API), batch 1 and B;
* OTT-JAX ``Geometry(cost_matrix=C)`` (the precomputed cost, passed to the compiled function)
  and ``PointCloud`` with the same geodesic cost as a ``CostFn`` (OTT computes it on the fly),
  jit, batch 1 and ``vmap`` over B, OTT's default ``inner_iterations=10``;
* POT ``sinkhorn_log`` (numpy), batch 1.

The memory-bandwidth limit: a log-domain iteration reads the (n, m) cost (or kernel) twice,
once for each potential, so one pair-iteration moves at least ``2 n m`` numbers; the machine's
streaming read bandwidth (a large torch ``sum``, one thread) turns that into seconds. A batch
that shares the cost could in principle read it once for all its pairs; the limit quoted is the
per-pair one, the figure for a lone problem. A log-sum-exp also takes an exponential per entry:
the ``torch.exp`` throughput on a cost-sized buffer gives the compute floor, quoted beside the
bandwidth one. The error column (L1, eq. (7), float64, after K2
iterations) checks that every solver ran the same iterations.

Writes ``benchmarks/results/bench_dense_kernel[_quick|_smoke][_cuda].{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path
from typing import Any

import _peers
import numpy as np
import torch
from harness.common import machine_info, markdown_table, write_results

from skmetaot import sinkhorn
from skmetaot.costs import SPHERICAL_SHRINK, spherical
from skmetaot.datasets import make_sphere_supply_demand

EPSILON = 1e-3
MODES = {
    "full": dict(n_demand=10_000, batch=16, iters=(20, 120), pot_iters=(5, 15), repeats=2,
                 dtypes=("float32", "float64"), tol_pairs=2),
    "quick": dict(n_demand=10_000, batch=16, iters=(20, 80), pot_iters=(3, 9), repeats=1,
                  dtypes=("float32",), tol_pairs=1),
    "smoke": dict(n_demand=1_000, batch=4, iters=(5, 45), pot_iters=(2, 6), repeats=1,
                  dtypes=("float32",), tol_pairs=1),
}
COLUMNS = ["dtype", "solver", "batch", "s per pair-iteration", "s/pair-iter incl. fixed",
           "limit / this", "this / ours", "error after K2", "compile s"]


def read_bandwidth(device: torch.device, n_bytes: int, repeats: int = 5) -> dict:
    """Bandwidth of ``device`` in GB/s over a buffer of ``n_bytes``: ``sum`` (read), ``copy_``."""
    n = n_bytes // 4
    source = torch.ones(n, dtype=torch.float32, device=device)
    target = torch.empty_like(source)

    def best(function) -> float:
        times = []
        for _ in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            function()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        return min(times[1:])  # the first run pays for page faults

    read = source.numel() * 4 / best(source.sum) / 1e9
    copy = 2 * source.numel() * 4 / best(lambda: target.copy_(source)) / 1e9
    return {"read GB/s": read, "copy GB/s (read + write)": copy, "buffer MB": n_bytes / 2**20}


def exp_throughput(device: torch.device, n: int, dtype: str, repeats: int = 20) -> float:
    """Exponentials per second of ``torch.exp`` over ``n`` entries (cost-sized, one thread)."""
    values = -torch.rand(n, dtype=getattr(torch, dtype), device=device)
    out = torch.empty_like(values)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        torch.exp(values, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return n / min(times[1:])


def _two_counts(function, iters: tuple[int, int], repeats: int, batch: int):
    """Seconds per pair-iteration from runs of K1 and K2 iterations, interleaved; results."""
    first, second, result = [], [], None
    for _ in range(repeats):
        for k, store in zip(iters, (first, second), strict=True):
            start = time.perf_counter()
            result = function(k)
            store.append(time.perf_counter() - start)
    t1, t2 = float(np.median(first)), float(np.median(second))
    per = max(t2 - t1, 0.0) / ((iters[1] - iters[0]) * batch)
    return per, t2 / (iters[1] * batch), result


def _instances(n_pairs: int, seed: int, dtype: str, settings: dict, device: torch.device):
    """B2 pairs on ``device``, their float64 geodesic cost and float64 weights (numpy)."""
    pairs = make_sphere_supply_demand(n_pairs, random_state=seed, dtype=dtype,
                                      n_demand=settings["n_demand"])
    cost64 = spherical(pairs.x.double(), pairs.y.double())
    a64, b64 = pairs.a.double().numpy(), pairs.b.double().numpy()
    return pairs.to(device=device), cost64, a64, b64


def measure(dtype: str, settings: dict, peers: list[str], device: torch.device,
            seed: int) -> list[dict[str, Any]]:
    """Rows for one dtype: ours and each peer at batch 1 and B."""
    batch = settings["batch"]
    pairs, cost64, a64, b64 = _instances(batch, seed + 10_000, dtype, settings, device)
    rows = []

    def ours(sub):
        def solve(k):
            result = sinkhorn(sub, cost="spherical", epsilon=EPSILON, tol=1e-30, max_iter=k,
                              geometry="dense", warn=False)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return result
        return solve

    cases = []  # (name, batch, solve(k) -> (f, g), compile seconds)
    for size in (1, batch):
        solve = ours(pairs[:size])
        solve(settings["iters"][0])  # warm-up
        cases.append(("skmetaot sinkhorn (dense)", size, solve, None))
    if "ott" in peers:
        x, y = pairs.x.cpu().numpy(), pairs.y.cpu().numpy()
        cost = cost64.numpy()
        for name, make, args in (
                ("OTT Geometry(cost_matrix)", _peers.ott_cost_matrix(EPSILON), (cost,)),
                ("OTT PointCloud (geodesic)",
                 _peers.ott_spherical_pointcloud(EPSILON, SPHERICAL_SHRINK), (x, y))):
            for size in (1, batch):
                shape = slice(0, size) if size > 1 else 0
                solvers, seconds = {}, 0.0
                for k in settings["iters"]:
                    solvers[k] = _peers.OttSinkhorn(make, 0.0, dtype, size > 1, max_iter=k,
                                                    inner_iterations=min(10, k), threshold=0.0,
                                                    geometry_args=args)
                    seconds += solvers[k].compile(a64[shape], b64[shape])
                cases.append((name, size, lambda k, s=solvers, c=shape: s[k](a64[c], b64[c]),
                              seconds))
    if "pot" in peers:
        import ot

        cost_np = cost64.numpy().astype(dtype)
        a_pot, b_pot = pairs.a[0].cpu().numpy(), pairs.b[0].cpu().numpy()

        def pot(k):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                plan = ot.sinkhorn(a_pot, b_pot, cost_np, EPSILON, method="sinkhorn_log",
                                   numItermax=k, stopThr=0.0, warn=False)
            return plan

        cases.append(("POT sinkhorn_log", 1, pot, None))
    ours_per = {}
    for name, size, solve, compile_s in cases:
        iters = settings["pot_iters"] if name.startswith("POT") else settings["iters"]
        per, total, result = _two_counts(solve, iters, settings["repeats"], size)
        if name.startswith("POT"):
            error = _peers.plan_error(result, a64[0], b64[0])
        elif name.startswith("OTT"):
            error = float(np.median(_peers.l1_error(result[0], result[1], a64[:size],
                                                    b64[:size], cost64, EPSILON)))
        else:
            error = float(np.median(_peers.l1_error(_numpy(result.f), _numpy(result.g),
                                                    a64[:size], b64[:size], cost64, EPSILON)))
        if name.startswith("skmetaot"):
            ours_per[size] = per
        rows.append({"dtype": dtype, "solver": name, "batch": size, "s per pair-iteration": per,
                     "s/pair-iter incl. fixed": total, "error after K2": error,
                     "iterations": f"{iters[0]} / {iters[1]}",
                     **({"compile s": compile_s} if compile_s else {})})
    for row in rows:
        ours_same = ours_per.get(row["batch"], ours_per[1])
        # A difference of two noisy timings can vanish; a ratio to zero says nothing.
        row["this / ours"] = (row["s per pair-iteration"] / ours_same if ours_same > 0
                              else float("nan"))
    return rows


TOL = 1e-2
TOL_COLUMNS = ["dtype", "solver", "tol", "s/pair", "iters", "error", "met", "this / ours",
               "compile s"]


def to_tolerance(dtype: str, settings: dict, peers: list[str], device: torch.device,
                 seed: int) -> list[dict[str, Any]]:
    """Whole cold solves of single pairs to ``TOL``: what a user waits for.

    The first iterations from zeros move the potentials by many multiples of the cost (our
    stabilised kernel is rebuilt often there); later ones run on the absorbed kernel, two
    matrix-vector products each. The K1/K2 figures see only the first phase; this sees both.
    """
    n_pairs = settings["tol_pairs"]
    pairs, cost64, a64, b64 = _instances(n_pairs, seed + 20_000, dtype, settings, device)
    records: dict[str, list] = {}

    def record(name, seconds, iters, error):
        records.setdefault(name, []).append((seconds, iters, error))

    ott = None
    if "ott" in peers:
        ott = _peers.OttSinkhorn(_peers.ott_cost_matrix(EPSILON), TOL, dtype, False,
                                 max_iter=20_000, inner_iterations=10,
                                 geometry_args=(cost64.numpy(),))
        ott_compile = ott.compile(a64[0], b64[0])
    for k in range(n_pairs):  # interleaved: each pair by every solver in turn
        sub = pairs[[k]]
        seconds, result = _peers.median_time(lambda sub=sub: sinkhorn(
            sub, cost="spherical", epsilon=EPSILON, tol=TOL, max_iter=20_000,
            geometry="dense", warn=False), 1)
        n_iter = int(result.n_iter[0])
        record("skmetaot sinkhorn (dense)", seconds, n_iter, float(_peers.l1_error(
            _numpy(result.f), _numpy(result.g), a64[k:k + 1], b64[k:k + 1], cost64,
            EPSILON)[0]))
        if ott is not None:
            seconds, (f, g, iters) = _peers.median_time(lambda k=k: ott(a64[k], b64[k]), 1)
            record("OTT Geometry(cost_matrix), error every 10", seconds, int(iters),
                   float(_peers.l1_error(np.asarray(f)[None], np.asarray(g)[None],
                                         a64[k:k + 1], b64[k:k + 1], cost64, EPSILON)[0]))
        if "pot" in peers and k == 0:
            import ot

            # POT's stabilised loop fails at its first iteration from zeros here (the kernel
            # underflows on whole rows at this epsilon), so POT runs its log-domain loop, in
            # float64, for as many iterations as ours took.
            cost_np, a_pot, b_pot = cost64.numpy(), a64[k], b64[k]

            def pot(n_iter=n_iter, a_pot=a_pot, b_pot=b_pot, cost_np=cost_np):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return ot.sinkhorn(a_pot, b_pot, cost_np, EPSILON,
                                       method="sinkhorn_log", numItermax=n_iter,
                                       stopThr=0.0, warn=False)

            seconds, plan = _peers.median_time(pot, 1)
            record("POT sinkhorn_log (float64), our iterations", seconds, n_iter,
                   _peers.plan_error(plan, a64[k], b64[k]))
    ours = float(np.median([r[0] for r in records["skmetaot sinkhorn (dense)"]]))
    rows = []
    for name, runs in records.items():
        seconds = float(np.median([r[0] for r in runs]))
        rows.append({"dtype": dtype, "solver": name, "tol": TOL, "s/pair": seconds,
                     "iters": float(np.median([r[1] for r in runs])),
                     "error": float(np.median([r[2] for r in runs])),
                     "met": f"{sum(r[2] < TOL for r in runs)}/{len(runs)}",
                     "this / ours": seconds / ours,
                     **({"compile s": ott_compile} if name.startswith("OTT") else {})})
    return rows


def _numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--smoke", action="store_true", help="small problem, ours only")
    parser.add_argument("--device", default="cpu", help="our torch device, e.g. cuda")
    parser.add_argument("--peers", nargs="*", default=None, choices=["pot", "ott"],
                        help="peers to measure (default: all installed; none: --peers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    mode = "quick" if args.quick else "smoke" if args.smoke else "full"
    settings = MODES[mode]
    load = os.getloadavg()[0]
    requested = args.peers if args.peers is not None else ([] if mode == "smoke"
                                                           else ["pot", "ott"])
    found, missing = _peers.available(requested)
    device = torch.device(args.device)
    # Streaming from memory (a buffer far larger than the caches), and over a buffer the size
    # of one float32 cost matrix, which may stay in the caches between the two reads.
    cost_bytes = 100 * settings["n_demand"] * 4
    bandwidth = {"memory": read_bandwidth(device, (64 if mode == "smoke" else 512) << 20),
                 "cost-sized": read_bandwidth(device, cost_bytes, repeats=50)}
    rows = []
    for dtype in settings["dtypes"]:
        new = measure(dtype, settings, found, device, args.seed)
        moved = 2 * 100 * settings["n_demand"] * np.dtype(dtype).itemsize
        limits = {kind: moved / (bandwidth[kind]["read GB/s"] * 1e9) for kind in bandwidth}
        for row in new:
            row["limit / this"] = limits["memory"] / row["s per pair-iteration"]
        rows += [{"dtype": dtype, "solver": f"limit: 2 n m reads at {kind} bandwidth",
                  "batch": 1, "s per pair-iteration": limit} for kind, limit in limits.items()]
        exps = exp_throughput(device, 100 * settings["n_demand"], dtype)
        rows.append({"dtype": dtype, "solver": f"limit: 2 n m exp at {exps / 1e9:.2f} G exp/s",
                     "batch": 1, "s per pair-iteration": 2 * 100 * settings["n_demand"] / exps})
        rows += new
        print(markdown_table(rows, COLUMNS), flush=True)
    tol_rows = []
    for dtype in settings["dtypes"]:
        tol_rows += to_tolerance(dtype, settings, found, device, args.seed)
        print(markdown_table(tol_rows, TOL_COLUMNS), flush=True)
    table = (markdown_table(rows, COLUMNS) + "\n\n## Cold solves to tolerance (batch 1)\n\n"
             + markdown_table(tol_rows, TOL_COLUMNS))
    notes = [
        f"B2 instances: 100 supply x {settings['n_demand']:,} demand points, geodesic cost, "
        f"eps={EPSILON}; batch 1 and {settings['batch']}; one thread (torch, XLA); ours on "
        f"{device}, peers on CPU. K1/K2 = {settings['iters']} iterations "
        f"(POT: {settings['pot_iters']}), medians of {settings['repeats']} interleaved runs.",
        "s per pair-iteration = (t(K2) - t(K1)) / ((K2 - K1) x batch); 'incl. fixed' = "
        "t(K2) / (K2 x batch). limit / this: the bandwidth limit over the solver's figure "
        "(1 = at the limit). this / ours: against ours at the same batch size.",
        "Bandwidth (" + str(device) + ", one thread): " + "; ".join(
            f"{kind} ({b['buffer MB']:.1f} MB float32 buffer) read {b['read GB/s']:.1f} GB/s "
            f"(sum), copy {b['copy GB/s (read + write)']:.1f} GB/s"
            for kind, b in bandwidth.items())
        + ". limit = 2 x 100 x n_demand x itemsize / read bandwidth; 'limit / this' uses the "
        "memory one (the cost-sized buffer may be served from the caches, a tighter limit).",
        "OTT: threshold 0 and max_iterations K (compiled once per K; compile s is both), "
        "inner_iterations=10 (its default: the error is computed every 10 iterations). POT: "
        "stopThr=0, numItermax=K.",
        f"Cold solves to tolerance: {settings['tol_pairs']} other B2 pairs solved one at a "
        f"time from zeros to tol={TOL} (L1, eq. (7)); s/pair and iters are medians over the "
        "pairs, error the float64 L1 error of the returned potentials or plan. OTT checks its "
        "error every 10 iterations (inner_iterations=10, its default; compile s apart). POT "
        "runs sinkhorn_log in float64 for our iteration count (stopThr=0), on the first pair "
        "only (a minute a pair at full size): its own stopping rule is not the L1 of eq. (7), "
        "and its stabilised loop fails at the first iteration from zeros on these pairs (the "
        "kernel underflows on whole rows). Our float32 runs compute the geodesic cost of the "
        "float32 points in float32 (then iterate in float64): their potentials solve that "
        "rounded cost, and against the float64 cost of the same points their error is about "
        "2 % higher (0.0102 at tol 0.01; with the cost computed in float64 it was 0.010008). "
        "OTT is given the float64 cost matrix.",
        _peers.peers_note(found, missing),
        _peers.load_note(load),
    ]
    info = machine_info(device)
    info["torch_threads"] = torch.get_num_threads()
    payload = {"benchmark": "dense kernel (bench_dense_kernel)", "mode": mode, "seed": args.seed,
               "settings": settings, "bandwidth": bandwidth, "machine": info, "rows": rows,
               "tolerance_rows": tol_rows, "peers": found, "missing_peers": missing,
               "table": table, "notes": notes}
    name = "bench_dense_kernel" + ("" if mode == "full" else f"_{mode}")
    if device.type != "cpu":
        name += f"_{device.type}"
    write_results(name, payload, table, args.out)
    print(table)


if __name__ == "__main__":
    main()
