"""Two-dimensional toy measures for examples (the usual ones of the flow and neural-OT papers).

Both follow the toy generators of FFJORD (Grathwohl et al., ICLR 2019), which Makkuva et al.
(ICML 2020) and most later neural-OT papers reuse.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_moons

from skmetaot._validation import check_positive_int
from skmetaot.datasets._known_map import RandomStateLike, as_generator, check_count

#: FFJORD's eight Gaussians: centres at radius 4 and standard deviation 0.5, all divided by 1.414.
_FFJORD_RADIUS = 4.0 / 1.414
_FFJORD_SCALE = 0.5 / 1.414


def sample_checkerboard(n: int, random_state: RandomStateLike = None) -> np.ndarray:
    """Uniform samples on the black squares of a 4 x 4 checkerboard covering [-4, 4]^2.

    The board has squares of side 2; a point (x, y) is on a black square when
    ``floor(x / 2) + floor(y / 2)`` is even (8 squares of the 16, total area 32). This is the
    ``checkerboard`` toy measure of FFJORD.

    Parameters
    ----------
    n : int
    random_state : int, Generator, RandomState or None
        An int seeds :func:`numpy.random.default_rng`.

    Returns
    -------
    ndarray of shape (n, 2), dtype float64

    Examples
    --------
    >>> x = sample_checkerboard(1000, random_state=0)
    >>> x.shape, bool(np.all(np.abs(x) <= 4))
    ((1000, 2), True)
    """
    rng = as_generator(random_state)
    n = check_count(n)
    # A uniform column position u in [-2, 2); in unit squares, the black rows of column
    # floor(u) are those with the parity of that column, i.e. floor(u) % 2 or that minus 2.
    u = rng.uniform(-2.0, 2.0, size=n)
    v = rng.uniform(0.0, 1.0, size=n) - 2.0 * rng.integers(0, 2, size=n) + np.floor(u) % 2
    return 2.0 * np.stack([u, v], axis=1)


def sample_eight_gaussians(
    n: int,
    random_state: RandomStateLike = None,
    *,
    radius: float = _FFJORD_RADIUS,
    scale: float = _FFJORD_SCALE,
) -> np.ndarray:
    """Samples of an equal-weight mixture of 8 isotropic Gaussians with centres on a circle.

    The centres are ``radius * (cos(k pi / 4), sin(k pi / 4))``, k = 0, ..., 7, and each component
    has standard deviation ``scale`` per coordinate. The defaults (radius 4 / 1.414 ~ 2.83, scale
    0.5 / 1.414 ~ 0.354) are FFJORD's ``8gaussians``.

    Parameters
    ----------
    n : int
    random_state : int, Generator, RandomState or None
        An int seeds :func:`numpy.random.default_rng`.
    radius : float, default=4 / 1.414
        Radius of the circle of centres.
    scale : float, default=0.5 / 1.414
        Standard deviation of each component.

    Returns
    -------
    ndarray of shape (n, 2), dtype float64

    Examples
    --------
    >>> x = sample_eight_gaussians(800, random_state=0, radius=2.0, scale=0.02)
    >>> x.shape, bool(np.allclose(np.linalg.norm(x, axis=1), 2.0, atol=0.2))
    ((800, 2), True)
    """
    if scale < 0:
        raise ValueError(f"scale must be non-negative, got {scale}")
    rng = as_generator(random_state)
    n = check_count(n)
    angle = rng.integers(0, 8, size=n) * (np.pi / 4)
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + scale * rng.standard_normal((n, 2))


def make_rotated_moons(n_samples: int, angle: float, noise: float = 0.1,
                       random_state: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two moons rotated by ``angle`` degrees about their centre.

    The classic toy domain shift of POT's ``ot.da`` examples: ``angle=0`` gives the source
    domain, a rotated copy the target (the benchmarks' B5 uses 10 to 90 degrees).

    Parameters
    ----------
    n_samples : int
        Points, split between the two moons as :func:`sklearn.datasets.make_moons` does.
    angle : float
        Rotation in degrees (counter-clockwise) about (0.5, 0.25), the moons' centre.
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added before the rotation.
    random_state : int, optional
        Seed of :func:`sklearn.datasets.make_moons`.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    y : ndarray of shape (n_samples,)
        The moon of each point (0 or 1).

    Examples
    --------
    >>> from skmetaot.datasets import make_rotated_moons
    >>> Xs, ys = make_rotated_moons(100, 0.0, random_state=0)
    >>> Xt, yt = make_rotated_moons(100, 90.0, random_state=0)
    >>> Xt.shape, bool((ys == yt).all())
    ((100, 2), True)
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    if not isinstance(angle, (int, float, np.integer, np.floating)) or not np.isfinite(angle):
        raise ValueError(f"angle must be a finite number of degrees, got {angle!r}")
    X, y = make_moons(n_samples, noise=noise, random_state=random_state)
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([0.5, 0.25])
    return (X - centre) @ rotation.T + centre, y
