"""
Predicted and converged couplings between point clouds never seen in training
=============================================================================

:class:`skmetaot.MetaSinkhornCloudTransport` is trained for a short CPU schedule on a stream of
fresh pairs of MNIST digits seen as weighted point clouds of 100-200 points
(:func:`skmetaot.datasets.mnist_cloud_sampler`, training digits). For two held-out pairs of test
digits, with new points and sizes (one of them twice as large as any training cloud), the
figure draws the coupling predicted in one forward pass (``predict_plan``) next to the coupling
Sinkhorn converges to (``refine`` to 1e-4, warm-started from the prediction), and counts the
iterations from zeros, from the Gaussian potential and from the prediction.

Each segment joins a source point (blue) to a target point (red), with an opacity proportional
to the mass the coupling moves between them; only the heaviest entries are drawn.

Run: ``python examples/plot_cloud_couplings.py`` (a few minutes on one CPU core; saves
``cloud_couplings.png``).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from skmetaot import MetaSinkhornCloudTransport  # noqa: E402
from skmetaot.datasets import make_mnist_clouds, mnist_cloud_sampler  # noqa: E402
from skmetaot.measures import concat_pairs  # noqa: E402

torch.set_num_threads(1)
est = MetaSinkhornCloudTransport(epsilon=3e-3, baseline="gaussian", width=32, n_layers=1,
                                 batch_size=8, max_iter=600, device="cpu", random_state=0,
                                 verbose=1)
est.fit(mnist_cloud_sampler(8, n_points=(100, 200), random_state=0))

# %%
# Two held-out pairs of test digits: one of the training sizes, one of 400 points per cloud.
small = make_mnist_clouds(1, split="test", n_points=(100, 200), random_state=3)
large = make_mnist_clouds(1, split="test", n_points=400, random_state=4)
test = concat_pairs([small, large]).to(torch.float64)
predicted = est.predict_plan(test)
converged = est.refine(test, tol=1e-4, max_iter=10000)
iterations = {init: [r.log["niter"] for r in est.refine(test, tol=1e-3, max_iter=10000,
                                                         init=init)]
              for init in ("zeros", "gaussian", "meta")}


def draw(ax, x, y, plan, title):
    """The heaviest entries of a coupling as segments, opacity proportional to mass."""
    plan = np.asarray(plan)
    rows, cols = np.unravel_index(np.argsort(plan, axis=None)[::-1][:600], plan.shape)
    mass = plan[rows, cols] / plan.max()
    segments = np.stack([x[rows][:, ::-1], y[cols][:, ::-1]], 1) * [1, -1]
    ax.add_collection(LineCollection(segments, colors=[(0.2, 0.2, 0.2, m) for m in mass],
                                     linewidths=0.8))
    ax.scatter(x[:, 1], -x[:, 0], s=6, color="tab:blue")
    ax.scatter(y[:, 1], -y[:, 0], s=6, color="tab:red")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


fig, axes = plt.subplots(2, 2, figsize=(8, 8))
for k in range(2):
    x, y = test.x[k].numpy(), test.y[k].numpy()
    sizes = f"n={len(x)}, m={len(y)}"
    draw(axes[k, 0], x, y, predicted[k], f"predicted (one forward pass), {sizes}")
    draw(axes[k, 1], x, y, converged[k].plan,
         "converged (1e-4); iterations to 1e-3 from\n"
         f"zeros {iterations['zeros'][k]}, Gaussian {iterations['gaussian'][k]}, "
         f"prediction {iterations['meta'][k]}")
fig.tight_layout()
fig.savefig("cloud_couplings.png", dpi=110)
