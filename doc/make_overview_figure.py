"""Draw doc/_static/overview.png, the figure of the landing page (a few seconds on a CPU).

It shows what each estimator predicts, computed here without any training (an exact Sinkhorn
solve, the benchmark's exact map, a closed-form Gaussian map), so that the figure is cheap and
reproducible: ``python doc/make_overview_figure.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skmetaot import pairs_from_images, sinkhorn  # noqa: E402
from skmetaot.datasets import (  # noqa: E402
    GaussianPair,
    image_to_measure,
    load_color_images,
    load_mnist,
    load_w2_benchmark,
)
from skmetaot.plotting import displacement_interpolation, plot_transport_map  # noqa: E402

OUT = Path(__file__).resolve().parent / "_static" / "overview.png"


def _bare(ax, title=None):
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def main() -> None:
    """Draw the three panels and save the PNG."""
    fig = plt.figure(figsize=(11, 2.7), layout="constrained")
    left, middle, right = fig.subfigures(1, 3, width_ratios=[3.3, 1.9, 3.3], wspace=0.04)

    # MetaSinkhornTransport: an entropic coupling between two MNIST digits (eps = 1e-2).
    images, _ = load_mnist("test")
    pairs = pairs_from_images(images[[3]] / 255.0, images[[10]] / 255.0)
    plan = sinkhorn(pairs, epsilon=1e-2, tol=1e-4).plan()[0]
    grid = pairs.x.numpy()
    axes = left.subplots(1, 4)
    for ax, t in zip(axes, (0.0, 1 / 3, 2 / 3, 1.0), strict=True):
        ax.imshow(displacement_interpolation(plan, grid, grid, t, (28, 28)), cmap="gray_r")
        _bare(ax, f"t = {t:.2g}")
    left.suptitle("MetaSinkhornTransport\ndiscrete entropic OT (MNIST digits)", fontsize=9)

    # NeuralW2Transport: the exact W2 map of the 2-D benchmark pair (Korotin et al. 2021).
    bench = load_w2_benchmark(2)
    rng = np.random.default_rng(0)
    source = bench.sample_source(1500, rng)
    ax = middle.subplots()
    plot_transport_map(ax, source, bench.transport_map(source), bench.sample_target(1500, rng),
                       n_arrows=80)
    ax.legend(loc="lower right", markerscale=4, fontsize=6)
    _bare(ax)
    middle.suptitle("NeuralW2Transport\none continuous W2 map", fontsize=9)

    # MetaICNNTransport: colour transfer with the Gaussian map the hypernetwork starts from.
    test = load_color_images("test")
    src, tgt = test.images[0], test.images[5]
    xs, xt = image_to_measure(src), image_to_measure(tgt)
    gaussian = GaussianPair(xs.mean(0), np.cov(xs.T) + 1e-6 * np.eye(3), xt.mean(0),
                            np.cov(xt.T) + 1e-6 * np.eye(3), dtype="float64")
    recoloured = np.clip(gaussian.transport_map(xs.astype(np.float64)), 0, 1).reshape(src.shape)
    axes = right.subplots(1, 3)
    for ax, image, title in zip(axes, (src, recoloured, tgt),
                                ("source", "recoloured", "target palette"), strict=True):
        ax.imshow(image)
        _bare(ax, title)
    right.suptitle("MetaICNNTransport\nmany W2 maps (colour transfer)", fontsize=9)

    fig.savefig(OUT, dpi=100)
    print(f"saved {OUT} ({OUT.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
