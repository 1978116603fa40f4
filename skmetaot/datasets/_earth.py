"""Supply (land) and demand (cities) on the unit sphere: the Meta OT sphere problem."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from sklearn.utils import check_random_state

from skmetaot.measures import HistogramPairs


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
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    supply, demand = sphere_supply_demand_locations(n_supply, n_demand,
                                                    random_state=locations_seed)
    rng = check_random_state(random_state)
    mask = rng.rand(n_pairs, n_supply) < 0.5
    empty = ~mask.any(1)
    mask[empty, rng.randint(n_supply, size=int(empty.sum()))] = True
    a = mask * rng.rand(n_pairs, n_supply)
    a[a.sum(1) == 0, 0] = 1.0  # a kept point drew U(0,1) = 0 exactly: astronomically rare
    b = rng.rand(n_pairs, n_demand)
    return HistogramPairs(a.astype(dtype), b.astype(dtype), supply.astype(dtype),
                          demand.astype(dtype))
