"""Problem families whose supports move and change size: digits, the sphere, Gaussian mixtures.

Every instance is a pair of weighted point clouds with its own points and sizes, the input of
:class:`~skmetaot.MetaSinkhornCloudTransport`. Each family comes as a collection
(``make_*_clouds``) and as an endless stream of fresh pairs (``*_cloud_sampler``, a
:class:`~skmetaot.sampling.CloudSampler`) for training. The references are solved ones:
:func:`skmetaot.sinkhorn` (or :meth:`MetaSinkhornCloudTransport.refine
<skmetaot.MetaSinkhornCloudTransport.refine>`) solves any of them to a chosen tolerance.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from skmetaot._validation import check_positive_int
from skmetaot.datasets._earth import _earth, lat_lon_to_xyz
from skmetaot.datasets._families import _MIXTURE_EIGEN_RANGE, _MIXTURE_MEAN_BOX, _check_range
from skmetaot.datasets._gaussian import _random_spd
from skmetaot.datasets._known_map import RandomStateLike, as_generator
from skmetaot.datasets._mnist import load_mnist
from skmetaot.measures import MeasurePairs
from skmetaot.sampling import CloudSampler

__all__ = ["gaussian_mixture_cloud_sampler", "make_gaussian_mixture_clouds", "make_mnist_clouds",
           "make_sphere_clouds", "mnist_cloud_sampler", "sphere_cloud_sampler"]


def _sizes(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    low, high = _check_range(value, name, integer=True)
    return int(low), int(high)


def _pairs(sources: list, targets: list, dtype: str) -> MeasurePairs:
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return MeasurePairs([x.astype(dtype) for x, _ in sources],
                        [y.astype(dtype) for y, _ in targets],
                        [a.astype(dtype) for _, a in sources],
                        [b.astype(dtype) for _, b in targets])


# -- MNIST digits as point clouds -------------------------------------------------------------
def _digit_cloud(image: np.ndarray, n_points: int, rng: np.random.Generator):
    """``n_points`` ink pixels of a digit, jittered inside their pixel, weighted by intensity."""
    rows, cols = np.nonzero(image)
    pick = rng.choice(len(rows), size=n_points, replace=n_points > len(rows))
    height, width = image.shape
    # Pixel centres on [0, 1]^2 as on the grid of make_mnist_pairs, plus uniform jitter within
    # the pixel: points drawn twice from one pixel are distinct.
    points = np.stack([rows[pick] + rng.uniform(-0.5, 0.5, n_points),
                       cols[pick] + rng.uniform(-0.5, 0.5, n_points)], 1)
    points = points / np.array([height - 1, width - 1])
    weights = image[rows[pick], cols[pick]].astype(np.float64)
    return points, weights / weights.sum()


def _draw_mnist(rng: np.random.Generator, n_pairs: int, *, split: str,
                n_points: tuple[int, int]) -> list:
    images, _ = load_mnist(split)
    clouds = []
    for _ in range(2 * n_pairs):
        image = images[int(rng.integers(len(images)))]
        clouds.append(_digit_cloud(image, int(rng.integers(n_points[0], n_points[1] + 1)), rng))
    return clouds


def _mnist_pairs(rng: np.random.Generator, n_pairs: int, *, split: str,
                 n_points: tuple[int, int], dtype: str = "float32") -> MeasurePairs:
    clouds = _draw_mnist(rng, n_pairs, split=split, n_points=n_points)
    return _pairs(clouds[0::2], clouds[1::2], dtype)


def make_mnist_clouds(
    n_pairs: int = 128,
    *,
    split: str = "all",
    n_points: int | tuple[int, int] = (100, 400),
    random_state: RandomStateLike = None,
    dtype: str = "float64",
) -> MeasurePairs:
    """Random pairs of MNIST digits as weighted point clouds of random sizes.

    Each measure is a digit of the split (drawn uniformly with replacement) seen as a point
    cloud: ``n`` of its ink pixels (``n`` uniform in ``n_points``; drawn uniformly, with
    replacement when the digit has fewer ink pixels), each moved uniformly inside its pixel
    and weighted by its intensity, on [0, 1]^2 as the grid of :func:`make_mnist_pairs`. So
    supports differ between all measures, and sizes too. Use ``cost="sqeuclidean"``.

    Parameters
    ----------
    n_pairs : int, default=128
    split : {"all", "train", "test"}, default="all"
        ``"train"`` (images 0-7999) and ``"test"`` (8000-9999) keep test digits unseen.
    n_points : int or (low, high), default=(100, 400)
        Points per measure, both ends included.
    random_state : int, Generator, RandomState or None
    dtype : {"float64", "float32"}, default="float64"

    Returns
    -------
    MeasurePairs

    Examples
    --------
    >>> pairs = make_mnist_clouds(3, split="test", random_state=0)
    >>> len(pairs), pairs.dim, all(100 <= n <= 400 for n in pairs.source_sizes)
    (3, 2, True)
    """
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    return _mnist_pairs(as_generator(random_state), n_pairs, split=split,
                        n_points=_sizes(n_points, "n_points"), dtype=dtype)


def mnist_cloud_sampler(
    batch_size: int = 32,
    *,
    split: str = "train",
    n_points: int | tuple[int, int] = (100, 400),
    n_batches: int | None = None,
    random_state: Any = None,
    dtype: str = "float32",
) -> CloudSampler:
    """An endless stream of fresh MNIST point-cloud pairs (:func:`make_mnist_clouds`).

    Parameters
    ----------
    batch_size : int, default=32
    split : {"all", "train", "test"}, default="train"
    n_points : int or (low, high), default=(100, 400)
    n_batches : int, optional
        Length of one pass (default: endless).
    random_state : int, RandomState or None
    dtype : {"float32", "float64"}, default="float32"

    Returns
    -------
    CloudSampler

    Examples
    --------
    >>> sampler = mnist_cloud_sampler(4, n_batches=2, random_state=0)
    >>> [len(batch) for batch in sampler]
    [4, 4]
    """
    load_mnist(split)  # a bad split fails here, not at the first batch
    return CloudSampler(functools.partial(_mnist_pairs, split=split,
                                          n_points=_sizes(n_points, "n_points"), dtype=dtype),
                        batch_size=batch_size, n_batches=n_batches, random_state=random_state)


# -- the sphere, with locations redrawn per instance ------------------------------------------
def _sphere_pairs(rng: np.random.Generator, n_pairs: int, *, n_supply: tuple[int, int],
                  n_demand: tuple[int, int], dtype: str = "float32") -> MeasurePairs:
    data = _earth()
    population = data["city_population"].astype(float) + 1.0
    population /= population.sum()
    sources, targets = [], []
    for _ in range(n_pairs):
        n = int(rng.integers(n_supply[0], n_supply[1] + 1))
        m = int(rng.integers(n_demand[0], n_demand[1] + 1))
        land = rng.choice(len(data["land_lat"]), size=n, replace=False)
        cities = rng.choice(len(population), size=m, replace=False, p=population)
        # The weights of the Meta OT sphere problem: Bernoulli(1/2) x U(0, 1) supply (one point
        # at least) and U(0, 1) demand.
        keep = rng.random(n) < 0.5
        keep[rng.integers(n)] = True
        a = keep * rng.uniform(1e-3, 1.0, n)
        b = rng.uniform(1e-3, 1.0, m)
        sources.append((lat_lon_to_xyz(data["land_lat"][land], data["land_lon"][land]),
                        a / a.sum()))
        targets.append((lat_lon_to_xyz(data["city_lat"][cities], data["city_lon"][cities]),
                        b / b.sum()))
    return _pairs(sources, targets, dtype)


def make_sphere_clouds(
    n_pairs: int = 128,
    *,
    n_supply: int | tuple[int, int] = (50, 150),
    n_demand: int | tuple[int, int] = (200, 600),
    random_state: RandomStateLike = None,
    dtype: str = "float64",
) -> MeasurePairs:
    """Supply and demand on the sphere with new locations every instance (a new day's sample).

    The Meta OT sphere problem (:func:`make_sphere_supply_demand`) with its locations redrawn
    for each instance: ``n`` supply points uniform over land and ``m`` cities drawn without
    replacement with probability proportional to population (``n`` and ``m`` uniform in their
    ranges), with the weights of that problem: supply ``Bernoulli(1/2) x U(0, 1)`` (about half
    the supply points carry no mass; one at least does) and demand ``U(0, 1)``, normalised.
    Use ``cost="spherical"``.

    Parameters
    ----------
    n_pairs : int, default=128
    n_supply, n_demand : int or (low, high)
        Numbers of supply and demand points, both ends included.
    random_state : int, Generator, RandomState or None
    dtype : {"float64", "float32"}, default="float64"

    Returns
    -------
    MeasurePairs
        Points on the unit sphere in R^3.

    Examples
    --------
    >>> pairs = make_sphere_clouds(2, random_state=0)
    >>> pairs.dim, all(200 <= m <= 600 for m in pairs.target_sizes)
    (3, True)
    """
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    return _sphere_pairs(as_generator(random_state), n_pairs,
                         n_supply=_sizes(n_supply, "n_supply"),
                         n_demand=_sizes(n_demand, "n_demand"), dtype=dtype)


def sphere_cloud_sampler(
    batch_size: int = 32,
    *,
    n_supply: int | tuple[int, int] = (50, 150),
    n_demand: int | tuple[int, int] = (200, 600),
    n_batches: int | None = None,
    random_state: Any = None,
    dtype: str = "float32",
) -> CloudSampler:
    """An endless stream of fresh sphere instances with moving locations.

    The instances of :func:`make_sphere_clouds`, drawn anew for every batch.

    Parameters
    ----------
    batch_size : int, default=32
    n_supply, n_demand : int or (low, high)
    n_batches : int, optional
    random_state : int, RandomState or None
    dtype : {"float32", "float64"}, default="float32"

    Returns
    -------
    CloudSampler

    Examples
    --------
    >>> sampler = sphere_cloud_sampler(2, n_batches=1, random_state=0)
    >>> [len(batch) for batch in sampler]
    [2]
    """
    return CloudSampler(functools.partial(_sphere_pairs, n_supply=_sizes(n_supply, "n_supply"),
                                          n_demand=_sizes(n_demand, "n_demand"), dtype=dtype),
                        batch_size=batch_size, n_batches=n_batches, random_state=random_state)


# -- Gaussian mixtures in R^2 .. R^10 ---------------------------------------------------------
def _mixture_cloud(dim: int, n_points: int, n_components: tuple[int, int],
                   rng: np.random.Generator):
    k = int(rng.integers(n_components[0], n_components[1] + 1))
    means = rng.uniform(-_MIXTURE_MEAN_BOX, _MIXTURE_MEAN_BOX, size=(k, dim))
    factors = np.stack([np.linalg.cholesky(_random_spd(dim, *_MIXTURE_EIGEN_RANGE, rng))
                        for _ in range(k)])
    labels = rng.choice(k, size=n_points, p=rng.dirichlet(np.ones(k)))
    points = means[labels] + np.einsum("nij,nj->ni", factors[labels],
                                       rng.standard_normal((n_points, dim)))
    weights = rng.uniform(0.5, 1.5, n_points)
    return points, weights / weights.sum()


def _mixture_pairs(rng: np.random.Generator, n_pairs: int, *, dims: tuple[int, int],
                   n_points: tuple[int, int], n_components: tuple[int, int],
                   dtype: str = "float32") -> MeasurePairs:
    dim = int(rng.integers(dims[0], dims[1] + 1))  # one dimension per collection (batch)
    sources, targets = [], []
    for _ in range(n_pairs):
        for side in (sources, targets):
            side.append(_mixture_cloud(dim, int(rng.integers(n_points[0], n_points[1] + 1)),
                                       n_components, rng))
    return _pairs(sources, targets, dtype)


def make_gaussian_mixture_clouds(
    n_pairs: int = 128,
    dim: int | tuple[int, int] = 2,
    *,
    n_points: int | tuple[int, int] = (100, 400),
    n_components: int | tuple[int, int] = (1, 4),
    random_state: RandomStateLike = None,
    dtype: str = "float64",
) -> MeasurePairs:
    """Pairs of samples of random Gaussian mixtures, with random sizes and random weights.

    Each measure is ``n`` points (``n`` uniform in ``n_points``) of its own random mixture,
    as in :func:`make_gaussian_mixture_pairs` (1-4 components with means in ``[-2, 2]^d`` and
    covariance eigenvalues in [0.05, 0.5]), with weights uniform in [0.5, 1.5] before
    normalisation. Use ``cost="sqeuclidean"``.

    Parameters
    ----------
    n_pairs : int, default=128
    dim : int or (low, high), default=2
        Dimension; a range draws one dimension for the whole collection (pairs of one
        collection share it; :func:`gaussian_mixture_cloud_sampler` draws one per batch).
    n_points : int or (low, high), default=(100, 400)
    n_components : int or (low, high), default=(1, 4)
    random_state : int, Generator, RandomState or None
    dtype : {"float64", "float32"}, default="float64"

    Returns
    -------
    MeasurePairs

    Examples
    --------
    >>> pairs = make_gaussian_mixture_clouds(2, dim=5, random_state=0)
    >>> pairs.dim, len(pairs)
    (5, 2)
    """
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    return _mixture_pairs(as_generator(random_state), n_pairs, dims=_sizes(dim, "dim"),
                          n_points=_sizes(n_points, "n_points"),
                          n_components=_sizes(n_components, "n_components"), dtype=dtype)


def gaussian_mixture_cloud_sampler(
    batch_size: int = 32,
    *,
    dims: int | tuple[int, int] = (2, 10),
    n_points: int | tuple[int, int] = (100, 400),
    n_components: int | tuple[int, int] = (1, 4),
    n_batches: int | None = None,
    random_state: Any = None,
    dtype: str = "float32",
) -> CloudSampler:
    """An endless stream of fresh Gaussian-mixture pairs, a random dimension per batch.

    Parameters
    ----------
    batch_size : int, default=32
    dims : int or (low, high), default=(2, 10)
        Each batch draws its dimension uniformly in this range (a model that sees only costs,
        such as :class:`~skmetaot.MetaSinkhornCloudTransport`, trains on all of them at once).
    n_points, n_components : int or (low, high)
        As in :func:`make_gaussian_mixture_clouds`.
    n_batches : int, optional
    random_state : int, RandomState or None
    dtype : {"float32", "float64"}, default="float32"

    Returns
    -------
    CloudSampler

    Examples
    --------
    >>> sampler = gaussian_mixture_cloud_sampler(2, n_batches=3, random_state=0)
    >>> all(2 <= batch.dim <= 10 for batch in sampler)
    True
    """
    return CloudSampler(functools.partial(_mixture_pairs, dims=_sizes(dims, "dims"),
                                          n_points=_sizes(n_points, "n_points"),
                                          n_components=_sizes(n_components, "n_components"),
                                          dtype=dtype),
                        batch_size=batch_size, n_batches=n_batches, random_state=random_state)
