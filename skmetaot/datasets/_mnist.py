"""The MNIST test set, bundled in the package (CC BY-SA 3.0, LeCun, Cortes, Burges)."""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

import numpy as np
from sklearn.utils import check_random_state

from skmetaot._validation import check_positive_int
from skmetaot.measures import HistogramPairs, pairs_from_images
from skmetaot.sampling import PairSampler

#: The benchmark split: images 0-7999 make training pairs, 8000-9999 test pairs (we ship no
#: MNIST training images, so this keeps test digits unseen during meta-training).
SPLITS = {"all": (0, 10000), "train": (0, 8000), "test": (8000, 10000)}


@lru_cache(maxsize=1)
def _read_idx() -> tuple[np.ndarray, np.ndarray]:
    folder = resources.files("skmetaot.datasets") / "data" / "mnist"
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "rb") as handle:
        raw = handle.read()
    header = np.frombuffer(raw[:16], ">i4")
    if tuple(header) != (2051, 10000, 28, 28):
        raise OSError(f"the bundled MNIST images have an unexpected header {header}")
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "rb") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """The bundled MNIST test set.

    Parameters
    ----------
    split : {"all", "train", "test"}, default="all"
        ``"train"`` is images 0-7999 and ``"test"`` images 8000-9999 (the benchmark split).

    Returns
    -------
    images : ndarray of shape (n_images, 28, 28), dtype uint8
    labels : ndarray of shape (n_images,), dtype uint8

    Examples
    --------
    >>> images, labels = load_mnist()
    >>> images.shape, labels[:5].tolist()
    ((10000, 28, 28), [7, 2, 1, 0, 4])
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {sorted(SPLITS)}")
    start, stop = SPLITS[split]
    images, labels = _read_idx()
    return images[start:stop], labels[start:stop]


def make_mnist_pairs(
    n_pairs: int = 128,
    *,
    split: str = "all",
    random_state: int | np.random.RandomState | None = None,
    dtype: str = "float64",
) -> HistogramPairs:
    """Random pairs of MNIST digits as histograms on the 28 x 28 grid of [0, 1]^2.

    Indices (I, J) are drawn uniformly with replacement, as in the Meta OT reference; each image
    is divided by 255 and normalised to sum to one (zero pixels are zero-weight atoms).

    Parameters
    ----------
    n_pairs : int, default=128
    split : {"all", "train", "test"}, default="all"
    random_state : int, RandomState or None
    dtype : {"float64", "float32"}, default="float64"

    Returns
    -------
    HistogramPairs

    Examples
    --------
    >>> pairs = make_mnist_pairs(4, split="test", random_state=0)
    >>> pairs.a.shape, pairs.grid_x is not None
    (torch.Size([4, 784]), True)
    """
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    images, _ = load_mnist(split)
    rng = check_random_state(random_state)
    first = rng.randint(0, len(images), size=n_pairs)
    second = rng.randint(0, len(images), size=n_pairs)
    scaled = images.astype(dtype) / 255.0
    return pairs_from_images(scaled[first], scaled[second])


def mnist_pair_sampler(
    batch_size: int = 128,
    *,
    split: str = "train",
    n_batches: int | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> PairSampler:
    """An endless stream of fresh random pairs of MNIST digits (the pair distribution itself).

    Every batch draws new ordered pairs ``(I, J)`` of the split's images, as the Meta OT
    reference does, so meta-training never cycles a fixed set of pairs; only the images are
    held (8,000 images stand for 64 million pairs).

    Parameters
    ----------
    batch_size : int, default=128
        Pairs per batch.
    split : {"all", "train", "test"}, default="train"
    n_batches : int, optional
        Length of one pass (default: endless).
    random_state : int, RandomState or None

    Returns
    -------
    PairSampler
        Its batches are (batch_size, 2, 28, 28) arrays of image pairs.

    Examples
    --------
    >>> sampler = mnist_pair_sampler(16, n_batches=2, random_state=0)
    >>> [batch.shape for batch in sampler]
    [(16, 2, 28, 28), (16, 2, 28, 28)]
    """
    images, _ = load_mnist(split)
    return PairSampler(images, batch_size=batch_size, n_batches=n_batches,
                       random_state=random_state)
