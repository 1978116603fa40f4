"""
Colour transfer on held-out images with a Meta ICNN (Figure 6 of the Meta OT paper)
===================================================================================

An image is a measure over its RGB pixels in [0, 1]^3, and the W2 map between the palettes of
two images recolours the first with the second's colours. ``MetaICNNTransport`` learns, across
pairs of the 35 training images, to predict the map of a new pair at once; W2GN then refines
it. The figure shows, for pairs of the 10 held-out test images: the source, the target, the
prediction, the prediction refined by W2GN and W2GN from scratch with the same step count.

Run: ``python examples/plot_color_transfer.py`` (about 5 minutes on 2 CPU cores; saves
``color_transfer.png``). ``--steps N`` sets the meta-training steps (default 2000).
"""

import sys
import time

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from skmetaot import MetaICNNTransport  # noqa: E402
from skmetaot.datasets import load_color_images  # noqa: E402
from skmetaot.plotting import plot_color_transfer  # noqa: E402

steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 2000
refine_steps = 500
train_images = load_color_images("train").images
test = load_color_images("test")
train_pairs = [(a, b) for i, a in enumerate(train_images) for j, b in enumerate(train_images)
               if i != j]
est = MetaICNNTransport(max_iter=steps, random_state=0, verbose=1).fit(train_pairs)

rows, labels = [], []
for i, j in [(0, 5), (3, 9), (7, 1)]:
    pair = (test.images[i], test.images[j])
    start = time.perf_counter()
    (predicted,) = est.transform([pair])
    seconds = time.perf_counter() - start
    (refined,) = est.refine([pair], max_iter=refine_steps)
    (scratch,) = est.refine([pair], max_iter=refine_steps, init="identity")
    shape = pair[0].shape
    rows.append([pair[0], pair[1], predicted,
                 refined.transform(pair[0].reshape(-1, 3)).reshape(shape),
                 scratch.transform(pair[0].reshape(-1, 3)).reshape(shape)])
    labels.append(f"{test.names[i]}\n-> {test.names[j]}")
    held_out = (pair[0].reshape(-1, 3), pair[1].reshape(-1, 3))
    duals = [p.dual_value(*held_out) for p in (est.predict_potentials([pair])[0], refined,
                                                scratch)]
    print(f"{labels[-1].replace(chr(10), ' ')}: prediction in {seconds * 1e3:.1f} ms; dual "
          f"(exact conjugate) prediction {duals[0]:.4f}, + W2GN {duals[1]:.4f}, "
          f"W2GN from scratch {duals[2]:.4f}")

plot_color_transfer(rows, ["source", "target", "Meta ICNN prediction",
                           f"+ W2GN {refine_steps}", f"W2GN {refine_steps} from scratch"],
                    labels, path="color_transfer.png")
print("saved color_transfer.png; dual values:", np.round(duals, 4))
