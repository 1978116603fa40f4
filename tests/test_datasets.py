"""The bundled MNIST test set and the MNIST pair generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import skmetaot
from skmetaot.datasets import load_mnist, make_mnist_pairs


def test_load_mnist_all():
    images, labels = load_mnist()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert set(np.unique(labels).tolist()) == set(range(10))
    assert images.max() == 255 and images.min() == 0
    # Every digit has some ink.
    assert np.all(images.reshape(10000, -1).sum(1) > 0)


@pytest.mark.parametrize(("split", "start", "size"), [("train", 0, 8000), ("test", 8000, 2000)])
def test_load_mnist_splits(split, start, size):
    images, labels = load_mnist(split)
    all_images, all_labels = load_mnist("all")
    assert images.shape == (size, 28, 28) and labels.shape == (size,)
    np.testing.assert_array_equal(images, all_images[start:start + size])
    np.testing.assert_array_equal(labels, all_labels[start:start + size])


def test_load_mnist_train_and_test_are_disjoint():
    train, _ = load_mnist("train")
    test, _ = load_mnist("test")
    assert len(train) + len(test) == 10000
    np.testing.assert_array_equal(np.concatenate([train, test]), load_mnist()[0])


def test_load_mnist_returns_read_only_arrays():
    # The cached arrays are shared between calls: they must not be writable.
    images, labels = load_mnist()
    with pytest.raises(ValueError):
        images[0, 0, 0] = 1
    with pytest.raises(ValueError):
        labels[0] = 3


def test_load_mnist_bad_split():
    with pytest.raises(ValueError, match="split='valid'"):
        load_mnist("valid")


def test_make_mnist_pairs_shapes_and_grid():
    pairs = make_mnist_pairs(6, random_state=0)
    assert isinstance(pairs, skmetaot.HistogramPairs)
    assert len(pairs) == 6
    assert pairs.a.shape == (6, 784) and pairs.b.shape == (6, 784)
    assert pairs.dtype == torch.float64
    assert pairs.grid_x is not None and pairs.grid_y is not None
    assert [len(axis) for axis in pairs.grid_x] == [28, 28]
    assert pairs.x.shape == (784, 2)
    assert float(pairs.x.min()) == 0.0 and float(pairs.x.max()) == 1.0
    np.testing.assert_allclose(pairs.a.sum(1).numpy(), np.ones(6), atol=1e-12)
    np.testing.assert_allclose(pairs.b.sum(1).numpy(), np.ones(6), atol=1e-12)
    assert bool((pairs.a == 0).any())  # background pixels are zero-weight atoms
    assert not pairs.kind.is_torch


def test_make_mnist_pairs_is_reproducible():
    first = make_mnist_pairs(5, random_state=3)
    second = make_mnist_pairs(5, random_state=3)
    np.testing.assert_array_equal(first.a.numpy(), second.a.numpy())
    np.testing.assert_array_equal(first.b.numpy(), second.b.numpy())
    other = make_mnist_pairs(5, random_state=4)
    assert not np.array_equal(first.a.numpy(), other.a.numpy())
    from_state = make_mnist_pairs(5, random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(from_state.a.numpy(), first.a.numpy())


def test_make_mnist_pairs_draws_from_the_split():
    pairs = make_mnist_pairs(8, split="test", random_state=0)
    images, _ = load_mnist("test")
    rng = np.random.RandomState(0)
    first, second = rng.randint(0, 2000, size=8), rng.randint(0, 2000, size=8)
    for k in range(8):
        expected_a = images[first[k]].reshape(-1).astype(np.float64)
        expected_b = images[second[k]].reshape(-1).astype(np.float64)
        np.testing.assert_allclose(pairs.a[k].numpy(), expected_a / expected_a.sum(), atol=1e-15)
        np.testing.assert_allclose(pairs.b[k].numpy(), expected_b / expected_b.sum(), atol=1e-15)


def test_make_mnist_pairs_float32():
    pairs = make_mnist_pairs(2, random_state=0, dtype="float32")
    assert pairs.dtype == torch.float32 and pairs.x.dtype == torch.float32
    assert pairs.grid_x is not None


@pytest.mark.parametrize("n_pairs", [0, -1, 2.5, True, "3"])
def test_make_mnist_pairs_bad_n_pairs(n_pairs):
    with pytest.raises(ValueError, match="n_pairs"):
        make_mnist_pairs(n_pairs)


def test_make_mnist_pairs_bad_split():
    with pytest.raises(ValueError, match="split"):
        make_mnist_pairs(2, split="validation")


def test_mnist_pairs_can_be_solved():
    pairs = make_mnist_pairs(2, split="test", random_state=1)
    res = skmetaot.sinkhorn(pairs, epsilon=1e-2, tol=1e-3, max_iter=2000)
    assert res.converged.all()
    assert res.f.shape == (2, 784)
    assert np.all(res.f[pairs.a.numpy() == 0] == -np.inf)
