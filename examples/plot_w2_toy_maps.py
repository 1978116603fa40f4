"""
Neural W2 maps in 2-D: a Gaussian to eight Gaussians and to a checkerboard
==========================================================================

Makkuva et al. (2020), Figures 1 and 3. ``NeuralW2Transport`` learns the Brenier map from a
standard Gaussian (scaled to the targets' spread) to each target from samples alone. Each panel
draws the target samples, the pushed-forward source samples T(x) = grad f(x) and arrows
x -> T(x). Three settings of the same estimator are compared: Amos (2023) (regression +
L-BFGS), W2GN (cycle, no solver) and Makkuva et al. (objective, no solver), all with an ICNN.

Run: ``python examples/plot_w2_toy_maps.py`` (about 2 minutes on 2 CPU cores; saves
``w2_toy_maps.png``). ``--steps N`` changes the training length (default 1500).
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skmetaot import NeuralW2Transport  # noqa: E402
from skmetaot.amortize import TrainingDiverged  # noqa: E402
from skmetaot.datasets import sample_checkerboard, sample_eight_gaussians  # noqa: E402
from skmetaot.plotting import plot_transport_map  # noqa: E402

steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 1500
targets = {"eight Gaussians": sample_eight_gaussians(20_000, random_state=1),
           "checkerboard": sample_checkerboard(20_000, random_state=1)}
settings = {"regression + L-BFGS": dict(amortization="regression", conjugate="lbfgs"),
            "W2GN (cycle)": dict(amortization="cycle", conjugate=None),
            "Makkuva et al. (objective)": dict(amortization="objective", conjugate=None)}

rng = np.random.default_rng(0)
fig, axes = plt.subplots(len(targets), len(settings), figsize=(4 * len(settings), 8))
for row, (target_name, target) in enumerate(targets.items()):
    source = rng.normal(size=(20_000, 2)) * target.std(0)
    for col, (setting_name, setting) in enumerate(settings.items()):
        est = NeuralW2Transport(max_iter=steps, batch_size=512, hidden_layer_sizes=(64, 64, 64),
                                random_state=0, **setting)
        try:
            est.fit((source, target))
            status = ""
        except TrainingDiverged:
            status = " (diverged: last good state)"
        shown = source[:2000]
        plot_transport_map(axes[row, col], shown, est.transform(shown), target[:2000],
                           n_arrows=150, title=f"{target_name}: {setting_name}{status}")
        print(f"{target_name:16s} {setting_name:28s} dual on held-out samples "
              f"{est.score((rng.normal(size=(4000, 2)) * target.std(0), target[-4000:])):.4f}")
fig.tight_layout()
fig.savefig("w2_toy_maps.png", dpi=110)
print("saved w2_toy_maps.png")
