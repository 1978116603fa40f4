"""Data sets: bundled real data and synthetic generators of measure pairs."""

from skmetaot.datasets._clouds import (
    gaussian_mixture_cloud_sampler,
    make_gaussian_mixture_clouds,
    make_mnist_clouds,
    make_sphere_clouds,
    mnist_cloud_sampler,
    sphere_cloud_sampler,
)
from skmetaot.datasets._color_images import color_variations, image_to_measure, load_color_images
from skmetaot.datasets._digits import DigitDomains, load_digits_domains, upscale_digits
from skmetaot.datasets._earth import (
    lat_lon_to_xyz,
    make_sphere_supply_demand,
    sphere_supply_demand_locations,
    sphere_supply_demand_sampler,
    sphere_weights,
)
from skmetaot.datasets._families import (
    make_gaussian_mixture_pairs,
    make_gaussian_pair_samples,
    make_gaussian_pairs,
)
from skmetaot.datasets._gaussian import GaussianPair, make_gaussian_pair
from skmetaot.datasets._known_map import KnownMapPair
from skmetaot.datasets._mnist import load_mnist, make_mnist_pairs, mnist_pair_sampler
from skmetaot.datasets._toy2d import (
    make_rotated_moons,
    sample_checkerboard,
    sample_eight_gaussians,
)
from skmetaot.datasets._w2bench import W2BenchmarkPair, load_w2_benchmark

__all__ = [
    "color_variations",
    "DigitDomains",
    "GaussianPair",
    "KnownMapPair",
    "gaussian_mixture_cloud_sampler",
    "W2BenchmarkPair",
    "image_to_measure",
    "lat_lon_to_xyz",
    "load_color_images",
    "load_digits_domains",
    "load_mnist",
    "load_w2_benchmark",
    "make_gaussian_mixture_clouds",
    "make_gaussian_mixture_pairs",
    "make_gaussian_pair",
    "make_gaussian_pair_samples",
    "make_gaussian_pairs",
    "make_mnist_clouds",
    "make_mnist_pairs",
    "make_rotated_moons",
    "mnist_cloud_sampler",
    "mnist_pair_sampler",
    "make_sphere_clouds",
    "make_sphere_supply_demand",
    "sample_checkerboard",
    "sample_eight_gaussians",
    "sphere_cloud_sampler",
    "sphere_supply_demand_locations",
    "sphere_supply_demand_sampler",
    "sphere_weights",
    "upscale_digits",
]
