"""
MNIST interpolations: converged Sinkhorn vs the Meta OT prediction
==================================================================

The paper's Figure 2. A Meta OT model is trained on pairs of MNIST test images 0-7999 (a short
CPU schedule), then predicts the entropic coupling of unseen pairs (images 8000-9999) in one
forward pass. Each row interpolates between two digits with McCann's displacement interpolation
of a coupling: from converged Sinkhorn (top) and from the prediction alone (bottom).

Run: ``python examples/plot_mnist_interpolation.py`` (saves ``mnist_interpolation.png``).
"""

import numpy as np

from skmetaot import MetaSinkhornTransport
from skmetaot.datasets import make_mnist_pairs
from skmetaot.plotting import displacement_interpolation, plot_interpolations

train = make_mnist_pairs(8192, split="train", random_state=0, dtype="float32")
test = make_mnist_pairs(3, split="test", random_state=3, dtype="float32")

est = MetaSinkhornTransport(hidden_layer_sizes=(512, 512), max_iter=1000, batch_size=64,
                            device="cpu", random_state=0, verbose=1).fit(train)

predicted = est.predict_plan(test)
converged = [r.plan for r in est.refine(test, tol=1e-6, init="meta")]
grid = test.x.numpy()
times = np.linspace(0, 1, 5)
rows, labels = [], []
for k in range(len(test)):
    for name, plan in (("Sinkhorn", converged[k]), ("Meta OT", predicted[k])):
        rows.append([displacement_interpolation(plan, grid, grid, t, (28, 28)) for t in times])
        labels.append(f"pair {k}: {name}")
plot_interpolations(rows, labels, times, path="mnist_interpolation.png")
print("saved mnist_interpolation.png")
