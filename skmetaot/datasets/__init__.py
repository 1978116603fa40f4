"""Data sets: bundled real data and synthetic generators of measure pairs."""

from skmetaot.datasets._earth import (
    lat_lon_to_xyz,
    make_sphere_supply_demand,
    sphere_supply_demand_locations,
)
from skmetaot.datasets._mnist import load_mnist, make_mnist_pairs

__all__ = [
    "lat_lon_to_xyz",
    "load_mnist",
    "make_mnist_pairs",
    "make_sphere_supply_demand",
    "sphere_supply_demand_locations",
]
