"""Large problems: one point-cloud pair of 10,000 to 50,000 points per side, time and peak memory.

Usage::

    python benchmarks/bench_large.py            # 10k, 20k, 50k points, ~11 minutes, one thread
    python benchmarks/bench_large.py --quick    # 2k and 4k points, a smoke test (a minute)

The problem: 2-D Gaussians N(0, 0.25 I) and N((1, 1), 0.25 I), uniform weights, squared
Euclidean cost (mean 3), ``epsilon = 0.5``, tolerance 1e-3 on the L1 marginal error, float32.
Each case runs in a fresh process, so that its peak resident memory (``ru_maxrss``, which counts
torch's and XLA's allocations, unlike ``tracemalloc``) is its own; the process is limited to one
thread (``OMP_NUM_THREADS=1``, XLA's single-threaded Eigen). The cases, interleaved by size:

* ``skmetaot sinkhorn(x=, y=)``: the default ``geometry="auto"``, which is the online geometry
  at these sizes (costs computed from the supports block by block, never held);
* ``skmetaot sinkhorn(C)``: a float32 cost matrix given by the user (10,000 points only; the
  matrix itself, 400 MB, is in the peak);
* ``OTT-JAX PointCloud(batch_size=...)``: OTT's online point cloud (blocks of about 2^22
  costs), ``Sinkhorn(threshold=1e-3)``, which measures the same L1 error every 10 iterations;
* ``GeomLoss tensorized``: ``SamplesLoss("sinkhorn", p=2, blur=sqrt(eps / 2), scaling=0.5,
  debias=False)`` (the same problem: GeomLoss's cost is ``|x - y|^2 / 2``), which runs a fixed
  epsilon-scaling schedule rather than to a tolerance; its online backend needs KeOps, and the
  tensorized one needs several 50,000^2 float32 matrices (10 GB each), so it runs up to 20,000
  points.

The error column is the L1 marginal error ``|P 1 - a|_1 + |P^T 1 - b|_1`` of each solver's
returned potentials, recomputed by one skmetaot reduction after the peak memory was read. Peers
that are not installed (``pip install -e ".[peers]"``) are reported as missing. Writes
``benchmarks/results/bench_large[_quick].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

EPSILON = 0.5
TOL = 1e-3
MAX_ITER = 2000
#: Costs per OTT block (its ``batch_size`` is in rows).
OTT_BLOCK = 1 << 22
#: Largest size GeomLoss's tensorized backend is run at (it holds n x n matrices).
GEOMLOSS_MAX = 20_000
#: GeomLoss's epsilon-scaling factor, its default: it ends at an L1 marginal error of 0.15-0.25
#: on this problem; 0.9 ends at 0.02 in about 3x the time (120 s at 10,000 points), 0.99 at
#: 0.002.
GEOMLOSS_SCALING = 0.5
SOLVERS = {
    "ours": "skmetaot sinkhorn(x=, y=)",
    "ours-C": "skmetaot sinkhorn(C)",
    "ott": "OTT-JAX PointCloud(batch_size)",
    "geomloss": "GeomLoss tensorized",
}
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "JAX_PLATFORMS": "cpu"}


def problem(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Supports (n, 2) and (n, 2) in float32, and the uniform weights."""
    rng = np.random.default_rng(seed)
    x = (0.5 * rng.normal(size=(n, 2))).astype(np.float32)
    y = (1.0 + 0.5 * rng.normal(size=(n, 2))).astype(np.float32)
    return x, y, np.full(n, 1.0 / n, dtype=np.float32)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def marginal_error(x: np.ndarray, y: np.ndarray, f: np.ndarray, g: np.ndarray) -> float:
    """L1 marginal error of the plan ``exp((f_i + g_j - |x_i - y_j|^2) / eps)`` (uniform a, b)."""
    import torch

    from skmetaot.geometry import OnlineGeometry

    geometry = OnlineGeometry(torch.from_numpy(x).double(), torch.from_numpy(y).double(), EPSILON)
    scaled_f = torch.tensor(np.array(f), dtype=torch.float64)[None] / EPSILON
    scaled_g = torch.tensor(np.array(g), dtype=torch.float64)[None] / EPSILON
    rows = torch.exp(scaled_f + geometry.lse_target(scaled_g))
    cols = torch.exp(scaled_g + geometry.lse_source(scaled_f))
    return float((rows - 1 / len(x)).abs().sum() + (cols - 1 / len(y)).abs().sum())


def solve_ours(x, y, a, with_matrix: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    from skmetaot import sinkhorn
    from skmetaot.costs import sqeuclidean

    cost = None
    if with_matrix:  # built by blocks of rows, as a user with a big matrix would hold it
        cost = np.empty((len(x), len(y)), dtype=np.float32)
        for start in range(0, len(x), 1000):
            cost[start:start + 1000] = sqeuclidean(torch.from_numpy(x[start:start + 1000]),
                                                   torch.from_numpy(y)).numpy()
    base = peak_mb()
    start = time.perf_counter()
    if with_matrix:
        res = sinkhorn(a, a, cost, epsilon=EPSILON, tol=TOL, max_iter=MAX_ITER)
    else:
        res = sinkhorn(a, a, x=x, y=y, epsilon=EPSILON, tol=TOL, max_iter=MAX_ITER)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "iterations": int(res.n_iter), "base_mb": base,
            "peak_mb": peak_mb(), "f": res.f, "g": res.g}


def solve_ott(x, y, a) -> dict:
    import jax
    import jax.numpy as jnp
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    base = peak_mb()
    start = time.perf_counter()
    geom = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), epsilon=EPSILON,
                                 batch_size=max(1, OTT_BLOCK // len(y)))
    prob = linear_problem.LinearProblem(geom, jnp.asarray(a), jnp.asarray(a))
    out = jax.jit(sinkhorn.Sinkhorn(threshold=TOL, max_iterations=MAX_ITER))(prob)
    f, g = np.asarray(out.f), np.asarray(out.g)  # waits for the computation
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "iterations": int(out.n_iters), "base_mb": base,
            "peak_mb": peak_mb(), "f": f, "g": g, "converged": bool(out.converged),
            "note": "includes jit compilation"}


def solve_geomloss(x, y, a) -> dict:
    import torch

    torch.set_num_threads(1)
    from geomloss import SamplesLoss

    base = peak_mb()
    start = time.perf_counter()
    # GeomLoss's p=2 cost is |x - y|^2 / 2 and its epsilon is blur^p: (C / 2, eps / 2) is our
    # problem; its potentials are relative to a x b.
    loss = SamplesLoss("sinkhorn", p=2, blur=(EPSILON / 2) ** 0.5, scaling=GEOMLOSS_SCALING,
                       debias=False, potentials=True, backend="tensorized")
    tensors = [torch.from_numpy(v)[None] for v in (a, x, a, y)]
    big_f, big_g = loss(*tensors)
    seconds = time.perf_counter() - start
    f = 2 * big_f[0].double().numpy() + EPSILON * np.log(a.astype(np.float64))
    g = 2 * big_g[0].double().numpy() + EPSILON * np.log(a.astype(np.float64))
    return {"seconds": seconds, "iterations": "eps-scaling", "base_mb": base,
            "peak_mb": peak_mb(), "f": f, "g": g}


def worker(solver: str, n: int) -> None:
    x, y, a = problem(n)
    if solver == "ott":
        out = solve_ott(x, y, a)
    elif solver == "geomloss":
        out = solve_geomloss(x, y, a)
    else:
        out = solve_ours(x, y, a, with_matrix=solver == "ours-C")
    f, g = out.pop("f"), out.pop("g")
    out["error"] = marginal_error(x, y, f, g)
    print(json.dumps(out))


def run_case(solver: str, n: int, timeout: float) -> dict:
    """One case in a fresh process; on timeout, the peak memory it had reached (VmHWM)."""
    row = {"n": n, "solver": SOLVERS[solver]}
    process = subprocess.Popen([sys.executable, __file__, "--worker", solver, str(n)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **THREAD_ENV})
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        peak = _high_water_mb(process.pid)
        process.kill()
        process.communicate()
        return row | {"peak_mb": peak, "status": f"stopped after {timeout:.0f} s"}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        return row | {"status": "failed: " + (stderr.strip().splitlines() or ["?"])[-1][:200]}
    return row | json.loads(lines[-1]) | {"status": "ok"}


def _high_water_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("SOLVER", "N"))
    parser.add_argument("--timeout", type=float, default=100.0,
                        help="seconds per peer case (skmetaot's cases get 5x)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    sizes = [2_000, 4_000] if args.quick else [10_000, 20_000, 50_000]
    peers = {"ott": installed("ott"), "geomloss": installed("geomloss")}
    rows, load = [], [os.getloadavg()[0]]
    for n in sizes:
        cases = ["ours"] + (["ours-C"] if n == sizes[0] else [])
        cases += [p for p, ok in peers.items() if ok and (p != "geomloss" or n <= GEOMLOSS_MAX)]
        for solver in cases:
            limit = args.timeout * (5 if solver.startswith("ours") else 1)
            row = run_case(solver, n, limit)
            rows.append(row)
            print({k: v for k, v in row.items() if k != "base_mb"}, flush=True)
    ours = {row["n"]: row for row in rows if row["solver"] == SOLVERS["ours"]}
    for row in rows:
        mine = ours.get(row["n"], {})
        if row.get("status") == "ok" and mine.get("status") == "ok":
            row["time / ours"] = row["seconds"] / mine["seconds"]
            row["peak / ours"] = row["peak_mb"] / mine["peak_mb"]
    from harness.common import machine_info, markdown_table, write_results

    columns = ["n", "solver", "seconds", "iterations", "error", "peak_mb", "base_mb",
               "time / ours", "peak / ours", "status"]
    table = markdown_table(rows, columns)
    notes = [f"One pair of {', '.join(f'{n:,}' for n in sizes)} points per side, eps={EPSILON}, "
             f"tol={TOL}, float32, one thread per process (OMP_NUM_THREADS=1, XLA single-"
             "threaded); one run per case (minutes each), so no medians; peers are stopped after "
             f"{args.timeout:.0f} s (their peak memory so far is reported). peak_mb: the process's "
             "peak resident memory; base_mb: the same just before the solve (libraries and "
             f"data). GeomLoss runs its epsilon-scaling schedule (scaling={GEOMLOSS_SCALING}, "
             "no tolerance: its error column says where it ends); its tensorized "
             f"backend is not run above {GEOMLOSS_MAX:,} points (n^2 float32 matrices of 10 GB "
             "at 50,000) and its online backend needs KeOps. OTT's time includes its jit "
             "compilation (a few seconds).",
             "Missing peers: " + (", ".join(p for p, ok in peers.items() if not ok) or "none"),
             f"Load average (1 min) at the start and the end: {load[0]:.1f}, "
             f"{os.getloadavg()[0]:.1f} (above 1, other processes shared the cores)."]
    payload = {"machine": machine_info(), "epsilon": EPSILON, "tol": TOL, "sizes": sizes,
               "rows": rows, "table": table, "notes": notes, "seed": 0}
    payload["machine"]["torch_threads"] = 1
    write_results("bench_large" + ("_quick" if args.quick else ""), payload, table, args.out)
    print(table)


if __name__ == "__main__":
    main()
