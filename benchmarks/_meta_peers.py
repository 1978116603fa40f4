"""B1 meta part with a peer: our MetaSinkhornTransport against OTT-JAX's MetaInitializer.

Both models train on the same stream of fresh MNIST pairs (images 0-7999 of the test set,
:func:`skmetaot.datasets.mnist_pair_sampler` with one seed, so the same batches in the same
order) for the same wall-clock seconds: ours with the benchmark's schedule
(``mnist_estimator``: 512 x 3 MLP, batch 128, three unrolled Sinkhorn steps), its ``max_iter``
set to the steps that fit the budget (measured on a few steps first, so its learning-rate
schedule ends with the budget); OTT's ``MetaInitializer`` (a flax MLP of the same widths on the
concatenated weights, its dual-objective update, Adam 1e-3) for as many steps as fit in the
seconds ours took, after one step that compiles it (timed apart).

On held-out pairs (images 8000-9999), one pair at a time and interleaved, each to 1e-2 and to
1e-3: the prediction alone; prediction plus refinement (ours: ``refine(init="meta")``, public
API; OTT: its jit-compiled Sinkhorn with the initializer, same L1 rule as in
:mod:`_sinkhorn_peers`); and each library's cold solve. OTT runs on its ``Grid`` geometry with
weights floored at 1e-12 (see :data:`_peers.WEIGHT_FLOOR`), training included. Every error is
recomputed in float64 from the returned potentials against the original weights.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

import _peers
import numpy as np
import torch
from harness.common import machine_info, markdown_table
from harness.meta_sinkhorn import MNIST_MLP, mnist_estimator
from sklearn.base import clone

from skmetaot import sinkhorn
from skmetaot.datasets import make_mnist_pairs, mnist_pair_sampler

EPSILON = 1e-2
MODES = {
    "full": dict(train_seconds=300.0, n_test=64, tolerances=(1e-2, 1e-3), calibrate_steps=20),
    "quick": dict(train_seconds=40.0, n_test=16, tolerances=(1e-2, 1e-3), calibrate_steps=5),
    "smoke": dict(train_seconds=2.0, n_test=2, tolerances=(1e-2,), calibrate_steps=2,
                  hidden=(64,), batch_size=16),
}
COLUMNS = ["tol", "method", "predict s", "iters", "s/pair", "met", "error (median)",
           "vs own cold (s)", "vs our cold (s)"]
LOOP_COLUMNS = ["method", "s/pair", "vs our cold (s)"]
TRAIN_COLUMNS = ["model", "train s", "fit wall s", "steps", "s/step", "compile s", "hidden",
                 "batch"]


def _histograms(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) weights, rows summing to one, from a (B, 2, H, W) batch of image pairs."""
    flat = np.asarray(batch, dtype=np.float64).reshape(len(batch), 2, -1)
    flat = flat / flat.sum(-1, keepdims=True)
    return flat[:, 0], flat[:, 1]


def _back_to_back(est, test, tol: float, ott: tuple | None):
    """Each library's batch-1 calls in a loop of its own over the held-out pairs.

    The interleaved table times each call after the other library's, whose buffers and
    compiled code have evicted the caller's from the caches; a user's loop over pairs runs one
    library's calls back to back. ``ott`` is ``(solvers, predict, a_grid, b_grid)``, or None
    when OTT is not measured.
    """
    calls = {"skmetaot predict": lambda one, k: est.predict_potentials(one),
             "skmetaot cold sinkhorn": lambda one, k: sinkhorn(one, epsilon=EPSILON, tol=tol,
                                                               max_iter=5000, warn=False),
             "skmetaot predict + refine": lambda one, k: est.refine(one, tol=tol, max_iter=5000,
                                                                    init="meta")}
    if ott is not None:
        ott_solvers, predict, a_grid, b_grid = ott
        calls |= {"OTT MetaInitializer predict":
                  lambda one, k: np.asarray(predict(a_grid[k], b_grid[k])),
                  "OTT cold Sinkhorn (Grid)": lambda one, k: ott_solvers[tol, "cold"](
                      a_grid[k], b_grid[k]),
                  "OTT MetaInitializer + Sinkhorn (Grid)": lambda one, k: ott_solvers[
                      tol, "meta"](a_grid[k], b_grid[k])}
    pairs = [test[k:k + 1] for k in range(test.n_pairs)]
    medians = {}
    for method, call in calls.items():
        call(pairs[0], 0)  # warm-up
        seconds = []
        for k, one in enumerate(pairs):
            start = time.perf_counter()
            call(one, k)
            seconds.append(time.perf_counter() - start)
        medians[method] = float(np.median(seconds))
    ours = medians["skmetaot cold sinkhorn"]
    return [{"method": method, "s/pair": value, "vs our cold (s)": ours / value}
            for method, value in medians.items()]


def train_ours(settings: dict, seed: int, device: str):
    """Our estimator trained for about ``train_seconds`` on the fresh-pair stream."""
    # The MLP, not the benchmark's convolutional default: OTT's MetaInitializer trains the same
    # network, so the comparison is of the training, not of the architectures.
    est = mnist_estimator(False, seed, verbose=0).set_params(**MNIST_MLP)
    if "hidden" in settings:
        est.set_params(hidden_layer_sizes=settings["hidden"], batch_size=settings["batch_size"],
                       unroll_steps=0)
    est.set_params(device=device)
    probe = clone(est).set_params(max_iter=settings["calibrate_steps"])
    probe.fit(mnist_pair_sampler(est.batch_size, split="train", random_state=seed + 99))
    per_step = probe.history_["seconds"] / settings["calibrate_steps"]
    est.set_params(max_iter=max(1, int(settings["train_seconds"] / per_step)))
    start = time.perf_counter()
    est.fit(mnist_pair_sampler(est.batch_size, split="train", random_state=seed))
    wall = time.perf_counter() - start
    seconds = est.history_["seconds"]  # the training loop, as OTT's is timed
    return est, {"model": "skmetaot MetaSinkhornTransport", "train s": seconds,
                 "fit wall s": wall, "steps": est.n_iter_, "s/step": seconds / est.n_iter_,
                 "hidden": str(tuple(est.hidden_layer_sizes)), "batch": est.batch_size}


def train_ott(seconds: float, hidden: tuple[int, ...], batch_size: int, axes, seed: int):
    """OTT's MetaInitializer on the same stream for ``seconds`` (after a compiling step)."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn
    from ott.geometry import grid
    from ott.initializers.neural.meta_initializer import MetaInitializer

    n = len(axes[0]) * len(axes[1])

    class PotentialMLP(nn.Module):
        widths: tuple[int, ...]
        size: int

        @nn.compact
        def __call__(self, weights):
            out = weights
            for width in self.widths:
                out = nn.relu(nn.Dense(width)(out))
            return nn.Dense(self.size)(out)

    geom = grid.Grid(x=[jnp.asarray(c, dtype=jnp.float32) for c in axes], epsilon=EPSILON)
    meta = MetaInitializer(geom, PotentialMLP(tuple(hidden), n), rng=jax.random.PRNGKey(seed))
    stream = iter(mnist_pair_sampler(batch_size, split="train", random_state=seed))

    def step():
        a, b = (_peers.floor_weights(w).astype(np.float32) for w in _histograms(next(stream)))
        loss, _, meta.state = meta.update(meta.state, jnp.asarray(a), jnp.asarray(b))
        return float(loss)  # waits for the step

    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    steps, start = 1, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    train_s = time.perf_counter() - start
    info = {"model": "OTT-JAX MetaInitializer (Grid)", "train s": train_s, "steps": steps,
            "s/step": train_s / (steps - 1) if steps > 1 else None, "compile s": compile_s,
            "hidden": str(tuple(hidden)), "batch": batch_size}
    return meta, info


def _c_transform(f: np.ndarray, b: np.ndarray, cost: torch.Tensor) -> np.ndarray:
    """``g(f)``, the update that makes the b-marginal exact, in float64."""
    f = torch.tensor(np.array(f, dtype=np.float64))
    with np.errstate(divide="ignore"):
        log_b = torch.log(torch.tensor(np.array(b, dtype=np.float64)))
    return (EPSILON * (log_b - torch.logsumexp((f[:, None] - cost) / EPSILON, 0))).numpy()


def run(mode: str = "full", *, seed: int = 0, device: str = "cpu", ott: bool = True,
        train_seconds: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Train both models, measure them on held-out pairs; return the payload with tables.

    Parameters
    ----------
    mode : {"full", "quick", "smoke"}
    seed : int, default=0
    device : str, default="cpu"
        Our device (OTT runs on its CPU backend).
    ott : bool, default=True
        Measure OTT-JAX (when installed).
    train_seconds : float, optional
        Training budget of each model (default: the mode's).
    progress : bool, default=True

    Returns
    -------
    dict
    """
    settings = dict(MODES[mode])
    load = os.getloadavg()[0]
    if train_seconds is not None:
        settings["train_seconds"] = float(train_seconds)
    found, missing = _peers.available(["ott"] if ott else [])
    if "ott" in found and importlib.util.find_spec("flax") is None:
        # OTT's MetaInitializer builds its network with flax, which ott-jax does not install.
        found, missing = [], [*missing, "ott (its MetaInitializer needs flax)"]
    est, ours_info = train_ours(settings, seed, device)
    if progress:
        print(f"ours: {ours_info['steps']} steps in {ours_info['train s']:.0f} s", flush=True)
    test = make_mnist_pairs(settings["n_test"], split="test", random_state=seed + 1,
                            dtype="float32")
    x = test.x.double()
    cost64 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    a64, b64 = test.a.double().numpy(), test.b.double().numpy()
    train_rows = [ours_info]
    ott_solvers = {}
    if found:
        axes = [np.unique(test.x[:, 0].numpy()), np.unique(test.x[:, 1].numpy())]
        meta, ott_info = train_ott(ours_info["train s"], tuple(est.hidden_layer_sizes),
                                   est.batch_size, axes, seed)
        train_rows.append(ott_info)
        if progress:
            print(f"OTT: {ott_info['steps']} steps in {ott_info['train s']:.0f} s", flush=True)
        import jax

        predict = jax.jit(lambda a, b: meta._compute_f(a, b, meta.state.params))
        a_grid, b_grid = (_peers.floor_weights(w).astype(np.float32) for w in (a64, b64))
        make = _peers.ott_grid(axes, EPSILON, "float32")
        for tol in settings["tolerances"]:
            for init in ("cold", "meta"):
                solver = _peers.OttSinkhorn(make, tol, "float32", False,
                                            initializer=meta if init == "meta" else None)
                solver.compile(a_grid[0], b_grid[0])
                ott_solvers[tol, init] = solver
        predict(a_grid[0], b_grid[0]).block_until_ready()
    records: dict[tuple, dict[str, list]] = {}

    def record(tol, method, seconds, iters, error, predict_s=None):
        entry = records.setdefault((tol, method), {"s": [], "iters": [], "err": [], "pred": []})
        entry["s"].append(seconds)
        entry["iters"].append(float(iters))
        entry["err"].append(float(error))
        if predict_s is not None:
            entry["pred"].append(predict_s)

    est.refine(test[:1], tol=settings["tolerances"][0])  # warm-up
    for k in range(settings["n_test"]):
        one = test[k:k + 1]
        start = time.perf_counter()
        f, g = est.predict_potentials(one)
        predict_s = time.perf_counter() - start
        pred_error = _peers.l1_error(f, g, a64[k], b64[k], cost64, EPSILON)[0]
        if ott_solvers:
            start = time.perf_counter()
            f_ott = np.asarray(predict(a_grid[k], b_grid[k]))
            ott_predict_s = time.perf_counter() - start
            ott_pred_error = _peers.l1_error(f_ott, _c_transform(f_ott, b64[k], cost64),
                                             a64[k], b64[k], cost64, EPSILON)[0]
        for tol in settings["tolerances"]:
            start = time.perf_counter()
            cold = sinkhorn(one, epsilon=EPSILON, tol=tol, max_iter=5000, warn=False)
            seconds = time.perf_counter() - start
            record(tol, "skmetaot cold sinkhorn", seconds, np.ravel(cold.n_iter)[0],
                   _peers.l1_error(cold.f, cold.g, a64[k], b64[k], cost64, EPSILON)[0])
            start = time.perf_counter()
            (refined,) = est.refine(one, tol=tol, max_iter=5000, init="meta")
            seconds = time.perf_counter() - start
            f_r, g_r = refined.potentials
            record(tol, "skmetaot predict + refine", seconds, refined.log["niter"],
                   _peers.l1_error(f_r, g_r, a64[k], b64[k], cost64, EPSILON)[0], predict_s)
            for init, method in (("cold", "OTT cold Sinkhorn (Grid)"),
                                 ("meta", "OTT MetaInitializer + Sinkhorn (Grid)")):
                if (tol, init) not in ott_solvers:
                    continue
                start = time.perf_counter()
                f_o, g_o, n_o = ott_solvers[tol, init](a_grid[k], b_grid[k])
                seconds = time.perf_counter() - start
                record(tol, method, seconds, n_o,
                       _peers.l1_error(f_o, g_o, a64[k], b64[k], cost64, EPSILON)[0],
                       ott_predict_s if init == "meta" else None)
        record("prediction", "skmetaot predict", predict_s, 0, pred_error, predict_s)
        if ott_solvers:
            record("prediction", "OTT MetaInitializer predict", ott_predict_s, 0,
                   ott_pred_error, ott_predict_s)
    loops = _back_to_back(est, test, settings["tolerances"][0],
                          (ott_solvers, predict, a_grid, b_grid) if ott_solvers else None)
    rows = []
    for (tol, method), entry in records.items():
        cold_name = "OTT cold Sinkhorn (Grid)" if method.startswith("OTT") else \
            "skmetaot cold sinkhorn"
        seconds = float(np.median(entry["s"]))
        row = {"tol": tol, "method": method, "iters": float(np.median(entry["iters"])),
               "s/pair": seconds, "error (median)": float(np.median(entry["err"]))}
        if entry["pred"]:
            row["predict s"] = float(np.median(entry["pred"]))
        if tol != "prediction":
            row["met"] = f"{int(np.sum(np.asarray(entry['err']) < tol))}/{len(entry['err'])}"
            row["vs own cold (s)"] = float(np.median(records[tol, cold_name]["s"])) / seconds
            row["vs our cold (s)"] = (float(np.median(records[tol, "skmetaot cold sinkhorn"]
                                                      ["s"])) / seconds)
        rows.append(row)
    rows.sort(key=lambda r: (str(r["tol"]), r["method"]))
    table = ("## Training (same stream of fresh pairs, same seconds)\n\n"
             + markdown_table(train_rows, TRAIN_COLUMNS)
             + "\n\n## Held-out pairs, batch 1 (medians)\n\n" + markdown_table(rows, COLUMNS)
             + f"\n\n## Back to back, tol {settings['tolerances'][0]:g} (medians)\n\n"
             + markdown_table(loops, LOOP_COLUMNS))
    notes = [
        f"{settings['n_test']} held-out MNIST pairs (images 8000-9999), eps={EPSILON}, float32, "
        f"one thread; ours on {device}, OTT on CPU. Training budget {settings['train_seconds']:.0f}"
        " s each: ours at the benchmark's schedule with max_iter set to the steps that fit "
        f"(measured on {settings['calibrate_steps']} steps first); OTT for the seconds ours "
        "took in its training loop ('train s'; 'fit wall s' adds our setup), after a first "
        "(compiling) step timed apart.",
        "Back to back: each library's calls in a loop of their own over the same pairs (the "
        "batch-1 table times each call after the other library's, whose buffers have evicted "
        "the caller's from the caches), one call per pair, medians.",
        "s/pair of predict + refine includes the prediction; 'vs own cold' is the library's "
        "cold solve over this (above 1: the initialisation pays); 'vs our cold' uses our cold "
        "solve. Prediction rows: the L1 error of (f, g(f)) before any Sinkhorn update.",
        "OTT: Grid geometry, weights floored at 1e-12 and renormalised (training and test); "
        "Sinkhorn(threshold=tol, norm_error=1, inner_iterations=1), jit. OTT's "
        "MetaInitializer predicts f from the concatenated (a, b) with a flax MLP of our widths "
        "(ReLU); our model reads pooled inputs (inputs='pooled') with a Sinkhorn baseline.",
        "Errors: L1 marginal error of eq. (7) recomputed in float64 from the returned "
        "potentials against the original weights; met = below tol.",
        _peers.peers_note(found, missing),
        _peers.load_note(load),
    ]
    info = machine_info(torch.device(device))
    info["torch_threads"] = torch.get_num_threads()
    return {"benchmark": "B1 meta with peers (bench_meta_sinkhorn --peers)", "mode": mode,
            "seed": seed, "settings": settings, "machine": info, "train": train_rows,
            "rows": rows, "table": table, "notes": notes, "missing_peers": missing}
