"""B4: Meta ICNN colour transfer (Table 2 of the Meta OT paper) and the Gaussian family.

Colour transfer: a :class:`~skmetaot.MetaICNNTransport` is trained on ordered pairs of the 35
training images; on held-out pairs of the 10 test images (whole images held out), each pair
is refined alone with W2GN, once from the prediction and once from the identity, and the dual
objective with an exact conjugate is recorded along both runs. As in the paper, each pair's
dual values are min-max normalised over both runs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from harness.common import machine_info, markdown_table, timed
from skmetaot import MetaICNNTransport
from skmetaot.amortize.w2gn import refine_w2gn
from skmetaot.datasets import load_color_images, make_gaussian_pair_samples, make_gaussian_pairs
from skmetaot.estimators._standardise import pair_standardisations
from skmetaot.measures.continuous import as_measure_collection

#: Pixels of each image on which the dual is evaluated (a fixed subsample).
EVAL_PIXELS = 4096
QUICK = {"steps": 60, "n_test_pairs": 2, "refine_steps": (20, 40), "gaussian_dims": (2,),
         "gaussian_steps": 60, "gaussian_train_pairs": 16, "gaussian_test_pairs": 4,
         "gaussian_refine": 40}
PAIR_COLUMNS = ["pair", "Gaussian map", "prediction", "meta + W2GN 1k", "meta + W2GN 2k", "W2GN 1k",
                "W2GN 2k", "prediction s", "W2GN 1k s", "W2GN 2k s"]
SUMMARY_COLUMNS = ["method", "median", "mean", "std", "median s", "speed-up vs W2GN 1k"]
GAUSS_COLUMNS = ["d", "pairs (train/test)", "train s", "prediction UVP % (median)",
                 "prediction UVP % (max)", "refined UVP % (median)", "refined UVP % (max)",
                 "refine steps", "identity UVP % (median)"]


def test_pairs(n_pairs: int, seed: int) -> list[tuple[int, int]]:
    """A fixed sample of ordered pairs (i, j), i != j, of the 10 test images."""
    n = len(load_color_images("test", as_float=False).images)
    every = [(i, j) for i in range(n) for j in range(n) if i != j]
    pick = np.random.default_rng(seed).choice(len(every), size=min(n_pairs, len(every)),
                                              replace=False)
    return [every[k] for k in sorted(pick)]


def _eval_points(image: np.ndarray, seed: int) -> np.ndarray:
    pixels = image.reshape(-1, image.shape[-1])
    keep = np.random.default_rng(seed).permutation(len(pixels))[:EVAL_PIXELS]
    return pixels[keep]


def _curve(est: MetaICNNTransport, pair: tuple, checkpoints: tuple[int, ...],
           evaluate: Any, meta: bool) -> tuple[dict[int, float], dict]:
    """Refine one pair alone from the prediction (or the identity); dual at the checkpoints."""
    collection = as_measure_collection([pair])
    ids = np.array([0])
    baseline = est._baselines(collection, ids) if meta else None
    start = (est._predict_params(collection)[0] if meta
             else est.hypernetwork_.base.detach().clone())
    snapshots: dict[int, torch.Tensor] = {0: start.clone()}
    seconds: dict[int, float] = {0: 0.0}
    clock = {"start": time.perf_counter()}

    def callback(step: int, params: torch.Tensor) -> None:
        if step in checkpoints:
            seconds[step] = time.perf_counter() - clock["start"]
            snapshots[step] = params[0].clone()

    refine_w2gn(est.icnn_, start[None], lambda: est._sample(collection, ids, est._generator),
                max(checkpoints), learning_rate=est.refine_learning_rate,
                cycle_weight=est.cycle_weight, baseline=baseline, callback=callback)
    return {step: evaluate(p, baseline) for step, p in snapshots.items()}, seconds


def checkpoints_of(refine_steps: tuple[int, int]) -> tuple[int, ...]:
    """Steps at which the dual is recorded: 0, the two reported lengths and a few between."""
    short, long = refine_steps
    return tuple(sorted({0, short, long, long // 8, long // 4, (3 * long) // 4}))


def color_transfer(steps: int = 3000, n_test_pairs: int = 12,
                   refine_steps: tuple[int, int] = (1000, 2000), seed: int = 0,
                   device: str = "cpu", encoder: str = "auto",
                   verbose: int = 1) -> dict[str, Any]:
    """Train on the training images, measure on held-out test pairs (see the module doc)."""
    train_images = load_color_images("train").images
    test = load_color_images("test")
    train = [(a, b) for i, a in enumerate(train_images) for j, b in enumerate(train_images)
             if i != j]
    est = MetaICNNTransport(max_iter=steps, encoder=encoder, device=device, random_state=seed,
                            verbose=verbose)
    train_seconds, _ = timed(lambda: est.fit(train))
    one_k, two_k = refine_steps
    checkpoints = checkpoints_of(refine_steps)
    rows = []
    for i, j in test_pairs(n_test_pairs, seed):
        pair = (test.images[i], test.images[j])
        x_eval = _eval_points(pair[0], seed)
        y_eval = _eval_points(pair[1], seed + 1)

        # The estimator standardises each pair: potentials act in its standardised units.
        standard = pair_standardisations(as_measure_collection([pair]), np.array([0]))[0]

        def evaluate(params: torch.Tensor, baseline: Any, x_eval=x_eval, y_eval=y_eval,
                     standard=standard) -> float:
            return est._potential(params, baseline and baseline[0], standard).dual_value(
                x_eval, y_eval)

        est.predict_potentials([pair])  # warm-up, so the timing below is the steady state
        predict_seconds, _ = timed(lambda pair=pair: est.predict_potentials([pair]))
        collection = as_measure_collection([pair])
        gaussian = (evaluate(est.hypernetwork_.base.detach(),
                             est._baselines(collection, np.array([0])))
                    if est.baseline == "gaussian" else None)
        meta, _ = _curve(est, pair, checkpoints, evaluate, meta=True)
        scratch, scratch_seconds = _curve(est, pair, checkpoints, evaluate, meta=False)
        values = [*meta.values(), *scratch.values()]
        low, high = min(values), max(values)

        def norm(value: float, low=low, high=high) -> float:
            return (value - low) / (high - low) if high > low else 1.0

        rows.append({
            "pair": f"{test.names[i]} -> {test.names[j]}",
            "Gaussian map": norm(gaussian) if gaussian is not None else "",
            "prediction": norm(meta[0]), "meta + W2GN 1k": norm(meta[one_k]),
            "meta + W2GN 2k": norm(meta[two_k]), "W2GN 1k": norm(scratch[one_k]),
            "W2GN 2k": norm(scratch[two_k]), "prediction s": predict_seconds,
            "W2GN 1k s": scratch_seconds[one_k], "W2GN 2k s": scratch_seconds[two_k],
            "meta curve": {str(k): norm(v) for k, v in meta.items()},
            "W2GN curve": {str(k): norm(v) for k, v in scratch.items()},
            "raw duals": {"meta": meta, "identity": scratch}})
    summary = []
    base = float(np.median([r["W2GN 1k s"] for r in rows]))
    methods = (("Gaussian map", None),) if rows and rows[0]["Gaussian map"] != "" else ()
    for method, time_key in (*methods, ("prediction", "prediction s"), ("meta + W2GN 1k", None),
                             ("meta + W2GN 2k", None), ("W2GN 1k", "W2GN 1k s"),
                             ("W2GN 2k", "W2GN 2k s")):
        values = np.array([r[method] for r in rows])
        seconds = float(np.median([r[time_key] for r in rows])) if time_key else None
        summary.append({"method": method, "median": float(np.median(values)),
                        "mean": float(values.mean()), "std": float(values.std()),
                        "median s": seconds if seconds is not None else "",
                        "speed-up vs W2GN 1k": base / seconds if seconds else ""})
    return {"train_seconds": train_seconds, "train_pairs": len(train), "rows": rows,
            "summary": summary, "refine_steps": (one_k, two_k),
            "estimator": est.get_params(), "encoder": est.encoder_}


def gaussian_family(dims: tuple[int, ...] = (2, 3), steps: int = 3000, n_train: int = 256,
                    n_test: int = 16, refine_steps: int = 1000, seed: int = 0,
                    device: str = "cpu", verbose: int = 1) -> list[dict[str, Any]]:
    """Train on random Gaussian pairs; UVP of prediction and refinement on held-out pairs."""
    rows = []
    for dim in dims:
        pairs = make_gaussian_pairs(n_train + n_test, dim, random_state=seed)
        samples = make_gaussian_pair_samples(pairs, 1024, random_state=seed + 1)
        est = MetaICNNTransport(max_iter=steps, device=device, random_state=seed,
                                verbose=verbose)
        train_seconds, _ = timed(lambda est=est, samples=samples: est.fit(samples[:n_train]))
        test, test_samples = pairs[n_train:], samples[n_train:]
        predicted = est.predict_potentials(test_samples)
        refined = est.refine(test_samples, max_iter=refine_steps)
        pred = [p.uvp(pot.transform(p.x_test)) for p, pot in zip(test, predicted, strict=True)]
        ref = [p.uvp(pot.transform(p.x_test)) for p, pot in zip(test, refined, strict=True)]
        rows.append({"d": dim, "pairs (train/test)": f"{n_train}/{n_test}",
                     "train s": train_seconds, "prediction UVP % (median)": float(np.median(pred)),
                     "prediction UVP % (max)": float(np.max(pred)),
                     "refined UVP % (median)": float(np.median(ref)),
                     "refined UVP % (max)": float(np.max(ref)), "refine steps": refine_steps,
                     "identity UVP % (median)": float(np.median([p.uvp(p.x_test)
                                                                 for p in test]))})
    return rows


def run(steps: int = 3000, n_test_pairs: int = 12, refine_steps: tuple[int, int] = (1000, 2000),
        gaussian_dims: tuple[int, ...] = (2, 3), gaussian_steps: int = 3000,
        gaussian_train_pairs: int = 256, gaussian_test_pairs: int = 16,
        gaussian_refine: int = 1000, seed: int = 0, device: str = "cpu",
        encoder: str = "auto") -> dict[str, Any]:
    """The whole of B4; returns the payload written to the results files."""
    color = color_transfer(steps, n_test_pairs, refine_steps, seed, device, encoder)
    gauss = gaussian_family(gaussian_dims, gaussian_steps, gaussian_train_pairs,
                            gaussian_test_pairs, gaussian_refine, seed, device)
    one_k, two_k = color["refine_steps"]
    tables = [
        f"## Colour transfer: held-out test pairs ({color['encoder']} encoder, trained "
        f"{steps} steps on {color['train_pairs']} ordered pairs of the 35 training images in "
        f"{color['train_seconds']:.0f} s)",
        "Normalised dual (exact conjugate; min-max per pair over both W2GN runs; 1 is best; "
        "'Gaussian map' is the closed-form map between the two pixel Gaussians, the untrained "
        "baseline the prediction corrects). "
        f"'1k'/'2k' are {one_k}/{two_k} W2GN steps.",
        markdown_table(color["summary"], SUMMARY_COLUMNS),
        "### Per pair",
        markdown_table(color["rows"], PAIR_COLUMNS),
        "## Gaussian family (random means and covariances): UVP against the exact maps",
        markdown_table(gauss, GAUSS_COLUMNS),
    ]
    return {"benchmark": "B4 Meta ICNN colour transfer (bench_color_transfer)", "seed": seed,
            "machine": machine_info(torch.device(device)),
            "schedule": {"steps": steps, "batch_size": 8, "n_samples": 1024,
                         "refine_steps": list(refine_steps),
                         "checkpoints": list(checkpoints_of(refine_steps)),
                         "gaussian_steps": gaussian_steps},
            "color": color, "gaussian": gauss, "table": "\n\n".join(tables),
            "notes": ["Paper (Table 2, GPU): prediction 0.90 in 3.5e-3 s; meta + W2GN 1k 1.0; "
                      "W2GN 1k 0.96 (0.90 s), 2k 0.99 (1.81 s). The paper's test pairs reused "
                      "training images in other pairings; ours hold whole images out.",
                      f"Times: one pair at a time on {device}; the prediction time includes "
                      "turning the images into measures and encoding them."]}


def run_benchmark(quick: bool = False, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """What ``skmetaot bench color_transfer`` runs: the payloads by result-file name.

    The runner every benchmark of the command line has (same signature): ``quick`` is the
    smoke-test size.
    """
    payload = run(**(QUICK if quick else {}), device=device)
    return {"bench_color_transfer" + ("_quick" if quick else ""): payload}
