"""
Cold and warm Sinkhorn: convergence from zeros, the Gaussian start and a Meta OT prediction
===========================================================================================

A Meta OT model is trained on pairs of MNIST test images 0-7999 (a short CPU schedule). For
unseen pairs (images 8000-9999), Sinkhorn starts from zeros, from the Gaussian-map potential
(Thornton and Cuturi, 2022) and from the model's prediction;
:func:`skmetaot.solvers.sinkhorn_convergence` records the marginal error along each solve and
:func:`skmetaot.plotting.plot_convergence` draws the median with the interquartile range. The
right panel warm-starts POT's own ``sinkhorn_log`` from the same prediction, through
:func:`skmetaot.pot.to_warmstart`, and counts its iterations to 1e-3.

Run: ``python examples/plot_sinkhorn_warm_start.py`` (under a minute on 2 CPU cores;
saves ``sinkhorn_warm_start.png``).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ot  # noqa: E402

from skmetaot import MetaSinkhornTransport  # noqa: E402
from skmetaot.datasets import make_mnist_pairs  # noqa: E402
from skmetaot.measures import image_grid  # noqa: E402
from skmetaot.plotting import plot_convergence  # noqa: E402
from skmetaot.pot import to_warmstart  # noqa: E402
from skmetaot.solvers import sinkhorn_convergence  # noqa: E402

train = make_mnist_pairs(4096, split="train", random_state=0, dtype="float32")
test = make_mnist_pairs(32, split="test", random_state=1, dtype="float64")
est = MetaSinkhornTransport(hidden_layer_sizes=(512, 512), max_iter=1000, batch_size=64,
                            baseline="gaussian", device="cpu", random_state=0,
                            verbose=1).fit(train)

# %%
# Convergence of our batched solver from the three starts (float64, all 32 pairs at once).
f_meta, _ = est.predict_potentials(test)
checkpoints = [1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50, 70, 100, 150, 200, 300]
curves = {name: (checkpoints, sinkhorn_convergence(test, checkpoints, epsilon=est.epsilon,
                                                   init=init))
          for name, init in (("zeros", "zeros"), ("Gaussian", "gaussian"),
                             ("Meta OT prediction", f_meta))}

# %%
# POT's sinkhorn_log on the same problems, cold and warm-started from the prediction.
a, b = test.a.numpy(), test.b.numpy()
M = ot.dist(image_grid(28, 28).double().numpy())
f_meta, g_meta = est.predict_potentials(test)
cold, warm = [], []
for k in range(8):
    keep_a, keep_b = a[k] > 0, b[k] > 0  # POT's log-domain solver wants positive weights
    problem = (a[k][keep_a], b[k][keep_b], M[np.ix_(keep_a, keep_b)], est.epsilon)
    cold.append(ot.sinkhorn(*problem, method="sinkhorn_log", stopThr=1e-3, log=True,
                            numItermax=5000)[1]["niter"])
    start = to_warmstart(f_meta[k][keep_a], g_meta[k][keep_b], est.epsilon)
    warm.append(ot.sinkhorn(*problem, method="sinkhorn_log", stopThr=1e-3, log=True,
                            numItermax=5000, warmstart=start)[1]["niter"])

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8),
                                  gridspec_kw={"width_ratios": [1.6, 1]})
plot_convergence(curves, tol=1e-3, ax=left, title="skmetaot.sinkhorn, 32 unseen pairs")
# POT checks its error every 10 iterations, so its counts are multiples of 10: show means.
right.bar(["POT cold", "POT warm (Meta OT)"], [np.mean(cold), np.mean(warm)],
          color=["tab:blue", "tab:green"])
right.set_ylabel("mean iterations to 1e-3 (8 pairs)")
right.set_title("POT sinkhorn_log, warm-started with to_warmstart")
fig.tight_layout()
fig.savefig("sinkhorn_warm_start.png", dpi=120)
print(f"POT iterations to 1e-3, mean: cold {np.mean(cold):.1f}, "
      f"warm {np.mean(warm):.1f}; saved sinkhorn_warm_start.png")
