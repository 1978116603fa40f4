"""B1 cold solves with peers: skmetaot's ``sinkhorn`` against OTT-JAX, POT and GeomLoss.

One run, the same held-out MNIST test pairs for every solver, interleaved (each pair is solved
by every solver before the next pair; each batch of 64 by every batched solver before the next
batch), eps = 1e-2, one thread. Every solver's returned potentials (or plan, for POT) are turned
into the L1 marginal error of eq. (7) in float64 by :func:`_peers.l1_error`, and a pair counts as
solved only when that error is below the tolerance.

Stopping rules, as close to ours (both marginals' L1 error below ``tol``, checked every
iteration) as each peer allows:

* skmetaot ``sinkhorn`` (public API, batch 1 and batch 64; finished problems leave the batch);
* OTT-JAX ``Sinkhorn(threshold=tol, norm_error=1, inner_iterations=1)``: the L1 error of its
  b-marginal (its a-marginal is exact after its last update, so that is eq. (7)) checked every
  iteration, jit-compiled once per tolerance, dtype and batch size (compile time reported apart);
  batch 64 is ``vmap`` (every problem runs until the slowest stops). ``Grid`` gets the weights
  floored at 1e-12 and renormalised (its separable kernel turns zero weights into NaN);
  ``PointCloud`` gets the weights as they are;
* POT ``sinkhorn_log`` (batch 1; POT has no batch): run with ``stopThr=0`` for the fewest
  iterations at which its plan meets the tolerance (ours, then +10), so it does no work of its
  own stopping rule;
* GeomLoss ``ot.solve_batch``: no tolerance; a fixed number of symmetric steps along its
  epsilon-annealing schedule, so it is run at fixed step counts and its achieved error reported.
"""

from __future__ import annotations

import os
import time
from typing import Any

import _peers
import numpy as np
import torch
from harness.common import machine_info, markdown_table, pot_to_tolerance

from skmetaot import sinkhorn
from skmetaot.datasets import make_mnist_pairs

COLUMNS = ["dtype", "tol", "solver", "s/pair b=1", "iters b=1", "error b=1 (median)",
           "met b=1", "pairs/s b=64", "iters b=64", "met b=64", "compile s",
           "peer/ours s b=1", "peer/ours s b=64"]
#: Settings of the modes: pairs (in batches of ``block``), pairs solved one by one by ours and
#: OTT's Grid, by OTT's PointCloud, POT and GeomLoss (the slow ones: the first few of the same
#: pairs), repeats, and the (dtype, tol) at which OTT's PointCloud also runs at batch 64 (its
#: vmapped loop takes minutes per batch of 64 on one thread).
MODES = {
    "full": dict(n_pairs=64, n_single=64, n_pc=32, n_pot=24, n_geomloss=2,
                 dtypes=("float32", "float64"), tolerances=(1e-2, 1e-3),
                 geomloss_steps=(100, 300), repeats=3, pc_batched=(("float32", 1e-2),)),
    "quick": dict(n_pairs=64, n_single=16, n_pc=4, n_pot=4, n_geomloss=1, dtypes=("float32",),
                  tolerances=(1e-2, 1e-3), geomloss_steps=(100,), repeats=1, pc_batched=()),
    "smoke": dict(n_pairs=4, n_single=2, n_pc=1, n_pot=1, n_geomloss=1, dtypes=("float32",),
                  tolerances=(1e-2,), geomloss_steps=(20,), repeats=1, block=4,
                  pc_batched=(("float32", 1e-2),)),
}
#: OTT's Grid with its default check of the error every 10 iterations (batch 1 only).
OTT_DEFAULT_CHECK = "OTT Grid, error every 10 (OTT default)"
#: A batched peer whose first run takes longer than this is not repeated (OTT's vmapped
#: PointCloud takes several seconds per batch of 64).
REPEAT_BELOW_S = 2.0


def _numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


class _Stats:
    """Per-pair seconds, iterations and errors of one solver at one batch size."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.iters: list[float] = []
        self.errors: list[float] = []
        self.compile_s: float | None = None

    def add(self, seconds: float, iters: Any, errors: Any) -> None:
        self.seconds.append(seconds)
        self.iters.extend(np.atleast_1d(iters).astype(float).tolist())
        self.errors.extend(np.atleast_1d(errors).astype(float).tolist())

    def met(self, tol: float) -> str:
        return f"{int(np.sum(np.asarray(self.errors) < tol))}/{len(self.errors)}"


def _ours(pairs, epsilon, tol, device):
    """Our public call; returns (f, g, n_iter) after the device has finished."""
    result = sinkhorn(pairs, epsilon=epsilon, tol=tol, max_iter=5000, warn=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result


def _timed_repeats(function, repeats: int) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    first = time.perf_counter() - start
    if first > REPEAT_BELOW_S or repeats <= 1:
        return first, result
    seconds, result = _peers.median_time(function, repeats - 1)
    return float(np.median([first, seconds])), result


def _measure(dtype: str, tol: float, pairs, cost64, settings, peers, device,
             epsilon: float, progress: bool, geomloss: dict) -> dict[str, dict[str, _Stats]]:
    """Every solver on the same pairs for one dtype and tolerance.

    GeomLoss has no tolerance: it is run once per dtype (``geomloss`` keeps its stats) and
    reported under every tolerance.
    """
    block = settings.get("block", 64)
    a64, b64 = pairs.a.double().cpu().numpy(), pairs.b.double().cpu().numpy()
    a_grid, b_grid = _peers.floor_weights(a64), _peers.floor_weights(b64)
    support = pairs.x.cpu().numpy()
    stats = {size: {"skmetaot sinkhorn": _Stats()} for size in ("b1", "b64")}
    ours_stats = {size: stats[size]["skmetaot sinkhorn"] for size in ("b1", "b64")}
    ott = {}
    if "ott" in peers:
        axes = [np.unique(support[:, 0]), np.unique(support[:, 1])]
        grid = _peers.ott_grid(axes, epsilon, dtype)
        geometries = {"OTT Grid": (grid, a_grid, b_grid, 1),
                      OTT_DEFAULT_CHECK: (grid, a_grid, b_grid, 10),
                      "OTT PointCloud": (_peers.ott_pointcloud(support, support, epsilon, dtype),
                                         a64, b64, 1)}
        for name, (make, a, b, inner) in geometries.items():
            for size, batch in (("b1", False), ("b64", True)):
                if batch and (name == OTT_DEFAULT_CHECK or name == "OTT PointCloud" and (
                        dtype, tol) not in settings["pc_batched"]):
                    continue
                solver = _peers.OttSinkhorn(make, tol, dtype, batch, inner_iterations=inner)
                stats[size][name] = _Stats()
                shape = slice(0, block) if batch else 0
                stats[size][name].compile_s = solver.compile(a[shape], b[shape])
                ott[name, size] = (solver, a, b)
    _ours(pairs[:block], epsilon, tol, device)  # warm-up

    def ours_row(sub, seconds, result):
        errors = _peers.l1_error(_numpy(result.f), _numpy(result.g), sub.a.cpu(), sub.b.cpu(),
                                 cost64, epsilon)
        return seconds, _numpy(result.n_iter), errors

    # Batch 64: ours then every batched peer on each block.
    for start in range(0, pairs.n_pairs - block + 1, block):
        sub = pairs[start:start + block]
        seconds, result = _timed_repeats(lambda sub=sub: _ours(sub, epsilon, tol, device),
                                         settings["repeats"])
        ours_stats["b64"].add(*ours_row(sub, seconds, result))
        for (name, size), (solver, a, b) in ott.items():
            if size != "b64":
                continue
            chunk = slice(start, start + block)
            seconds, (f, g, n) = _timed_repeats(lambda s=solver, c=chunk, a=a, b=b: s(a[c], b[c]),
                                                settings["repeats"])
            stats["b64"][name].add(seconds, n,
                                   _peers.l1_error(f, g, a64[chunk], b64[chunk], cost64, epsilon))
    # Batch 1: every solver on pair k before pair k + 1.
    cost_np = cost64.numpy().astype(dtype)
    if "pot" in peers:
        stats["b1"]["POT sinkhorn_log"] = _Stats()
    run_geomloss = "geomloss" in peers and not geomloss
    if "geomloss" in peers and "not run" not in geomloss:
        for steps in settings["geomloss_steps"]:
            stats["b1"][f"GeomLoss {steps} steps"] = geomloss.setdefault(steps, _Stats())
    for k in range(settings["n_single"]):
        one = pairs[k:k + 1]
        start = time.perf_counter()
        result = _ours(one, epsilon, tol, device)
        seconds = time.perf_counter() - start
        ours_stats["b1"].add(*ours_row(one, seconds, result))
        for (name, size), (solver, a, b) in ott.items():
            if size == "b1" and (name != "OTT PointCloud" or k < settings["n_pc"]):
                start = time.perf_counter()
                f, g, n = solver(a[k], b[k])
                seconds = time.perf_counter() - start
                stats["b1"][name].add(seconds, n,
                                      _peers.l1_error(f, g, a64[k], b64[k], cost64, epsilon))
        if "pot" in peers and k < settings["n_pot"]:
            a_pot = pairs.a[k].cpu().numpy()
            b_pot = pairs.b[k].cpu().numpy()
            seconds, iters, _, error = pot_to_tolerance(
                a_pot, b_pot, cost_np, epsilon, tol, int(_numpy(result.n_iter).ravel()[0]),
                return_error=True)
            stats["b1"]["POT sinkhorn_log"].add(seconds, iters, error)
        if run_geomloss and k < settings["n_geomloss"]:
            for steps in settings["geomloss_steps"]:
                start = time.perf_counter()
                f, g = _peers.geomloss_solve(cost64.to(getattr(torch, dtype)),
                                             one.a.cpu(), one.b.cpu(), epsilon, steps)
                seconds = time.perf_counter() - start
                stats["b1"][f"GeomLoss {steps} steps"].add(
                    seconds, steps, _peers.l1_error(f, g, a64[k], b64[k], cost64, epsilon))
        if progress and k % 16 == 15:
            print(f"  {dtype} tol={tol:g}: {k + 1}/{settings['n_single']} pairs", flush=True)
    # The same lone solves back to back, as a user's loop over pairs runs them: the interleaved
    # figures above also pay for the caches and branch history the peers' calls evicted.
    loop = stats["b1 loop"] = {"skmetaot sinkhorn": _Stats()}
    for _ in range(settings["repeats"]):
        for k in range(settings["n_single"]):
            one = pairs[k:k + 1]
            start = time.perf_counter()
            result = _ours(one, epsilon, tol, device)
            loop["skmetaot sinkhorn"].add(time.perf_counter() - start, _numpy(result.n_iter),
                                          0.0)
    return stats


def _rows(dtype, tol, stats) -> tuple[list[dict[str, Any]], dict[str, float]]:
    ours1 = float(np.median(stats["b1"]["skmetaot sinkhorn"].seconds))
    ours64 = stats["b64"]["skmetaot sinkhorn"]
    block = len(ours64.iters) // max(1, len(ours64.seconds))
    ours64_s = float(np.median(ours64.seconds)) / max(1, block)
    rows = []
    for name in dict.fromkeys([*stats["b1"], *stats["b64"]]):  # not the back-to-back loop
        row = {"dtype": dtype, "tol": tol, "solver": name}
        one, batched = stats["b1"].get(name), stats["b64"].get(name)
        if one is not None and one.seconds:
            s1 = float(np.median(one.seconds))
            row |= {"s/pair b=1": s1, "iters b=1": float(np.median(one.iters)),
                    "error b=1 (median)": float(np.median(one.errors)), "met b=1": one.met(tol),
                    "peer/ours s b=1": s1 / ours1}
        if batched is not None and batched.seconds:
            per_pair = float(np.median(batched.seconds)) / block
            row |= {"pairs/s b=64": 1.0 / per_pair, "iters b=64": float(np.median(batched.iters)),
                    "met b=64": batched.met(tol), "peer/ours s b=64": per_pair / ours64_s}
        compiles = [s.compile_s for s in (one, batched) if s is not None and s.compile_s]
        if compiles:
            row["compile s"] = " / ".join(f"{c:.2f}" for c in compiles)
        rows.append(row)
    # Where batch-1 time goes: a lone solve against its iterations at the in-batch cost.
    per_iteration = float(np.sum(ours64.seconds)) / max(1.0, float(np.sum(ours64.iters)))
    fixed = {"dtype": dtype, "tol": tol, "ours s/pair b=1": ours1,
             "ours iters b=1": float(np.median(stats["b1"]["skmetaot sinkhorn"].iters)),
             "s per pair-iteration in batch 64": per_iteration}
    fixed["b=1 / (iters x in-batch cost)"] = ours1 / (fixed["ours iters b=1"] * per_iteration)
    loop = stats["b1 loop"]["skmetaot sinkhorn"]
    fixed["ours s/pair b=1, back to back"] = float(np.median(loop.seconds))
    fixed["back to back / (iters x in-batch cost)"] = (
        fixed["ours s/pair b=1, back to back"] / (float(np.median(loop.iters)) * per_iteration))
    return rows, fixed


def run(mode: str = "full", *, seed: int = 0, device: str = "cpu",
        peers: list[str] | None = None, epsilon: float = 1e-2,
        progress: bool = True) -> dict[str, Any]:
    """Measure ours and the installed peers; return the payload with its Markdown table.

    Parameters
    ----------
    mode : {"full", "quick", "smoke"}
        Sizes of :data:`MODES`.
    seed : int, default=0
        Which test pairs (images 8000-9999 of the MNIST test set).
    device : str, default="cpu"
        Our device; peers run on their CPU backends.
    peers : list of str, optional
        Peers to measure (default: every one of ``_peers.PEER_MODULES`` that is installed).
    epsilon : float, default=1e-2
    progress : bool, default=True

    Returns
    -------
    dict
    """
    settings = MODES[mode]
    load = os.getloadavg()[0]
    found, missing = _peers.available(peers)
    torch_device = torch.device(device)
    rows, fixed_rows = [], []
    for dtype in settings["dtypes"]:
        pairs = make_mnist_pairs(settings["n_pairs"], split="test", random_state=seed,
                                 dtype=dtype).to(device=torch_device)
        x = pairs.x.double().cpu()
        cost64 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        geomloss = {} if dtype == "float32" else {"not run": None}  # GeomLoss: float32 only
        for tol in settings["tolerances"]:
            stats = _measure(dtype, tol, pairs, cost64, settings, found, torch_device, epsilon,
                             progress, geomloss)
            new_rows, fixed = _rows(dtype, tol, stats)
            rows += new_rows
            fixed_rows.append(fixed)
            if progress:
                print(markdown_table(new_rows, COLUMNS), flush=True)
    fixed_columns = ["dtype", "tol", "ours s/pair b=1", "ours iters b=1",
                     "s per pair-iteration in batch 64", "b=1 / (iters x in-batch cost)",
                     "ours s/pair b=1, back to back", "back to back / (iters x in-batch cost)"]
    table = (markdown_table(rows, COLUMNS) + "\n\n## Batch 1 against the in-batch cost "
             "per iteration (ours)\n\n" + markdown_table(fixed_rows, fixed_columns))
    block = settings.get("block", 64)
    notes = [
        f"{settings['n_single']} held-out MNIST test pairs solved one at a time by every solver "
        f"(the slow ones on the first of them: OTT PointCloud {settings['n_pc']}, POT "
        f"{settings['n_pot']}, GeomLoss {settings['n_geomloss']}, in float32 only), and "
        f"{settings['n_pairs']} in batches of {block} (OTT PointCloud only at "
        f"{', '.join(f'{d} tol={t:g}' for d, t in settings['pc_batched']) or 'none'}: its "
        f"vmapped loop takes minutes per batch); eps={epsilon}, one thread "
        "(torch, XLA), ours on " + str(torch_device) + ", peers on CPU. s/pair b=1: median over "
        "pairs; pairs/s b=64: the block size over the median block time. 'met': pairs whose "
        "float64 L1 error (eq. 7, recomputed from the returned potentials or plan against the "
        "original weights) is below tol; 'iters': median iterations.",
        "peer/ours: the peer's seconds per pair over ours (above 1: we are faster).",
        "Batch 1 against the in-batch cost: our lone solve over (its iterations x the seconds "
        "per pair-iteration inside the batches of 64), once as timed interleaved with the peers "
        "(each call after a peer's) and once back to back (the same pairs in a loop of our "
        "calls only, as a user's loop runs them; repeats x pairs calls).",
        "OTT-JAX: Sinkhorn(threshold=tol, norm_error=1, inner_iterations=1), jit: the same rule "
        "as ours, checked every iteration (the extra row with OTT's default "
        "inner_iterations=10 checks every 10 iterations: cheaper iterations, up to 9 more of "
        "them); compile s "
        "(b=1 / b=64) is the lower().compile() time, apart from the runs. OTT's Grid gets "
        f"weights floored at {_peers.WEIGHT_FLOOR:g} and renormalised (its separable kernel "
        "loses slices with zero weights: NaN potentials and no convergence); its error is "
        "measured against the unfloored weights. PointCloud gets the weights unchanged. "
        "Batch 64 is jax.vmap: all problems iterate until the slowest stops.",
        "POT: ot.sinkhorn(method='sinkhorn_log', stopThr=0) for the fewest iterations (ours, "
        "then +10) at which its plan meets tol; numpy backend, the dtype of the row.",
        "GeomLoss: geomloss.ot.solve_batch(C, reg=eps, max_iter=steps) has no tolerance: it "
        "runs a fixed number of symmetric steps along an epsilon-annealing schedule; its rows "
        "are at fixed step counts, with the error they reach ('met' against the row's tol).",
        _peers.peers_note(found, missing),
        _peers.load_note(load),
    ]
    info = machine_info(torch_device)
    info["torch_threads"] = torch.get_num_threads()
    return {"benchmark": "B1 cold with peers (bench_sinkhorn)", "mode": mode, "seed": seed,
            "settings": settings, "peers": found, "missing_peers": missing, "machine": info,
            "rows": rows, "fixed_cost": fixed_rows, "table": table, "notes": notes}
