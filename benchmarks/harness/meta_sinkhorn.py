"""B1 and B2: Meta OT initialisation against zeros and Gaussian, on MNIST and on the sphere.

For each held-out pair and tolerance, the same solver (``MetaSinkhornTransport._refine_state``,
one pair at a time, batch 1) starts from zeros, from the Gaussian potential, or from the network's
prediction; seconds include computing the initialisation (the network's forward pass for meta).
POT's ``sinkhorn_log`` is run cold and warm-started from our prediction with
:func:`skmetaot.pot.to_warmstart`, each for the fewest iterations meeting the same L1 tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ot
import torch
from tqdm.auto import tqdm

from harness.common import (
    machine_info,
    markdown_table,
    pot_warmstart_row,
    timed,
)
from skmetaot.amortize import unrolled_marginal_error
from skmetaot.datasets import (
    make_mnist_pairs,
    make_sphere_supply_demand,
    mnist_pair_sampler,
    sphere_supply_demand_sampler,
)
from skmetaot.estimators import MetaSinkhornTransport
from skmetaot.measures import HistogramPairs, pairs_from_images
from skmetaot.solvers.entropic import pair_geometry, solve_pairs

INIT_COLUMNS = ["problem", "tol", "init", "iters", "seconds", "speed-up vs zeros (s)",
                "speed-up vs zeros (iters)", "batch", "s/pair batched", "speed-up batched",
                "converged"]
PRED_COLUMNS = ["problem", "predict s", "cold solve s (zeros)", "cold tol", "cold / predict",
                "prediction L1 error", "zeros-init L1 error", "batch-64 pairs/s predict"]
POT_COLUMNS = ["problem", "tol", "POT iters cold", "POT iters warm (meta)", "iter ratio",
               "POT s cold", "POT s warm", "met tol"]


def _solve_to(est, pairs, tolerances, init, chain: bool) -> list[tuple[float, Any]]:
    """(seconds, state) to each tolerance, loosest first.

    With ``chain``, one run serves every tolerance: the run to a tighter one continues from the
    potentials that met the looser one (Sinkhorn's whole state is f), so seconds and iterations
    accumulate along a single trajectory. The continuation's first iteration repeats the
    g-update that ended the previous leg, so it is not counted (its time is).
    """
    results = []
    for tol in sorted(tolerances, reverse=True):
        if not chain or not results:
            results.append(timed(lambda tol=tol: est._refine_state(pairs, tol, 100000, init)))
            continue
        before_s, before = results[-1]
        elapsed, state = timed(lambda tol=tol, f=before.f: solve_pairs(
            pairs, epsilon=est.epsilon, cost=est.cost, init=f, tol=tol, max_iter=100000))
        state.n_iter = state.n_iter + before.n_iter - 1
        results.append((before_s + elapsed, state))
    return results


def _init_rows(est, pairs, tolerances, name, n_single, progress, *, n_batch: int = 64,
               batch_repeats: int = 3, chain: bool = False) -> list[dict[str, Any]]:
    tolerances = sorted(tolerances, reverse=True)
    # Batched: the first n_batch pairs initialised (prediction included) and solved together.
    block = pairs[:min(n_batch, pairs.n_pairs)]
    stats = {tol: {} for tol in tolerances}
    for init in ("zeros", "gaussian", "meta"):
        est._refine_state(pairs[:1], tolerances[0], 100000, init)  # warm-up
        pair_iter = range(n_single)
        if progress:
            pair_iter = tqdm(pair_iter, desc=f"{name} {init}", leave=False)
        per_pair = [_solve_to(est, pairs[k], tolerances, init, chain) for k in pair_iter]
        batch_runs = [_solve_to(est, block, tolerances, init, chain)
                      for _ in range(batch_repeats)]
        for t, tol in enumerate(tolerances):
            seconds = [run[t][0] for run in per_pair]
            iters = [int(run[t][1].n_iter[0]) for run in per_pair]
            conv = [bool(run[t][1].converged[0]) for run in per_pair]
            batch_s = float(np.median([run[t][0] for run in batch_runs])) / block.n_pairs
            stats[tol][init] = (float(np.median(seconds)), float(np.median(iters)), conv,
                                batch_s)
    rows = []
    for tol in tolerances:
        zeros = stats[tol]["zeros"]
        for init, (sec, it, conv, batch_s) in stats[tol].items():
            rows.append({"problem": name, "tol": tol, "init": init, "iters": it, "seconds": sec,
                         "speed-up vs zeros (s)": zeros[0] / sec,
                         "speed-up vs zeros (iters)": zeros[1] / it,
                         "batch": block.n_pairs, "s/pair batched": batch_s,
                         "speed-up batched": zeros[3] / batch_s,
                         "converged": f"{sum(conv)}/{len(conv)}"})
    return rows


def _prediction_row(est, pairs, name, n_single, cold_seconds, cold_tol) -> dict[str, Any]:
    geometry = est._geometry(pairs)
    predict_s, errors, zero_errors = [], [], []
    est._predict_tensors(pairs[:1])
    for k in range(n_single):
        one = pairs[k]
        elapsed, (f, _, _) = timed(lambda one=one: est._predict_tensors(one))
        predict_s.append(elapsed)
        # Eq. (7) of (f, g(f)): what the prediction, and the cold start, give before any update.
        errors.append(float(unrolled_marginal_error(geometry, f, one.a, one.b, 0)))
        zero_errors.append(float(unrolled_marginal_error(geometry, torch.zeros_like(one.a),
                                                         one.a, one.b, 0)))
    block = pairs[:64]
    est._predict_tensors(block)
    batch_s = np.median([timed(lambda: est._predict_tensors(block))[0] for _ in range(3)])
    p, c = float(np.median(predict_s)), cold_seconds
    return {"problem": name, "predict s": p, "cold solve s (zeros)": c, "cold tol": cold_tol,
            "cold / predict": c / p, "prediction L1 error": float(np.median(errors)),
            "zeros-init L1 error": float(np.median(zero_errors)),
            "batch-64 pairs/s predict": block.n_pairs / batch_s}


def _pot_rows(est, pairs, tolerances, name, n_single, progress) -> list[dict[str, Any]]:
    cost = pair_geometry(pairs, [0], epsilon=est.epsilon, cost=est.cost,
                         cost_matrix=None)[0].cost_matrix().cpu().numpy().astype(np.float64)

    def cases(tol):
        pair_iter = range(n_single)
        if progress:
            pair_iter = tqdm(pair_iter, desc=f"{name} POT tol={tol:g}", leave=False)
        for k in pair_iter:
            one = pairs[k]
            f, g = (t[0].cpu().numpy().astype(np.float64) for t in est._predict_tensors(one)[:2])
            yield (one.a[0].cpu().numpy().astype(np.float64),
                   one.b[0].cpu().numpy().astype(np.float64), cost,
                   int(est._refine_state(one, tol, 100000, "zeros").n_iter[0]),
                   int(est._refine_state(one, tol, 100000, "meta").n_iter[0]), f, g)

    return [pot_warmstart_row(name, tol, est.epsilon, cases(tol)) for tol in tolerances]


def digits_ood_pairs(n_pairs: int, random_state: int = 0) -> HistogramPairs:
    """Out-of-distribution pairs: scikit-learn's 8 x 8 digits upscaled to 28 x 28 (bilinear)."""
    from sklearn.datasets import load_digits

    digits = torch.as_tensor(load_digits().images, dtype=torch.float64)[:, None]
    big = torch.nn.functional.interpolate(digits, size=(20, 20), mode="bilinear",
                                          align_corners=False).clamp_min(0)
    big = torch.nn.functional.pad(big, (4, 4, 4, 4))[:, 0]  # MNIST-like 20x20 box in 28x28
    rng = np.random.RandomState(random_state)
    first, second = rng.randint(len(big), size=n_pairs), rng.randint(len(big), size=n_pairs)
    return pairs_from_images(big[first].numpy(), big[second].numpy())


def mnist_estimator(quick: bool, random_state: int = 0, verbose: int = 1):
    """The CPU-sized MNIST schedule of the benchmark and of the main job."""
    if quick:
        return MetaSinkhornTransport(hidden_layer_sizes=(512, 512), max_iter=400,
                                     batch_size=64, inputs="pooled", baseline="sinkhorn",
                                     device="cpu", random_state=random_state, verbose=verbose)
    # 512 wide: as few iterations as 1024 wide (7 vs 8 to 1e-2), at a third of the forward pass.
    return MetaSinkhornTransport(hidden_layer_sizes=(512, 512, 512), max_iter=3000,
                                 batch_size=128, unroll_steps=3, inputs="pooled",
                                 baseline="sinkhorn", device="cpu",
                                 random_state=random_state, verbose=verbose)


def sphere_estimator(quick: bool, random_state: int = 0, verbose: int = 1):
    """The CPU-sized sphere schedule of the benchmark (the curve run trains it for longer)."""
    return MetaSinkhornTransport(
        epsilon=1e-3, cost="spherical", hidden_layer_sizes=(512, 512),
        max_iter=300 if quick else 1500, batch_size=64, unroll_steps=0, inputs="pooled",
        baseline="sinkhorn", device="cpu", random_state=random_state, verbose=verbose)


def demo_estimator(device: str = "cpu", quick: bool = False) -> MetaSinkhornTransport:
    """The main job's model: a short CPU schedule (about a minute on 2 cores)."""
    return MetaSinkhornTransport(hidden_layer_sizes=(256, 256) if quick else (512, 512),
                                 max_iter=300 if quick else 1000, batch_size=64,
                                 inputs="pooled", baseline="sinkhorn", unroll_steps=3,
                                 device=device, random_state=0, verbose=1)


def run_problem(name: str, est: MetaSinkhornTransport, train_pairs, test_pairs, *,
                tolerances=(1e-2, 1e-3), n_single: int = 128, progress: bool = True,
                pot: bool = True, n_pot: int = 24, n_batch: int = 64, batch_repeats: int = 3,
                chain: bool = False) -> dict[str, Any]:
    """Train ``est`` on ``train_pairs`` and measure it on ``test_pairs``.

    ``n_batch`` pairs are also solved together (``batch_repeats`` times, median); ``chain``
    measures every tolerance along one run per pair (see :func:`_solve_to`).
    """
    if train_pairs is None:  # a model trained elsewhere (e.g. by a learning-curve run)
        train_seconds = float(est.history_["seconds"])
    else:
        train_seconds, _ = timed(lambda: est.fit(train_pairs))
    test_pairs = est._validate_pairs(test_pairs, fitting=False)
    n_single = min(n_single, test_pairs.n_pairs)
    out = {
        "train": {"problem": name, "seconds": train_seconds, "steps": est.n_iter_,
                  "batch_size": est.batch_size, "hidden": list(est.hidden_layer_sizes),
                  "inputs": est.inputs, "baseline": est.baseline,
                  "train_pairs": len(train_pairs) if isinstance(train_pairs, HistogramPairs)
                  else "fresh every step", "final_loss":
                  float(np.mean(est.history_["loss"][-50:]))},
        "inits": _init_rows(est, test_pairs, tolerances, name, n_single, progress,
                            n_batch=n_batch, batch_repeats=batch_repeats, chain=chain),
        "pot": (_pot_rows(est, test_pairs, tolerances, name, min(n_pot, n_single), progress)
                if pot else []),
    }
    cold = next(r for r in out["inits"] if r["init"] == "zeros" and r["tol"] == tolerances[0])
    out["prediction"] = [_prediction_row(est, test_pairs, name, n_single, cold["seconds"],
                                         tolerances[0])]
    return out


def run(quick: bool = False, *, seed: int = 0, problems=("mnist", "sphere"),
        progress: bool = True, model: MetaSinkhornTransport | None = None,
        device: str = "cpu") -> dict[str, Any]:
    """B1 and B2; returns the payload with tables.

    Training draws fresh pairs at every step (:func:`~skmetaot.datasets.mnist_pair_sampler`,
    :func:`~skmetaot.datasets.sphere_supply_demand_sampler`). ``model``: a fitted estimator
    (of the one problem in ``problems``) to evaluate instead of training one. ``device``: where
    the estimators it builds train and solve.
    """
    results, tables = {}, []
    if "mnist" in problems:
        est = model or mnist_estimator(quick, seed, verbose=int(progress)).set_params(
            device=device)
        train_pairs = None if model is not None else mnist_pair_sampler(
            est.batch_size, split="train", random_state=seed)
        test_pairs = make_mnist_pairs(128, split="test", random_state=seed + 1, dtype="float32")
        results["mnist"] = run_problem("MNIST", est, train_pairs, test_pairs,
                                       n_single=16 if quick else 128, progress=progress,
                                       n_pot=4 if quick else 24)
        ood = digits_ood_pairs(32 if quick else 100, random_state=seed).to(torch.float32)
        results["mnist_ood"] = {"inits": _init_rows(est, ood, (1e-2, 1e-3),
                                                    "digits 8x8 upscaled (OOD)",
                                                    16 if quick else 100, progress)}
    if "sphere" in problems:
        # Quick mode is a smoke test: 1,000 demand points and a loose tolerance.
        size = {"n_demand": 1000} if quick else {}
        test_pairs = make_sphere_supply_demand(128, random_state=seed + 10_000, dtype="float32",
                                               **size)
        # CPU budget: the cold sphere solve (eps=1e-3) takes thousands of iterations, so B2 uses
        # 16 held-out pairs, one run per pair and init for both tolerances, batches of 8 and no
        # POT rows (POT's dense numpy solve is slower still).
        est = model or sphere_estimator(quick, seed, verbose=int(progress)).set_params(
            device=device)
        train_pairs = None if model is not None else sphere_supply_demand_sampler(
            est.batch_size, random_state=seed, dtype="float32", **size)
        results["sphere"] = run_problem("sphere", est, train_pairs, test_pairs,
                                        tolerances=(5e-2,) if quick else (1e-2, 1e-3),
                                        n_single=2 if quick else 16, progress=progress,
                                        pot=False, n_batch=2 if quick else 8, batch_repeats=1,
                                        chain=True)
    train_rows = [r["train"] for r in results.values() if "train" in r]
    init_rows = [row for r in results.values() for row in r["inits"]]
    pred_rows = [row for r in results.values() for row in r.get("prediction", [])]
    pot_rows = [row for r in results.values() for row in r.get("pot", [])]
    tables = [
        "## Training", markdown_table(train_rows, ["problem", "seconds", "steps", "batch_size",
                                                   "hidden", "train_pairs", "final_loss"]),
        "## Time and iterations to tolerance (batch 1, median over held-out pairs)",
        markdown_table(init_rows, INIT_COLUMNS),
        "## Prediction alone", markdown_table(pred_rows, PRED_COLUMNS),
        "## POT sinkhorn_log, cold vs warm-started from the prediction",
        markdown_table(pot_rows, POT_COLUMNS),
    ]
    return {"benchmark": "B1/B2 meta (bench_meta_sinkhorn)", "seed": seed, "quick": quick,
            "machine": machine_info(torch.device(device)), "results": results,
            "table": "\n\n".join(tables),
            "notes": ["Seconds include computing the initialisation (meta: the network's "
                      "forward pass; gaussian: the Gaussian fit).",
                      "Errors are the L1 marginal error of eq. (7), both marginals.",
                      f"ot {ot.__version__}; POT runs in float64 on numpy."]}
