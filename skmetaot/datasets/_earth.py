"""Supply (land) and demand (cities) on the unit sphere: the Meta OT sphere problem."""

from __future__ import annotations

import functools
from functools import lru_cache
from importlib import resources

import numpy as np
from sklearn.utils import check_random_state

from skmetaot._validation import check_positive_int
from skmetaot.measures import HistogramPairs
from skmetaot.sampling import WeightSampler


@lru_cache(maxsize=1)
def _earth() -> dict[str, np.ndarray]:
    path = resources.files("skmetaot.datasets") / "data" / "earth" / "earth_supply_demand.npz"
    with path.open("rb") as handle, np.load(handle) as archive:
        return {key: archive[key] for key in archive.files}


def lat_lon_to_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points of the unit sphere from latitude and longitude in degrees.

    Parameters
    ----------
    lat, lon : array-like of shape (n,)

    Returns
    -------
    ndarray of shape (n, 3)

    Examples
    --------
    >>> lat_lon_to_xyz(np.array([90.0]), np.array([0.0])).round(6)
    array([[0., 0., 1.]])
    """
    lat_r, lon_r = np.deg2rad(np.asarray(lat, float)), np.deg2rad(np.asarray(lon, float))
    return np.stack([np.cos(lat_r) * np.cos(lon_r), np.cos(lat_r) * np.sin(lon_r),
                     np.sin(lat_r)], axis=-1)


def sphere_supply_demand_locations(
    n_supply: int = 100, n_demand: int = 10000, *, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed supply and demand locations on the unit sphere.

    Supply points are drawn uniformly over land (from the bundled uniform land sample); demand
    points are cities drawn without replacement with probability proportional to population.

    Parameters
    ----------
    n_supply : int, default=100
    n_demand : int, default=10000
    random_state : int, default=0
        Seed of the location draw (fixed across instances).

    Returns
    -------
    supply : ndarray of shape (n_supply, 3)
    demand : ndarray of shape (n_demand, 3)

    Examples
    --------
    >>> supply, demand = sphere_supply_demand_locations(10, 200)
    >>> supply.shape, demand.shape
    ((10, 3), (200, 3))
    >>> bool(np.allclose(np.linalg.norm(demand, axis=1), 1.0))  # on the unit sphere
    True
    """
    data = _earth()
    if not 1 <= n_supply <= len(data["land_lat"]):
        raise ValueError(f"n_supply must be in [1, {len(data['land_lat'])}], got {n_supply}")
    if not 1 <= n_demand <= len(data["city_lat"]):
        raise ValueError(f"n_demand must be in [1, {len(data['city_lat'])}], got {n_demand}")
    rng = np.random.RandomState(random_state)
    land = rng.choice(len(data["land_lat"]), size=n_supply, replace=False)
    population = data["city_population"].astype(float) + 1.0
    cities = rng.choice(len(population), size=n_demand, replace=False,
                        p=population / population.sum())
    supply = lat_lon_to_xyz(data["land_lat"][land], data["land_lon"][land])
    demand = lat_lon_to_xyz(data["city_lat"][cities], data["city_lon"][cities])
    return supply, demand


def make_sphere_supply_demand(
    n_pairs: int = 128,
    *,
    n_supply: int = 100,
    n_demand: int = 10000,
    random_state: int | np.random.RandomState | None = None,
    locations_seed: int = 0,
    dtype: str = "float64",
) -> HistogramPairs:
    """Supply-demand instances on the sphere (Meta OT, Section 4.1).

    Locations are fixed across instances (:func:`sphere_supply_demand_locations`); each instance
    redraws weights: supply ``a = Bernoulli(0.5) * U(0, 1)`` (at least one supply point kept) and
    demand ``b = U(0, 1)``, both normalised. Use with ``cost="spherical"`` (geodesic distance in
    radians) and ``epsilon=1e-3``.

    Parameters
    ----------
    n_pairs : int, default=128
    n_supply, n_demand : int
        Numbers of supply and demand locations.
    random_state : int, RandomState or None
        Seed of the instance weights.
    locations_seed : int, default=0
        Seed of the fixed locations.
    dtype : {"float64", "float32"}, default="float64"

    Returns
    -------
    HistogramPairs
        ``x`` (n_supply, 3) and ``y`` (n_demand, 3) on the unit sphere.

    Examples
    --------
    >>> pairs = make_sphere_supply_demand(2, n_demand=500, random_state=0)
    >>> pairs.x.shape, pairs.y.shape
    (torch.Size([100, 3]), torch.Size([500, 3]))
    """
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    supply, demand = sphere_supply_demand_locations(n_supply, n_demand,
                                                    random_state=locations_seed)
    a, b = sphere_weights(check_random_state(random_state), n_pairs, n_supply, n_demand)
    return HistogramPairs(a.astype(dtype), b.astype(dtype), supply.astype(dtype),
                          demand.astype(dtype))


def sphere_weights(rng: np.random.RandomState, n_pairs: int, n_supply: int = 100,
                   n_demand: int = 10000) -> tuple[np.ndarray, np.ndarray]:
    """Draw the weights of ``n_pairs`` sphere instances (the instance distribution).

    Supply ``a = Bernoulli(0.5) * U(0, 1)`` (at least one supply point kept) and demand
    ``b = U(0, 1)``, both normalised, as in the Meta OT reference.

    Parameters
    ----------
    rng : numpy.random.RandomState
    n_pairs, n_supply, n_demand : int

    Returns
    -------
    a : ndarray of shape (n_pairs, n_supply)
    b : ndarray of shape (n_pairs, n_demand)

    Examples
    --------
    >>> a, b = sphere_weights(np.random.RandomState(0), 2, 5, 7)
    >>> a.shape, b.shape, bool(np.allclose(a.sum(1), 1.0))
    ((2, 5), (2, 7), True)
    """
    mask = rng.rand(n_pairs, n_supply) < 0.5
    empty = ~mask.any(1)
    mask[empty, rng.randint(n_supply, size=int(empty.sum()))] = True
    a = mask * rng.rand(n_pairs, n_supply)
    a[a.sum(1) == 0, 0] = 1.0  # a kept point drew U(0,1) = 0 exactly: astronomically rare
    b = rng.rand(n_pairs, n_demand)
    return a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True)


def sphere_supply_demand_sampler(
    batch_size: int = 128,
    *,
    n_supply: int = 100,
    n_demand: int = 10000,
    n_batches: int | None = None,
    random_state: int | np.random.RandomState | None = None,
    locations_seed: int = 0,
    dtype: str = "float64",
) -> WeightSampler:
    """An endless stream of fresh sphere instances (the instance distribution itself).

    Every batch redraws the weights of :func:`make_sphere_supply_demand` on the same fixed
    locations, so meta-training sees new instances at every step, as the Meta OT reference
    does, instead of cycling a fixed set.

    Parameters
    ----------
    batch_size : int, default=128
        Instances per batch.
    n_supply, n_demand : int
        Numbers of supply and demand locations.
    n_batches : int, optional
        Length of one pass (default: endless).
    random_state : int, RandomState or None
        Seed of the weights.
    locations_seed : int, default=0
        Seed of the fixed locations (the same as :func:`make_sphere_supply_demand`'s).
    dtype : {"float64", "float32"}, default="float64"

    Returns
    -------
    WeightSampler
        Pass it to :meth:`MetaSinkhornTransport.fit <skmetaot.MetaSinkhornTransport.fit>`.

    Examples
    --------
    >>> sampler = sphere_supply_demand_sampler(4, n_demand=300, n_batches=2, random_state=0)
    >>> [tuple(batch.b.shape) for batch in sampler]
    [(4, 300), (4, 300)]
    """
    supply, demand = sphere_supply_demand_locations(n_supply, n_demand,
                                                    random_state=locations_seed)
    draw = functools.partial(sphere_weights, n_supply=n_supply, n_demand=n_demand)
    return WeightSampler(supply, demand, draw, batch_size=batch_size, n_batches=n_batches,
                         random_state=random_state, dtype=dtype)
