"""The command line's main job (``python -m skmetaot demo``), on the public API only.

Train Meta OT on pairs of MNIST digits, then solve unseen pairs with Sinkhorn from zeros, from
the Gaussian initialisation and from the prediction (:mod:`skmetaot.evaluation`), and save
their convergence curves.
"""

from __future__ import annotations

import time
from pathlib import Path

from skmetaot.datasets import make_mnist_pairs, mnist_pair_sampler
from skmetaot.estimators import MetaSinkhornTransport
from skmetaot.evaluation import (
    INIT_COLUMNS,
    PREDICTION_COLUMNS,
    compare_initialisations,
    markdown_table,
    prediction_summary,
)
from skmetaot.solvers import sinkhorn_convergence

#: Iterations at which the figure's convergence curves are measured.
CHECKPOINTS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50, 70, 100, 150, 200)


def demo_estimator(device: str = "cpu", quick: bool = False) -> MetaSinkhornTransport:
    """The main job's model: a short CPU schedule (about 40 s of training on 2 cores).

    2,000 steps of 64 fresh pairs: 1,000 gave 2.35x fewer iterations than zeros to 1e-2 on the
    held-out digits, 2,000 gave 2.67x (7.5 against 20). Longer does not pay: 6,000 steps (106
    s) gave 7 / 25.5 to 1e-2 / 1e-3 against 7.5 / 24.5. ``GridUNet(patch=2)`` for 2,500 steps of
    128 (120 s) gave 5 / 24 (4x to 1e-2), but its lone predictions cost more than the
    iterations they save on a CPU (0.58x in time at batch 1), so the demo keeps the MLP.
    """
    return MetaSinkhornTransport(hidden_layer_sizes=(256, 256) if quick else (512, 512),
                                 max_iter=300 if quick else 2000, batch_size=64,
                                 inputs="pooled", baseline="sinkhorn", unroll_steps=3,
                                 device=device, random_state=0, verbose=1)


def run_demo(device: str, *, quick: bool = False, steps: int | None = None,
             figure: str = "skmetaot_demo.png") -> None:
    """Train, compare the three starts on 32 unseen pairs, print the tables, save the figure."""
    print("skmetaot demo: train Meta OT on MNIST pairs (images 0-7999 of the bundled test set), "
          "then solve unseen pairs (images 8000-9999) from zeros, Gaussian and Meta OT "
          f"initialisations (eps=1e-2, L1 marginal error, device={device})", flush=True)
    test_pairs = make_mnist_pairs(32, split="test", random_state=1, dtype="float32")
    est = demo_estimator(device=device, quick=quick)
    if steps is not None:
        est.set_params(max_iter=steps)
    # Fresh pairs of the training images at every step, as the Meta OT reference trains.
    start = time.perf_counter()
    est.fit(mnist_pair_sampler(est.batch_size, split="train", random_state=0))
    print(f"trained {est.n_iter_} steps in {time.perf_counter() - start:.0f} s")
    inits = compare_initialisations(est, test_pairs, (1e-2, 1e-3), name="MNIST",
                                    n_single=16 if quick else 32, progress=True)
    cold = next(row for row in inits if row["init"] == "zeros" and row["tol"] == 1e-2)
    prediction = prediction_summary(est, test_pairs, cold_seconds=cold["seconds"],
                                    cold_tol=1e-2, name="MNIST", n_single=16 if quick else 32)
    print(markdown_table(inits, INIT_COLUMNS))
    print(markdown_table([prediction], PREDICTION_COLUMNS))

    predicted_f, _ = est.predict_potentials(test_pairs)
    curves = {name: (CHECKPOINTS, sinkhorn_convergence(
        test_pairs, CHECKPOINTS, epsilon=est.epsilon, init=init, device=device))
        for name, init in (("zeros", "zeros"), ("Gaussian", "gaussian"),
                           ("Meta OT prediction", predicted_f))}
    _save_figure(curves, figure)
    print("Full benchmarks: python benchmarks/bench_NAME.py in a source checkout "
          "(python -m skmetaot bench --help lists them)")


def _save_figure(curves: dict, path: str) -> None:
    try:
        from skmetaot.plotting import plot_convergence

        fig = plot_convergence(curves, tol=1e-3, title="32 unseen MNIST pairs (median, "
                               "quartiles)", path=path)
    except ImportError as error:
        print(f"no figure: {error}")
        return
    fig.clf()
    print(f"convergence curves saved to {Path(path).resolve()}")
