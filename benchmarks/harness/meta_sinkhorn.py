"""B1 and B2: Meta OT initialisation against zeros and Gaussian, on MNIST and on the sphere.

For each held-out pair and tolerance, the same solver (``MetaSinkhornTransport.refine_state``,
one pair at a time, batch 1; :func:`skmetaot.evaluation.compare_initialisations`) starts from
zeros, from the Gaussian potential, or from the network's prediction; seconds include
computing the initialisation (the network's forward pass for meta).
POT's ``sinkhorn_log`` is run cold and warm-started from our prediction with
:func:`skmetaot.pot.to_warmstart`, each for the fewest iterations meeting the same L1 tolerance.
"""

from __future__ import annotations

import functools
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
from skmetaot.datasets import (
    make_mnist_pairs,
    make_sphere_supply_demand,
    mnist_pair_sampler,
    sphere_supply_demand_sampler,
)
from skmetaot.estimators import MetaSinkhornTransport
from skmetaot.evaluation import (
    INIT_COLUMNS,
    PREDICTION_COLUMNS,
    compare_initialisations,
    prediction_summary,
)
from skmetaot.measures import HistogramPairs, as_pairs, pairs_from_images
from skmetaot.nn import GridUNet
from skmetaot.solvers.entropic import pair_geometry

POT_COLUMNS = ["problem", "tol", "POT iters cold", "POT iters warm (meta)", "iter ratio",
               "POT s cold", "POT s warm", "met tol"]


def _pot_rows(est, pairs, tolerances, name, n_single, progress) -> list[dict[str, Any]]:
    cost = pair_geometry(pairs, [0], epsilon=est.epsilon, cost=est.cost,
                         cost_matrix=None)[0].cost_matrix().cpu().numpy().astype(np.float64)

    def cases(tol):
        pair_iter = range(n_single)
        if progress:
            pair_iter = tqdm(pair_iter, desc=f"{name} POT tol={tol:g}", leave=False)
        for k in pair_iter:
            one = pairs[k]
            f, g = (np.asarray(torch.as_tensor(t)[0].cpu(), dtype=np.float64)
                    for t in est.predict_potentials(one))
            yield (one.a[0].cpu().numpy().astype(np.float64),
                   one.b[0].cpu().numpy().astype(np.float64), cost,
                   int(est.refine_state(one, tol, 100000, "zeros").n_iter[0]),
                   int(est.refine_state(one, tol, 100000, "meta").n_iter[0]), f, g)

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


#: The MNIST network before ``model="conv"`` (the peer comparison's, which OTT trains too).
MNIST_MLP = {"model": None, "hidden_layer_sizes": (512, 512, 512)}


def mnist_estimator(quick: bool, random_state: int = 0, verbose: int = 1):
    """The CPU-sized MNIST schedule of the benchmark and of the main job."""
    if quick:
        return MetaSinkhornTransport(hidden_layer_sizes=(512, 512), max_iter=400,
                                     batch_size=64, inputs="pooled", baseline="sinkhorn",
                                     device="cpu", random_state=random_state, verbose=verbose)
    # A U-Net over the image grid (skmetaot.nn.GridUNet) learns far more per second than a
    # 3 x 512 MLP (err1 0.040 after 151 training seconds; the MLP 0.047 after 2,300). With its
    # 2 x 2 cells as channels (patch=2) its steps cost 3.8x less and it reaches the full U-Net's
    # 3 / 19 iterations to 1e-2 / 1e-3 after a one-hour run (3 / 16 after 57,000 cosine-schedule
    # steps on two threads in 2,790 s, bench_meta_final_mnist_57k.md); in time at batch to 1e-3
    # it beats the cold solve 1.21x where the full U-Net lost (0.775x):
    # bench_meta_final_mnist_patch2.md against bench_meta_final_mnist.md.
    return MetaSinkhornTransport(model=functools.partial(GridUNet, patch=2), max_iter=3000,
                                 batch_size=128, unroll_steps=3,
                                 inputs="pooled", baseline="sinkhorn", device="cpu",
                                 random_state=random_state, verbose=verbose)


def sphere_estimator(quick: bool, random_state: int = 0, verbose: int = 1):
    """The CPU-sized sphere schedule of the benchmark (the curve run trains it for longer)."""
    return MetaSinkhornTransport(
        epsilon=1e-3, cost="spherical", hidden_layer_sizes=(512, 512),
        max_iter=300 if quick else 1500, batch_size=64, unroll_steps=0, inputs="pooled",
        baseline="sinkhorn", device="cpu", random_state=random_state, verbose=verbose,
        # 1,000 of the 10,000 demand points per pair in each step's dual: 2.1x cheaper steps
        # that learn as much per step (err1 0.467 against 0.458 after 750 steps).
        target_sample_size=1000)


def run_problem(name: str, est: MetaSinkhornTransport, train_pairs, test_pairs, *,
                tolerances=(1e-2, 1e-3), n_single: int = 128, progress: bool = True,
                pot: bool = True, n_pot: int = 24, n_batch: int = 64, batch_repeats: int = 3,
                chain: bool = False) -> dict[str, Any]:
    """Train ``est`` on ``train_pairs`` and measure it on ``test_pairs``.

    ``n_batch`` pairs are also solved together (``batch_repeats`` times, median); ``chain``
    measures every tolerance along one run per pair (see
    :func:`skmetaot.evaluation.time_to_tolerances`).
    """
    if train_pairs is None:  # a model trained elsewhere (e.g. by a learning-curve run)
        train_seconds = float(est.history_["seconds"])
    else:
        train_seconds, _ = timed(lambda: est.fit(train_pairs))
    where = est.support_x_  # a fitted tensor: the estimator's dtype and device
    test_pairs = as_pairs(test_pairs).to(where.dtype, where.device)
    n_single = min(n_single, test_pairs.n_pairs)
    out = {
        "train": {"problem": name, "seconds": train_seconds, "steps": est.n_iter_,
                  "batch_size": est.batch_size, "hidden": list(est.hidden_layer_sizes),
                  "inputs": est.inputs, "baseline": est.baseline,
                  "train_pairs": len(train_pairs) if isinstance(train_pairs, HistogramPairs)
                  else "fresh every step", "final_loss":
                  float(np.mean(est.history_["loss"][-50:]))},
        "inits": compare_initialisations(est, test_pairs, tolerances, name=name,
                                         n_single=n_single, progress=progress, n_batch=n_batch,
                                         batch_repeats=batch_repeats, chain=chain),
        "pot": (_pot_rows(est, test_pairs, tolerances, name, min(n_pot, n_single), progress)
                if pot else []),
    }
    cold = next(r for r in out["inits"] if r["init"] == "zeros" and r["tol"] == tolerances[0])
    out["prediction"] = [prediction_summary(est, test_pairs, cold_seconds=cold["seconds"],
                                            cold_tol=tolerances[0], name=name,
                                            n_single=n_single)]
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
        results["mnist_ood"] = {"inits": compare_initialisations(
            est, ood, (1e-2, 1e-3), name="digits 8x8 upscaled (OOD)",
            n_single=16 if quick else 100, progress=progress)}
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
        "## Prediction alone", markdown_table(pred_rows, PREDICTION_COLUMNS),
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


def run_benchmark(quick: bool = False, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """What ``skmetaot bench meta_sinkhorn`` runs: the payloads by result-file name.

    The runner every benchmark of the command line has (same signature): ``quick`` is the
    smoke-test size.
    """
    return {"bench_meta_sinkhorn" + ("_quick" if quick else ""): run(quick, device=device)}
