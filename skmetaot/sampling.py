"""Streams of training pairs: random mini-batches of a collection, random pairs of measures.

The meta estimators train on mini-batches of pairs. ``fit`` accepts, besides a collection in
memory, any iterable of pairs or of mini-batches (a generator, a
:class:`torch.utils.data.DataLoader`, an :class:`torch.utils.data.IterableDataset`), and the
samplers here produce such streams without ever building the collection of pairs:

* :class:`PairSampler` draws random pairs ``(i, j)`` of a set of measures (10,000 images make
  10^8 ordered pairs; the sampler holds the 10,000 images, never the pairs);
* :class:`RandomBatches` draws random mini-batches of any indexable collection of pairs (an
  array of image pairs, a memory map, a map-style :class:`torch.utils.data.Dataset`); ``fit`` on
  a collection in memory draws exactly these batches.

Both are rank-aware: under :mod:`torch.distributed` each process draws its own batches (the
seed is offset by the rank), as it is under a ``DataLoader`` with several workers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from skmetaot import distributed
from skmetaot.measures import HistogramPairs

__all__ = ["CloudSampler", "PairSampler", "RandomBatches", "WeightSampler",
           "seed_from_random_state"]


def seed_from_random_state(random_state: Any) -> int:
    """The integer seed the estimators derive from a ``random_state`` (as scikit-learn does).

    Parameters
    ----------
    random_state : int, numpy.random.RandomState or None

    Returns
    -------
    int
        A seed in [0, 2^31 - 1).

    Examples
    --------
    >>> seed_from_random_state(0) == seed_from_random_state(0)
    True
    """
    return int(check_random_state(random_state).randint(2**31 - 1))


def _stream_generator(seed: int) -> torch.Generator:
    """A generator for this process and data-loading worker: one stream per (rank, worker)."""
    worker = get_worker_info()
    offset = distributed.rank() * 1000 + (worker.id + 1 if worker is not None else 0)
    return torch.Generator().manual_seed(seed + offset)


def _take(collection: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` of a collection of pairs, in a form :func:`skmetaot.as_pairs` reads."""
    if isinstance(collection, (np.ndarray, torch.Tensor)):
        rows = index.numpy() if isinstance(collection, np.ndarray) else index
        return collection[rows]
    if hasattr(collection, "n_pairs") and hasattr(collection, "__getitem__"):
        return collection[index.numpy()]  # MeasurePairs / HistogramPairs select by index array
    items = [collection[int(i)] for i in index]
    if items and isinstance(items[0], (np.ndarray, torch.Tensor)) and np.ndim(items[0]) == 3:
        return np.stack([np.asarray(item) for item in items])  # image pairs (2, H, W)
    return items


class Draws(Iterator):
    """The iterator of a sampler: its batches, drawn with one generator (that a checkpoint saves).

    Parameters
    ----------
    sampler : RandomBatches or PairSampler
    generator : torch.Generator
    """

    def __init__(self, sampler: _Sampler, generator: torch.Generator) -> None:
        self.sampler = sampler
        self.generator = generator
        self.drawn = 0

    def __next__(self) -> Any:
        if self.sampler.n_batches is not None and self.drawn >= self.sampler.n_batches:
            raise StopIteration
        self.drawn += 1
        return self.sampler._draw(self.generator)


class _Sampler(IterableDataset):
    """What the two samplers share: seeding per (seed, rank, worker), length, iteration."""

    n_batches: int | None
    random_state: Any

    def __iter__(self) -> Draws:
        return self.iterate(seed_from_random_state(self.random_state))

    def iterate(self, seed: int) -> Draws:
        """Iterate from an explicit integer seed (what an estimator does with its own seed)."""
        return Draws(self, _stream_generator(seed))

    def __len__(self) -> int:
        if self.n_batches is None:
            raise TypeError(f"an endless {type(self).__name__} has no length; give n_batches")
        return self.n_batches

    def _draw(self, generator: torch.Generator) -> Any:
        raise NotImplementedError

    def _set_stream(self, batch_size: int, n_batches: int | None, random_state: Any) -> None:
        """Store and check what every sampler takes: batch size, length, seed."""
        self.batch_size = int(batch_size)
        self.n_batches = n_batches
        self.random_state = random_state
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


class RandomBatches(_Sampler):
    """Random mini-batches (with replacement) of a collection of pairs.

    Parameters
    ----------
    pairs : indexable collection of pairs
        An (N, 2, H, W) array of image pairs (a ``numpy.memmap`` works: only the drawn rows are
        read), a :class:`~skmetaot.HistogramPairs` or :class:`~skmetaot.MeasurePairs`, a list
        of ``(Xs, Xt)`` pairs, or a map-style :class:`torch.utils.data.Dataset` whose items are
        pairs.
    batch_size : int
        Pairs per batch.
    n_batches : int, optional
        Length of one pass (default: endless).
    random_state : int, RandomState or None
        Seed; an estimator fitted on ``pairs`` in memory with ``batch_size`` and the same
        integer ``random_state`` draws exactly these batches.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((10, 2, 4, 4))
    >>> batches = RandomBatches(images, batch_size=3, n_batches=2, random_state=0)
    >>> [batch.shape for batch in batches]
    [(3, 2, 4, 4), (3, 2, 4, 4)]
    """

    def __init__(self, pairs: Any, batch_size: int, n_batches: int | None = None,
                 random_state: Any = None) -> None:
        self.pairs = pairs
        self.n_pairs = len(pairs)
        if self.n_pairs == 0:
            raise ValueError("no pairs were given (empty collection)")
        self._set_stream(batch_size, n_batches, random_state)

    def _draw(self, generator: torch.Generator) -> Any:
        index = torch.randint(self.n_pairs, (self.batch_size,), generator=generator)
        return _take(self.pairs, index)


class PairSampler(_Sampler):
    """Random ordered pairs ``(i, j)``, ``i != j``, of a set of measures, in mini-batches.

    Only the measures are held; the pairs are drawn as training consumes them, so a set of N
    images stands for N (N - 1) pairs at the memory cost of N images.

    Parameters
    ----------
    measures : array of shape (N, H, W) or sequence of measures
        Grayscale images (batches come out as (B, 2, H, W) arrays of image pairs, what
        :class:`~skmetaot.MetaSinkhornTransport` reads), or point clouds / ``(points, weights)``
        / colour images (batches come out as lists of ``(source, target)`` pairs, what
        :class:`~skmetaot.MetaICNNTransport` reads).
    batch_size : int, default=128
        Pairs per batch.
    n_batches : int, optional
        Length of one pass (default: endless).
    random_state : int, RandomState or None
        Seed (offset by the process rank under :mod:`torch.distributed`).

    Examples
    --------
    >>> from skmetaot.datasets import load_mnist
    >>> images, _ = load_mnist("test")
    >>> sampler = PairSampler(images[:1000], batch_size=64, n_batches=3, random_state=0)
    >>> [batch.shape for batch in sampler]
    [(64, 2, 28, 28), (64, 2, 28, 28), (64, 2, 28, 28)]
    """

    def __init__(self, measures: Any, batch_size: int = 128, n_batches: int | None = None,
                 random_state: Any = None) -> None:
        if isinstance(measures, (str, bytes)) or not hasattr(measures, "__len__"):
            raise TypeError(f"measures must be an array of images (N, H, W) or a sequence of "
                            f"measures, got {type(measures).__name__}")
        if len(measures) < 2:
            raise ValueError(f"a pair sampler needs at least 2 measures, got {len(measures)}")
        self.measures = measures
        self._set_stream(batch_size, n_batches, random_state)

    def _draw(self, generator: torch.Generator) -> Any:
        n = len(self.measures)
        first = torch.randint(n, (self.batch_size,), generator=generator)
        # j = i + offset with offset in 1..n-1 (mod n): uniform over j != i.
        second = (first + torch.randint(1, n, (self.batch_size,), generator=generator)) % n
        return self._pairs(first, second)

    def _pairs(self, first: torch.Tensor, second: torch.Tensor) -> Any:
        measures = self.measures
        if isinstance(measures, (np.ndarray, torch.Tensor)) and measures.ndim == 3:
            rows_a = first.numpy() if isinstance(measures, np.ndarray) else first
            rows_b = second.numpy() if isinstance(measures, np.ndarray) else second
            stack = np.stack if isinstance(measures, np.ndarray) else torch.stack
            return stack([measures[rows_a], measures[rows_b]], 1)
        return [(measures[int(i)], measures[int(j)]) for i, j in zip(first, second,
                                                                      strict=True)]

class WeightSampler(_Sampler):
    """Fresh weights on fixed supports, drawn anew for every mini-batch.

    For problem families whose locations are fixed and whose instances differ by their weights
    (daily supply and demand at fixed depots and customers, as in the Meta OT sphere problem):
    every batch is a new draw from the instance distribution, so training never cycles a fixed
    set of pairs.

    Parameters
    ----------
    x : array of shape (n, d)
        Source support, shared by every pair.
    y : array of shape (m, d')
        Target support, shared by every pair.
    draw_weights : callable
        ``draw_weights(rng, n_pairs) -> (a, b)`` with ``rng`` a ``numpy.random.RandomState``;
        returns arrays of shapes (n_pairs, n) and (n_pairs, m), each row summing to one. It
        must be picklable (a module-level function or a ``functools.partial`` of one) for
        checkpoints and data-loading workers.
    batch_size : int, default=128
        Pairs per batch.
    n_batches : int, optional
        Length of one pass (default: endless).
    random_state : int, RandomState or None
        Seed (offset by the process rank under :mod:`torch.distributed`).
    dtype : {"float64", "float32"}, default="float64"

    Examples
    --------
    >>> import numpy as np
    >>> def uniform_weights(rng, n_pairs):
    ...     a, b = rng.rand(n_pairs, 3), rng.rand(n_pairs, 4)
    ...     return a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True)
    >>> sampler = WeightSampler(np.zeros((3, 2)), np.ones((4, 2)), uniform_weights,
    ...                         batch_size=5, n_batches=2, random_state=0)
    >>> [(batch.a.shape, batch.b.shape) for batch in sampler]
    [(torch.Size([5, 3]), torch.Size([5, 4])), (torch.Size([5, 3]), torch.Size([5, 4]))]
    """

    def __init__(self, x: Any, y: Any, draw_weights: Any, batch_size: int = 128,
                 n_batches: int | None = None, random_state: Any = None,
                 dtype: str = "float64") -> None:
        if not callable(draw_weights):
            raise TypeError(f"draw_weights must be callable, got {type(draw_weights).__name__}")
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        self.dtype = getattr(torch, dtype)
        self.x = torch.as_tensor(np.asarray(x), dtype=self.dtype)
        self.y = torch.as_tensor(np.asarray(y), dtype=self.dtype)
        self.draw_weights = draw_weights
        self._set_stream(batch_size, n_batches, random_state)

    def _draw(self, generator: torch.Generator) -> HistogramPairs:
        # The weights come from numpy (the instance distributions are written for it); one
        # seed per batch, drawn from the torch generator that a checkpoint saves.
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        a, b = self.draw_weights(np.random.RandomState(seed), self.batch_size)
        return HistogramPairs(torch.as_tensor(np.asarray(a), dtype=self.dtype),
                              torch.as_tensor(np.asarray(b), dtype=self.dtype), self.x, self.y)


class CloudSampler(_Sampler):
    """Fresh pairs of point clouds, supports and sizes included, drawn anew for every batch.

    For problem families whose instances move (new points, new sizes every day): the analogue
    of :class:`WeightSampler` for :class:`~skmetaot.MetaSinkhornCloudTransport`, so training
    never cycles a fixed set of pairs.

    Parameters
    ----------
    draw_pairs : callable
        ``draw_pairs(rng, n_pairs) -> MeasurePairs`` with ``rng`` a
        ``numpy.random.Generator``. It must be picklable (a module-level function or a
        ``functools.partial`` of one) for checkpoints and data-loading workers.
    batch_size : int, default=32
        Pairs per batch.
    n_batches : int, optional
        Length of one pass (default: endless).
    random_state : int, RandomState or None
        Seed (offset by the process rank under :mod:`torch.distributed`).

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot import MeasurePairs
    >>> def draw(rng, n_pairs):
    ...     sizes = rng.integers(3, 6, size=(n_pairs, 2))
    ...     return MeasurePairs([rng.random((n, 2)) for n, _ in sizes],
    ...                         [rng.random((m, 2)) for _, m in sizes])
    >>> sampler = CloudSampler(draw, batch_size=4, n_batches=2, random_state=0)
    >>> [len(batch) for batch in sampler]
    [4, 4]
    """

    def __init__(self, draw_pairs: Any, batch_size: int = 32, n_batches: int | None = None,
                 random_state: Any = None) -> None:
        if not callable(draw_pairs):
            raise TypeError(f"draw_pairs must be callable, got {type(draw_pairs).__name__}")
        self.draw_pairs = draw_pairs
        self._set_stream(batch_size, n_batches, random_state)

    def _draw(self, generator: torch.Generator) -> Any:
        # One numpy seed per batch, drawn from the torch generator that a checkpoint saves.
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        return self.draw_pairs(np.random.default_rng(seed), self.batch_size)


def is_stream(data: Any) -> bool:
    """Whether ``data`` is a stream of pairs or batches rather than a collection in memory.

    Streams: iterators and generators, :class:`torch.utils.data.DataLoader`,
    :class:`~torch.utils.data.IterableDataset` (including the samplers here) and map-style
    :class:`~torch.utils.data.Dataset` objects.
    """
    return isinstance(data, (Iterator, torch.utils.data.DataLoader, Dataset))


def open_stream(data: Any, batch_size: int, seed: int, *,
                cycle: bool) -> tuple[Iterator[Any], torch.Generator | None]:
    """The items a fit consumes from ``data``, and the generator drawing them when ours.

    A map-style dataset is sampled with :class:`RandomBatches` from ``seed``; the samplers of
    this module are iterated from their own seed, and their generator is returned so that a
    checkpoint can save its state; other iterables are passed through, restarted at their end
    when ``cycle`` and they can be iterated again (an iterator cannot).
    """
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        draws = RandomBatches(data, batch_size).iterate(seed)
        return draws, draws.generator
    if isinstance(data, _Sampler):
        draws = data.iterate(seed_from_random_state(data.random_state))
        return draws, draws.generator
    return _passes(data, cycle), None


def _passes(data: Iterable[Any], cycle: bool) -> Iterator[Any]:
    if isinstance(data, Iterator) or not cycle:
        yield from data
        return
    while True:
        empty = True
        for item in data:
            empty = False
            yield item
        if empty:
            return


def rebatch(items: Iterable[Any], batch_size: int, *, concat: Any) -> Iterator[Any]:
    """Group a stream of pairs or small batches into batches of ``batch_size`` pairs.

    Items (collections with ``n_pairs``) that already hold ``batch_size`` pairs pass through
    unchanged; smaller ones are concatenated (with ``concat(list_of_items)``) until they do.
    """
    pending: list[Any] = []
    count = 0
    for item in items:
        n = item.n_pairs
        if not pending and n >= batch_size:
            yield item
            continue
        pending.append(item)
        count += n
        if count >= batch_size:
            yield concat(pending)
            pending, count = [], 0
    if pending:
        yield concat(pending)


def histogram_batch(item: Any) -> Any:
    """One item of a stream as histogram pairs (an image pair (2, H, W) is a batch of one).

    The one-tensor tuples that a DataLoader over a TensorDataset yields are unpacked.
    """
    if isinstance(item, (list, tuple)) and len(item) == 1:
        item = item[0]
    if isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 3 and item.shape[0] == 2:
        return item[None]
    return item


def concat_histograms(parts: list[HistogramPairs]) -> HistogramPairs:
    """One batch of the pairs of several batches on the same supports."""
    joined = copy.copy(parts[0])  # shares the supports; only the weights are joined
    joined.a = torch.cat([p.a for p in parts])
    joined.b = torch.cat([p.b for p in parts])
    return joined
