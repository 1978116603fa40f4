"""
Domain adaptation in a scikit-learn pipeline: MNIST to scikit-learn's digits
============================================================================

A classifier trained on MNIST digits (the source domain) is applied to scikit-learn's 8 x 8
digits, upscaled to MNIST's 28 x 28 framing (the target domain: other writers, other size
normalisation, thicker and blurrier strokes). Its accuracy drops from about 95% to about 65%.

Both domains share one feature space, fitted on the labelled source alone (the hidden layer of
a small network trained on MNIST, reduced to 9 dimensions by a linear discriminant analysis).
``NeuralW2Transport`` learns the W2 (Brenier) map from unlabelled target features to source
features; frozen with :class:`sklearn.frozen.FrozenEstimator`, it becomes the first step of a
pipeline whose second step is the unchanged source classifier, and that pipeline classifies
new target digits the map never saw. POT's ``LinearTransport`` and ``SinkhornTransport`` go in
the same pipeline for comparison. The figure shows sample digits of both domains and the first
two features of the target before and after the map, over the source.

Run: ``python examples/plot_domain_adaptation.py`` (under a minute on 2 CPU cores; saves
``domain_adaptation.png``). Benchmark B5 (``benchmarks/bench_domain_adaptation.py``) repeats
this over 5 random splits.
"""

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ot  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from skmetaot import NeuralW2Transport  # noqa: E402
from skmetaot.datasets import load_digits_domains  # noqa: E402

# %%
# Two domains in one feature space; a classifier trained on the source only.
domains = load_digits_domains()  # features="mlp": 9 standardised components
X_source, y_source = domains.X_source, domains.y_source
classifier = LogisticRegression(max_iter=2000).fit(X_source, y_source)

# The target is split: the maps see the first half without labels; accuracy is measured on
# the second half, which no map has seen.
rng = np.random.default_rng(0)
order = rng.permutation(len(domains.X_target))
adapt, held_out = order[: len(order) // 2], order[len(order) // 2:]
X_adapt = domains.X_target[adapt]
X_eval, y_eval = domains.X_target[held_out], domains.y_target[held_out]
X_source_sample = X_source[rng.choice(len(X_source), 2000, replace=False)]

# %%
# The learned map, frozen, in front of the source classifier. It goes target -> source.
our_map = NeuralW2Transport(quadratic="full", max_iter=1000, learning_rate=1e-3,
                            batch_size=512, pretrain_iter=200, device="cpu", random_state=0)
start = time.perf_counter()
our_map.fit((X_adapt, X_source_sample))
seconds = {"ours NeuralW2Transport": time.perf_counter() - start}
adapted = Pipeline([("map", FrozenEstimator(our_map)), ("clf", classifier)])

# POT's transports fit on the same points and stand in the same pipeline.
pot_maps = {"POT LinearTransport": ot.da.LinearTransport(),
            "POT SinkhornTransport (reg_e=3)": ot.da.SinkhornTransport(reg_e=3.0)}
pipelines = {"no adaptation": classifier, "ours NeuralW2Transport": adapted}
for name, transport in pot_maps.items():
    start = time.perf_counter()
    transport.fit(Xs=X_adapt, Xt=X_source_sample)
    seconds[name] = time.perf_counter() - start
    pipelines[name] = Pipeline([("map", FrozenEstimator(transport)), ("clf", classifier)])

print(f"{'method':34s} {'target accuracy':>15s} {'fit s':>7s}")
for name, model in pipelines.items():
    print(f"{name:34s} {model.score(X_eval, y_eval):15.3f} {seconds.get(name, 0.0):7.2f}")

# %%
# Sample digits, and the first two features before and after the map (colour: true digit;
# faint: source points, bold: held-out target points).
fig = plt.figure(figsize=(14, 4.8))
grid = fig.add_gridspec(2, 3, width_ratios=[1.1, 1, 1])
for row, (images, title) in enumerate([(domains.source_images, "source: MNIST"),
                                       (domains.target_images[held_out],
                                        "target: scikit-learn digits, 28 x 28")]):
    axis = fig.add_subplot(grid[row, 0])
    axis.imshow(np.hstack(list(images[:8])), cmap="gray_r")
    axis.set_title(title, fontsize=10)
    axis.axis("off")
mapped = our_map.transform(X_eval)
shown = rng.choice(len(X_source), 3000, replace=False)
for column, (points, title) in enumerate([(X_eval, "target features (no adaptation)"),
                                          (mapped, "target features after our map")], start=1):
    axis = fig.add_subplot(grid[:, column])
    axis.scatter(X_source[shown, 0], X_source[shown, 1], s=3, c=y_source[shown], cmap="tab10",
                 vmin=-0.5, vmax=9.5, alpha=0.12)
    scatter = axis.scatter(points[:, 0], points[:, 1], s=9, c=y_eval, cmap="tab10",
                           vmin=-0.5, vmax=9.5, edgecolors="k", linewidths=0.2)
    axis.set_title(f"{title}: accuracy {classifier.score(points, y_eval):.2f}", fontsize=10)
    axis.set_xlabel("feature 1 (faint: source points)")
    axis.set_ylabel("feature 2")
fig.colorbar(scatter, ax=axis, ticks=range(10), label="digit")
fig.tight_layout()
fig.savefig("domain_adaptation.png", dpi=110)
print("saved domain_adaptation.png")
