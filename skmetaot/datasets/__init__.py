"""Data sets: bundled real data and synthetic generators of measure pairs."""

from skmetaot.datasets._mnist import load_mnist, make_mnist_pairs

__all__ = ["load_mnist", "make_mnist_pairs"]
