"""Figures people would rather look at than read (needs matplotlib: skmetaot[examples])."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "displacement_interpolation",
    "plot_color_transfer",
    "plot_convergence",
    "plot_interpolations",
    "plot_sphere_maps",
    "plot_transport_map",
    "xyz_to_lat_lon",
]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("skmetaot.plotting needs matplotlib, an optional dependency: "
                          "pip install 'skmetaot[examples]' (or pip install matplotlib)"
                          ) from exc
    return plt


def displacement_interpolation(plan: Any, x: Any, y: Any, t: float,
                               grid_shape: tuple[int, int]) -> np.ndarray:
    """McCann interpolation of a coupling between two images, rendered on their pixel grid.

    Each entry ``P_ij`` moves to ``(1 - t) x_i + t y_j`` and is deposited on the nearest pixel.

    Parameters
    ----------
    plan : array-like of shape (n, m)
    x, y : array-like of shape (n, 2), (m, 2)
        Pixel coordinates in [0, 1]^2 (as from :func:`skmetaot.measures.image_grid`).
    t : float
        Time in [0, 1].
    grid_shape : (H, W)

    Returns
    -------
    ndarray of shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot.measures import image_grid
    >>> grid = image_grid(2, 2).numpy()
    >>> float(displacement_interpolation(np.eye(4) / 4, grid, grid, 0.5, (2, 2)).sum())
    1.0
    """
    plan, x, y = (np.asarray(v, dtype=float) for v in (plan, x, y))
    rows, cols = np.nonzero(plan > plan.max() * 1e-6)
    points = (1 - t) * x[rows] + t * y[cols]
    height, width = grid_shape
    r = np.clip(np.rint(points[:, 0] * (height - 1)).astype(int), 0, height - 1)
    c = np.clip(np.rint(points[:, 1] * (width - 1)).astype(int), 0, width - 1)
    image = np.zeros(grid_shape)
    np.add.at(image, (r, c), plan[rows, cols])
    return image


def plot_interpolations(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str],
                        times: Sequence[float], path: str | None = None):
    """A grid of images: one row per method, one column per interpolation time.

    Parameters
    ----------
    rows : sequence of sequences of (H, W) arrays
    labels : sequence of str
        Row labels.
    times : sequence of float
        Column labels.
    path : str, optional
        Save the figure there.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> frames = [np.eye(4) * t for t in (0.0, 0.5, 1.0)]
    >>> fig = plot_interpolations([frames, frames], ["exact", "predicted"], [0.0, 0.5, 1.0])
    >>> len(fig.axes)
    6
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), len(times), figsize=(1.6 * len(times), 1.7 * len(rows)),
                             squeeze=False)
    for i, (images, label) in enumerate(zip(rows, labels, strict=True)):
        for j, (image, t) in enumerate(zip(images, times, strict=True)):
            axes[i, j].imshow(image, cmap="gray_r")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(f"t = {t:g}", fontsize=8)
        axes[i, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


def xyz_to_lat_lon(points: Any) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in degrees of points on the unit sphere.

    Parameters
    ----------
    points : array-like of shape (n, 3)

    Returns
    -------
    lat, lon : ndarray of shape (n,)

    Examples
    --------
    >>> lat, lon = xyz_to_lat_lon([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    >>> lat.round(1).tolist(), lon.round(1).tolist()
    ([90.0, 0.0], [0.0, 90.0])
    """
    p = np.asarray(points, dtype=float)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    return np.degrees(np.arcsin(np.clip(p[:, 2], -1, 1))), np.degrees(np.arctan2(p[:, 1], p[:, 0]))


def plot_sphere_maps(supply: Any, demand: Any, maps: Sequence[Any], weights: Any,
                     labels: Sequence[str], path: str | None = None):
    """Supply points with arrows to where a transport map sends them, one panel per map.

    Parameters
    ----------
    supply : array-like of shape (n, 3)
    demand : array-like of shape (m, 3)
        Drawn faintly as the background.
    maps : sequence of array-like of shape (n, 3)
        Image of each supply point (e.g. the barycentric map, renormalised to the sphere).
    weights : array-like of shape (n,)
        Supply masses; zero-mass points are not drawn.
    labels : sequence of str
    path : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> points = np.random.default_rng(0).normal(size=(20, 3))
    >>> moved = np.roll(points, 1, axis=0)
    >>> fig = plot_sphere_maps(points, points, [moved], np.ones(20), ["a map"])
    >>> fig.axes[0].get_title()
    'a map'
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(maps), figsize=(6 * len(maps), 3.4), squeeze=False)
    lat_d, lon_d = xyz_to_lat_lon(demand)
    lat_s, lon_s = xyz_to_lat_lon(supply)
    keep = np.asarray(weights) > 0
    for ax, mapped, label in zip(axes[0], maps, labels, strict=True):
        lat_t, lon_t = xyz_to_lat_lon(mapped)
        ax.scatter(lon_d, lat_d, s=0.3, c="0.75")
        ax.scatter(lon_s[keep], lat_s[keep], s=12, c="tab:red", zorder=3)
        ax.quiver(lon_s[keep], lat_s[keep], (lon_t - lon_s)[keep], (lat_t - lat_s)[keep],
                  angles="xy", scale_units="xy", scale=1, width=0.003, color="tab:blue")
        ax.set_xlim(-180, 180)
        ax.set_ylim(-90, 90)
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


def plot_transport_map(ax: Any, source: Any, mapped: Any, target: Any | None = None, *,
                       n_arrows: int = 200, title: str | None = None,
                       random_state: int = 0) -> Any:
    """Draw a 2-D transport map: target samples, pushed-forward samples and arrows x -> T(x).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    source : array-like of shape (n, 2)
        Source samples x.
    mapped : array-like of shape (n, 2)
        Their images T(x).
    target : array-like of shape (m, 2), optional
        Target samples, drawn underneath for comparison.
    n_arrows : int, default=200
        Arrows drawn (a random subset of the samples).
    title : str, optional
    random_state : int, default=0
        Which subset gets arrows.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 2))
    >>> ax = plot_transport_map(plt.figure().gca(), x, x + 1.0, n_arrows=10)
    """
    source, mapped = np.asarray(source), np.asarray(mapped)
    if target is not None:
        target = np.asarray(target)
        ax.scatter(target[:, 0], target[:, 1], s=2, c="tab:orange", alpha=0.3, label="target")
    ax.scatter(source[:, 0], source[:, 1], s=2, c="tab:blue", alpha=0.3, label="source")
    ax.scatter(mapped[:, 0], mapped[:, 1], s=2, c="tab:green", alpha=0.5, label="T(source)")
    pick = np.random.default_rng(random_state).choice(len(source), min(n_arrows, len(source)),
                                                      replace=False)
    delta = mapped[pick] - source[pick]
    ax.quiver(source[pick, 0], source[pick, 1], delta[:, 0], delta[:, 1], angles="xy",
              scale_units="xy", scale=1, width=0.002, alpha=0.6)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4, fontsize=7)
    return ax


def plot_color_transfer(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str],
                        row_labels: Sequence[str] | None = None, path: str | None = None):
    """Colour-transfer panels: one row per image pair, one column per image.

    Parameters
    ----------
    rows : sequence of sequences of (H, W, 3) arrays
        E.g. source, target, prediction, prediction + W2GN, W2GN from scratch; values are
        clipped to [0, 1] for display (a transport map may leave the cube slightly).
    titles : sequence of str
        Column titles.
    row_labels : sequence of str, optional
    path : str, optional
        Save the figure there.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((4, 5, 3))
    >>> fig = plot_color_transfer([[image, image]], ["source", "target"])
    >>> len(fig.axes)
    2
    """
    plt = _pyplot()
    n_cols = len(titles)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.4 * n_cols, 2.0 * len(rows)),
                             squeeze=False)
    for i, images in enumerate(rows):
        for j, (image, title) in enumerate(zip(images, titles, strict=True)):
            axes[i, j].imshow(np.clip(np.asarray(image, dtype=float), 0.0, 1.0))
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(title, fontsize=9)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=7)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


def plot_convergence(curves: dict[str, tuple[Any, Any]], *, tol: float | None = None,
                     ax: Any = None, title: str | None = None, path: str | None = None):
    """Convergence curves of solvers started from different places (cold vs warm).

    Each curve is drawn as its median over the problems with the interquartile range shaded,
    on log-log axes.

    Parameters
    ----------
    curves : dict of str to (iterations, errors)
        ``iterations`` of shape (K,) and ``errors`` of shape (K,) or (K, N) for N problems, as
        :func:`skmetaot.solvers.sinkhorn_convergence` returns them.
    tol : float, optional
        A target tolerance, drawn as a horizontal line.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
    path : str, optional
        Save the figure there.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> steps = np.array([1, 10, 100])
    >>> fig = plot_convergence({"zeros": (steps, [1.0, 0.1, 0.01]),
    ...                         "meta": (steps, [[0.1, 0.2], [1e-3, 2e-3], [1e-5, 1e-5]])},
    ...                        tol=1e-3)
    >>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
    ['zeros', 'meta']
    """
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    for label, (iterations, errors) in curves.items():
        iterations = np.asarray(iterations, dtype=float)
        errors = np.asarray(errors, dtype=float)
        if errors.ndim == 1:
            errors = errors[:, None]
        if errors.shape[0] != len(iterations):
            raise ValueError(f"curve {label!r}: {len(iterations)} iteration counts but "
                             f"{errors.shape[0]} rows of errors")
        line, = ax.plot(iterations, np.median(errors, axis=1), label=label)
        if errors.shape[1] > 1:
            low, high = np.percentile(errors, [25, 75], axis=1)
            ax.fill_between(iterations, low, high, color=line.get_color(), alpha=0.2)
    if tol is not None:
        ax.axhline(tol, color="grey", linestyle=":", linewidth=1, label=f"tol = {tol:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Sinkhorn iterations")
    ax.set_ylabel("marginal error (L1)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig
