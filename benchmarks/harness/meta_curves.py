"""Learning curves of Meta OT, measured as the reference measures them.

At checkpoints of training (steps, pairs seen, seconds) the model is evaluated on held-out
pairs: the L1 marginal error left after one full Sinkhorn update from the prediction, computed
as the Meta OT reference computes the quantity its paper plots against training steps (``err``:
:func:`skmetaot.amortize.error_after_update`, the b-marginal error of ``(f1, g1)``), next to our
earlier ``err1`` (eq. (7) half an update later, so lower), and the iterations that
Sinkhorn needs from the prediction to reach each tolerance. Training draws fresh pairs at every
step (the reference's regime) with a constant learning rate, so that the model at a checkpoint
is the model of a shorter run. The state is saved after every checkpoint, so an interrupted
run resumes where it stopped.
"""

from __future__ import annotations

import functools
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.meta_sinkhorn import MNIST_MLP, mnist_estimator, sphere_estimator
from skmetaot.amortize import error_after_update, unrolled_marginal_error
from skmetaot.datasets import (
    make_mnist_pairs,
    make_sphere_supply_demand,
    mnist_pair_sampler,
    sphere_supply_demand_sampler,
)
from skmetaot.estimators import MetaSinkhornTransport
from skmetaot.evaluation import time_to_tolerances
from skmetaot.measures import as_pairs
from skmetaot.nn import GridUNet
from skmetaot.solvers.entropic import pair_geometry, solve_pairs

#: The reference's error after one Sinkhorn update (mean of 10 seeds, ranges read from the Meta
#: OT paper's figures): (training steps of 128 pairs, low, high).
REFERENCE_CURVES = {
    "sphere": [(1500, 0.53, 0.65), (10000, 0.29, 0.33), (50000, 0.22, 0.25)],
    "mnist": [(3000, 0.035, 0.042), (50000, 0.018, 0.026)],
}


#: The networks ``--curve --networks`` compares (estimator overrides by label).
NETWORKS = {"mlp": MNIST_MLP, "conv": {"model": "conv"},
            # Half the channels: 2.6x cheaper forward and backward passes (1 thread, batch 128).
            "conv8": {"model": functools.partial(GridUNet, width=8)},
            # The U-Net with the marginal error after 10 updates in the loss instead of 3: the
            # loss then weighs the slowly converging directions that decide the 1e-3 tail.
            "conv_unroll10": {"model": "conv", "unroll_steps": 10},
            # Space to depth: 2 x 2 cells as channels, every convolution on the 14 x 14 grid
            # (3.8x cheaper forward and backward passes), full-resolution output.
            "conv_patch2": {"model": functools.partial(GridUNet, patch=2)},
            # 4 x 4 cells as channels: convolutions on 7 x 7, 3 x 3 and 1 x 1 grids; a forward
            # pass costs about 0.05 ms per pair at batch 128, what a 2x time gain to 1e-3 allows.
            "conv_patch4": {"model": functools.partial(GridUNet, patch=4)},
            # The benchmark's network at 2 and 4 times the reference's learning rate.
            "conv_patch2_lr2e-3": {"model": functools.partial(GridUNet, patch=2),
                                   "learning_rate": 2e-3},
            "conv_patch2_lr4e-3": {"model": functools.partial(GridUNet, patch=2),
                                   "learning_rate": 4e-3}}


def problem(name: str, *, quick: bool = False, seed: int = 0, **overrides: Any):
    """(estimator, endless stream of fresh training batches, held-out pairs) of a problem.

    The estimators are the benchmark defaults; ``overrides`` replaces any of their parameters
    (what the candidate comparisons vary).
    """
    if name == "mnist":
        est = mnist_estimator(False, seed, verbose=0)
    elif name == "sphere":
        est = sphere_estimator(False, seed, verbose=0)
    else:
        raise ValueError(f"unknown problem {name!r}")
    est.set_params(learning_rate_schedule="constant", **overrides)
    if name == "mnist":
        stream = mnist_pair_sampler(est.batch_size, split="train", random_state=seed)
        test = make_mnist_pairs(32 if quick else 128, split="test", random_state=seed + 1,
                                dtype="float32")
        return est, stream, test
    size = {"n_demand": 1000} if quick else {}
    stream = sphere_supply_demand_sampler(est.batch_size, random_state=seed, dtype="float32",
                                          **size)
    test = make_sphere_supply_demand(4 if quick else 16, random_state=seed + 10_000,
                                     dtype="float32", **size)
    return est, stream, test


def evaluate(est: MetaSinkhornTransport, pairs, tolerances=(1e-2,), *, init: str = "meta",
             max_iter: int = 100000, n_iter_pairs: int | None = None) -> dict[str, Any]:
    """Error after one update (mean, median) and median iterations to each tolerance.

    ``init="zeros"`` measures the cold start instead (the estimator need not be fitted);
    iterations are counted on the first ``n_iter_pairs`` pairs (default: all).
    """
    geometry = pair_geometry(pairs, [0], epsilon=est.epsilon, cost=est.cost,
                             cost_matrix=None)[0]
    f = (torch.as_tensor(est.predict_potentials(pairs)[0], device=pairs.a.device)
         if init == "meta" else torch.zeros_like(pairs.a))
    with torch.no_grad():
        as_reference = error_after_update(geometry, f, pairs.a, pairs.b)
        after_one = unrolled_marginal_error(geometry, f, pairs.a, pairs.b, 1)
    row: dict[str, Any] = {"err_mean": float(as_reference.mean()),
                           "err_median": float(as_reference.median()),
                           "err1_mean": float(after_one.mean()),
                           "err1_median": float(after_one.median())}
    some = slice(0, n_iter_pairs or pairs.n_pairs)
    for tol in tolerances:
        state = solve_pairs(pairs[some], epsilon=est.epsilon, cost=est.cost, init=f[some],
                            tol=tol, max_iter=max_iter)
        row[f"iters_{tol:g}"] = float(np.median(state.n_iter.cpu().numpy()))
    return row


def checkpoint_steps(first: int = 100, factor: float = 1.5) -> list[int]:
    """Roughly geometric checkpoints (100, 150, 250, 350, 500, ...), rounded to 50 steps."""
    steps, value = [], float(first)
    while value < 1e7:
        step = int(round(value / 50.0) * 50) or 50
        if not steps or step > steps[-1]:
            steps.append(step)
        value *= factor
    return steps


def run_curve(name: str, *, seconds: float, quick: bool = False, seed: int = 0,
              tolerances=(1e-2,), iters_every: int = 1, n_iter_pairs: int | None = None,
              state_path: str | os.PathLike | None
              = None, label: str = "default", log=print, **overrides: Any) -> dict[str, Any]:
    """Train one problem's model for ``seconds`` of training time, evaluating at checkpoints.

    Parameters
    ----------
    name : {"mnist", "sphere"}
    seconds : float
        Training seconds (the estimator's own clock, evaluation excluded) after which the run
        stops at the next checkpoint.
    tolerances : tuple of float
        Tolerances whose iteration counts are measured at checkpoints.
    iters_every : int
        Measure iterations at every ``iters_every``-th checkpoint only (the sphere's are costly);
        the error after one update is measured at every checkpoint.
    n_iter_pairs : int, optional
        Count iterations on this many of the held-out pairs (default: all).
    state_path : path, optional
        Pickle of (estimator, rows) saved after each checkpoint and resumed from when present.
    label : str
        Name of this configuration in the results.
    overrides
        Estimator parameters replacing the problem's defaults.

    Returns
    -------
    dict
        ``rows`` (one per checkpoint), ``zeros`` (the cold-start reference), ``params``.
    """
    est, stream, test = problem(name, quick=quick, seed=seed, **overrides)
    rows: list[dict[str, Any]] = []
    if state_path is not None and Path(state_path).exists():
        with open(state_path, "rb") as handle:
            est, rows = pickle.load(handle)
        log(f"[{name}/{label}] resumed at step {est.n_iter_}")
    zeros = evaluate(est, test, tolerances, init="zeros", n_iter_pairs=n_iter_pairs)
    log(f"[{name}/{label}] zeros: {zeros}")
    done = est.n_iter_ if hasattr(est, "model_") else 0
    for k, step in enumerate(checkpoint_steps()):
        if step <= done:
            continue
        # Fresh pairs: every chunk draws from the stream seeded by where it starts, so a
        # resumed run continues with new pairs, never the ones already seen.
        stream.random_state = seed * 1_000_003 + done
        est.partial_fit(iter(stream), n_steps=step - done)
        done = est.n_iter_
        started = time.perf_counter()
        measure = tolerances if k % iters_every == 0 else ()
        row = {"step": done, "pairs_seen": done * est.batch_size,
               "train_seconds": float(est.history_["seconds"]), **evaluate(est, test, measure,
                                                           n_iter_pairs=n_iter_pairs)}
        row["eval_seconds"] = time.perf_counter() - started
        rows.append(row)
        log(f"[{name}/{label}] {row}")
        if state_path is not None:
            with open(state_path, "wb") as handle:
                pickle.dump((est, rows), handle)
        if row["train_seconds"] >= seconds:
            break
    return {"problem": name, "label": label, "rows": rows, "zeros": zeros,
            "params": {k: v for k, v in est.get_params().items()
                       if isinstance(v, (int, float, str, tuple, type(None)))},
            "estimator": est}


def plot_curves(curves: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """One figure: error after one update against steps and against seconds, per problem.

    The reference's ranges are drawn as vertical bars at their steps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = sorted({c["problem"] for c in curves})
    fig, axes = plt.subplots(len(problems), 2, figsize=(11, 4 * len(problems)), squeeze=False)
    for row, name in enumerate(problems):
        by_steps, by_seconds = axes[row]
        for curve in (c for c in curves if c["problem"] == name):
            steps = [r["step"] for r in curve["rows"]]
            seconds = [r["train_seconds"] for r in curve["rows"]]
            # Rows saved before error_after_update existed carry err1 only (half an update later).
            key = "err_mean" if all("err_mean" in r for r in curve["rows"]) else "err1_mean"
            errors = [r[key] for r in curve["rows"]]
            by_steps.plot(steps, errors, "o-", ms=3, label=f"skmetaot ({curve['label']})")
            by_seconds.plot(seconds, errors, "o-", ms=3, label=f"skmetaot ({curve['label']})")
            zero = curve["zeros"].get("err_mean", curve["zeros"]["err1_mean"])
        by_steps.axhline(zero, color="grey", ls=":", label="zeros")
        by_seconds.axhline(zero, color="grey", ls=":", label="zeros")
        for step, low, high in REFERENCE_CURVES[name]:
            by_steps.errorbar([step], [(low + high) / 2], yerr=[[(high - low) / 2]],
                              fmt="s", color="black", capsize=4,
                              label="Meta OT reference (GPU)" if step ==
                              REFERENCE_CURVES[name][0][0] else None)
        by_steps.set(xscale="log", yscale="log", xlabel="training steps",
                     ylabel="L1 marginal error after one Sinkhorn update", title=name)
        if not any(np.isfinite(r["train_seconds"]) for c in curves for r in c["rows"]):
            by_seconds.set_visible(False)  # checkpoints without a training clock
            by_steps.legend(fontsize=8)
            continue
        by_seconds.set(xscale="log", yscale="log", xlabel="training seconds (this CPU)",
                       title=f"{name}: against training time")
        by_steps.legend(fontsize=8)
        by_seconds.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


CURVE_COLUMNS = ["problem", "label", "step", "pairs_seen", "train_seconds", "err_mean",
                 "err_median", "err1_mean", "iters_0.01", "iters_0.001"]


def run(problems=("mnist", "sphere"), *, seconds: float = 3600.0, quick: bool = False,
        seed: int = 0, state_dir: str | os.PathLike | None = None,
        figure: str | os.PathLike | None = None, configs: dict[str, dict] | None = None,
        log=print) -> dict[str, Any]:
    """Learning curves of each problem (one per configuration); payload with a table.

    ``configs`` maps a label to estimator overrides (default: the benchmark defaults alone).
    The fitted estimators are returned under ``"estimators"`` (label -> estimator) and, with a
    ``state_dir``, stay pickled there for the table benchmark to evaluate.
    """
    from harness.common import machine_info, markdown_table

    configs = configs or {"default": {}}
    curves, estimators = [], {}
    for name in problems:
        tolerances = (1e-2, 1e-3) if name == "mnist" else (1e-2,)
        for label, overrides in configs.items():
            path = None
            if state_dir is not None:
                Path(state_dir).mkdir(parents=True, exist_ok=True)
                path = Path(state_dir) / f"curve_{name}_{label}.pkl"
            curve = run_curve(name, seconds=seconds, quick=quick, seed=seed,
                              tolerances=tolerances, iters_every=1 if name == "mnist" else 3,
                              n_iter_pairs=None if name == "mnist" else 8,
                              state_path=path, label=label, log=log, **overrides)
            estimators[f"{name}/{label}"] = curve.pop("estimator")
            curves.append(curve)
    if figure is not None:
        plot_curves(curves, figure)
    rows = [{"problem": c["problem"], "label": c["label"], **r} for c in curves for r in c["rows"]]
    zeros = [{"problem": c["problem"], "label": "zeros (cold start)", **c["zeros"]}
             for c in curves]
    reference = [{"problem": name, "label": "Meta OT reference (GPU, paper)", "step": step,
                  "pairs_seen": step * 128, "err_mean": f"{low}-{high}"}
                 for name in problems for step, low, high in REFERENCE_CURVES[name]]
    table = "\n\n".join([
        "## Error after one Sinkhorn update, and iterations to tolerance, along training",
        markdown_table(rows, CURVE_COLUMNS),
        "## Cold start and the reference", markdown_table(zeros + reference, CURVE_COLUMNS)])
    return {"benchmark": "meta-training curves (bench_meta_sinkhorn --curve)", "seed": seed,
            "quick": quick, "machine": machine_info(), "curves": curves, "table": table,
            "estimators": estimators,
            "notes": ["err: L1 error of the b-marginal after one full Sinkhorn update (g, then "
                      "f) from the prediction, on held-out pairs, as the Meta OT reference "
                      "computes the error its paper plots (train_discrete.py, pred_error); "
                      "err1: eq. (7) after one more g-update (half an update later, so lower); "
                      "iterations: median to the tolerance.",
                      "Training: fresh pairs at every step, constant learning rate; "
                      "train_seconds is the estimator's training clock (evaluation excluded).",
                      "Reference: read from the Meta OT paper's figures (mean of 10 seeds, GPU, "
                      "batches of 128 pairs)."]}


FINAL_COLUMNS = ["problem", "tol", "init", "iters", "speed-up (iters)", "s/pair batched",
                 "speed-up (s)", "converged", "pairs"]


def final_table(est: MetaSinkhornTransport, pairs, name: str, tolerances=(1e-2, 1e-3), *,
                max_iter: int = 100000, inits=("zeros", "gaussian", "meta")
                ) -> list[dict[str, Any]]:
    """Iterations and time to each tolerance from zeros, Gaussian and the prediction, batched.

    All held-out pairs are solved together, each stopping on its own error (so its iteration
    count is the one a batch-1 solve gives); each tighter tolerance continues from the
    potentials that met the looser one, so iterations and seconds accumulate along one run.
    Seconds include the initialisation (the forward pass for ``meta``) and are per pair.
    """
    where = est.support_x_  # a fitted tensor: the estimator's dtype and device
    pairs = as_pairs(pairs).to(where.dtype, where.device)
    stats = {}
    for init in inits:
        legs = time_to_tolerances(est, pairs, tolerances, init, chain=True)
        for tol, (seconds, state) in zip(sorted(tolerances, reverse=True), legs, strict=True):
            stats[(init, tol)] = (float(np.median(state.n_iter.cpu().numpy())),
                                  seconds / pairs.n_pairs, int(state.converged.sum()))
    rows = []
    for tol in sorted(tolerances, reverse=True):
        zeros = stats[("zeros", tol)]
        for init in inits:
            it, sec, conv = stats[(init, tol)]
            rows.append({"problem": name, "tol": tol, "init": init, "iters": it,
                         "speed-up (iters)": zeros[0] / it, "s/pair batched": sec,
                         "speed-up (s)": zeros[1] / sec, "converged": conv,
                         "pairs": pairs.n_pairs})
    return rows


def train_budget(name: str, n_steps: int, *, seed: int = 0, quick: bool = False,
                 checkpoint_path: str | os.PathLike | None = None) -> MetaSinkhornTransport:
    """Train one problem's model for ``n_steps`` fresh-pair steps with a full cosine schedule.

    The learning-curve runs keep a constant rate, so that a checkpoint is the model of a shorter
    run; a user with a fixed budget decays the rate over the whole run instead (the cosine ends
    at 10% of the peak), which is the model the final tables measure. With
    ``checkpoint_path`` an interrupted run resumes where it stopped.
    """
    est, stream, _ = problem(name, quick=quick, seed=seed)
    est.set_params(learning_rate_schedule="cosine", max_iter=n_steps, verbose=1,
                   checkpoint_path=None if checkpoint_path is None else str(checkpoint_path))
    return est.fit(stream)


def cool_down(est: MetaSinkhornTransport, name: str, n_steps: int, *, seed: int = 0,
              quick: bool = False) -> MetaSinkhornTransport:
    """Finish a constant-rate curve run with ``n_steps`` at a decayed rate, on fresh pairs.

    A cosine schedule continued from the end of a long run starts near its floor (10% of the
    peak rate): the low-rate phase that removes the noise a constant rate leaves (on MNIST,
    300 such steps after 1,150 took the iterations to 1e-2 from 9.5 to 8).
    """
    _, stream, _ = problem(name, quick=quick, seed=seed)
    stream.random_state = seed * 1_000_003 + 999_999_937  # pairs unlike the run's
    est.set_params(learning_rate_schedule="cosine")
    return est.partial_fit(iter(stream), n_steps=n_steps)


def checkpoint_curve(name: str, paths, *, seed: int = 0,
                     quick: bool = False) -> tuple[list[dict], dict]:
    """The error after one update (``err`` and ``err1``) of saved training checkpoints.

    ``paths`` are copies of a run's ``checkpoint_path`` file taken while it trained (a
    ``--budget-steps`` run rewrites one file; copying it at each save keeps the curve of a
    cosine-schedule run, which the constant-rate ``--curve`` runs cannot give). Each is loaded
    into the problem's estimator and evaluated on the held-out pairs; the cold start's errors
    come second.
    """
    est, stream, test = problem(name, quick=quick, seed=seed)
    # One step builds the networks; each checkpoint's weights then replace them. The
    # checkpoint names the estimator's modules, as its own resume does.
    est.set_params(max_iter=1, verbose=0).fit(iter(stream))
    zeros = evaluate(est, test, (), init="zeros")
    rows = []
    for path in paths:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        for attribute, weights in payload["state"]["modules"].items():
            getattr(est, attribute).load_state_dict(weights)
        row = evaluate(est, test, ())
        rows.append({"problem": name, "label": "budget run checkpoint",
                     "step": int(payload["step"]), "pairs_seen": int(payload["step"]) *
                     est.batch_size, "checkpoint": str(path), **row})
    return sorted(rows, key=lambda r: r["step"]), zeros
