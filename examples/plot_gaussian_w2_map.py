"""
A neural W2 map between two Gaussians, against the exact map
============================================================

Between two Gaussians the W2 map is affine and known in closed form, so the error of a learned
map can be measured exactly. ``NeuralW2Transport`` (ICNN potential, regression amortization,
L-BFGS conjugate; Amos 2023) learns it from samples; the figure shows the learned map, the
per-point error ``|T_hat(x) - T(x)|`` and how the L2-UVP falls during training.

Run: ``python examples/plot_gaussian_w2_map.py`` (about a minute on 2 CPU cores; saves
``gaussian_w2_map.png``). ``--dim D`` trains in dimension D and plots the first two coordinates.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skmetaot import NeuralW2Transport  # noqa: E402
from skmetaot.datasets import make_gaussian_pair  # noqa: E402
from skmetaot.plotting import plot_transport_map  # noqa: E402

dim = int(sys.argv[sys.argv.index("--dim") + 1]) if "--dim" in sys.argv else 2
pair = make_gaussian_pair(dim, random_state=0)
source, target = pair.as_pair(50_000, random_state=1)

est = NeuralW2Transport(max_iter=1500, batch_size=512, random_state=0)
est.fit((source, target), validation=(pair.x_test, pair.Tx_test), validate_every=100)
mapped = est.transform(pair.x_test)
held_out = pair.as_pair(10_000, random_state=2)
# E|x|^2 + E|y|^2 + 2 V(f) bounds W2^2 from below and is tight at the optimum.
bound = sum(np.mean((s ** 2).sum(1)) for s in held_out) + 2 * est.score(held_out)
print(f"D={dim}: L2-UVP of the learned map {pair.uvp(mapped):.3f}% "
      f"(identity {pair.uvp(pair.x_test):.1f}%); W2^2 exact {pair.w2_squared:.4f}, "
      f"dual bound {bound:.4f}")

fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
plot_transport_map(axes[0], pair.x_test[:2000, :2], mapped[:2000, :2], target[:2000, :2],
                   title="learned map (first two coordinates)")
error = np.linalg.norm(mapped - pair.Tx_test, axis=1)
points = axes[1].scatter(pair.x_test[:, 0], pair.x_test[:, 1], c=error, s=3, cmap="viridis")
fig.colorbar(points, ax=axes[1], label="|T_hat(x) - T(x)|")
axes[1].set_title("error to the exact map")
axes[1].set_aspect("equal")
history = est.history_
axes[2].semilogy(history["val_step"], history["val_uvp"], marker="o")
axes[2].set_xlabel("training step")
axes[2].set_ylabel("L2-UVP (%)")
axes[2].set_title("UVP during training")
fig.tight_layout()
fig.savefig("gaussian_w2_map.png", dpi=110)
print("saved gaussian_w2_map.png")
