"""Random families of measure pairs, the training tasks of meta (amortized) OT estimators."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skmetaot._validation import check_positive_int
from skmetaot.datasets._gaussian import GaussianPair, _random_spd
from skmetaot.datasets._known_map import KnownMapPair, RandomStateLike, as_generator

#: Box of the mixture means and range of the covariance eigenvalues of
#: :func:`make_gaussian_mixture_pairs`: components are small against the box, so mixtures are
#: visibly multi-modal.
_MIXTURE_MEAN_BOX = 2.0
_MIXTURE_EIGEN_RANGE = (0.05, 0.5)


def _check_range(value: object, name: str, *, integer: bool) -> tuple[float, float]:
    """``(low, high)`` with ``0 < low <= high`` (both >= 1 if ``integer``), as a tuple."""
    try:
        low, high = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    if integer:
        low, high = (check_positive_int(v, name) for v in (low, high))
    else:
        try:
            low, high = float(low), float(high)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold two numbers, got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
        raise ValueError(f"{name} must satisfy 0 < low <= high (finite), got {value!r}")
    return low, high


def make_gaussian_pairs(
    n_pairs: int,
    dim: int = 2,
    *,
    n_samples: int = 1024,
    mean_scale: float = 1.0,
    eigen_range: tuple[float, float] = (0.25, 2.0),
    n_test: int = 2048,
    random_state: RandomStateLike = None,
) -> list[GaussianPair]:
    """A family of random Gaussian pairs, each with its exact optimal map.

    For each pair, the source and target means are uniform in ``[-mean_scale, mean_scale]^dim``
    and the covariances are ``R diag(e) R^T`` with a Haar-random rotation R and eigenvalues e
    uniform in ``eigen_range``. Each pair gets its own ``test_seed``, drawn from the same
    generator, so the test sets of different pairs differ.

    Parameters
    ----------
    n_pairs : int
        Number of pairs (>= 1).
    dim : int, default=2
        Dimension (>= 1).
    n_samples : int, default=1024
        Default sample size per pair (>= 1), stored as the attribute ``n_samples`` of every pair;
        :func:`make_gaussian_pair_samples` draws that many when its ``n_samples`` is None.
    mean_scale : float, default=1.0
        Half-width of the box of the means (>= 0).
    eigen_range : tuple of float, default=(0.25, 2.0)
        ``(low, high)`` with ``0 < low <= high``: the covariances are at most
        ``high / low``-conditioned.
    n_test : int, default=2048
        Number of source points in each pair's ``x_test``.
    random_state : int, Generator, RandomState or None
        Draws every pair in turn (means, covariances, then the test seed); an int makes the
        whole family, test sets included, reproducible.

    Returns
    -------
    list of GaussianPair
        Each has the exact map (``transport_map``), ``uvp``, ``x_test`` and samplers
        (``sample_source``, ``sample_target``, ``as_pair``).

    Examples
    --------
    >>> pairs = make_gaussian_pairs(3, dim=2, random_state=0)
    >>> len(pairs), pairs[0].dim, pairs[0].x_test.shape
    (3, 2, (2048, 2))
    >>> round(pairs[1].uvp(pairs[1].transport_map(pairs[1].x_test)), 6)
    0.0
    """
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    dim = check_positive_int(dim, "dim")
    n_samples = check_positive_int(n_samples, "n_samples")
    n_test = check_positive_int(n_test, "n_test")
    low, high = _check_range(eigen_range, "eigen_range", integer=False)
    try:
        scale = float(mean_scale)
    except (TypeError, ValueError):
        scale = np.nan
    if isinstance(mean_scale, bool) or not (np.isfinite(scale) and scale >= 0):
        raise ValueError(f"mean_scale must be a finite number >= 0, got {mean_scale!r}")
    rng = as_generator(random_state)
    pairs = []
    for _ in range(n_pairs):
        mean_source = rng.uniform(-scale, scale, size=dim)
        cov_source = _random_spd(dim, low, high, rng)
        mean_target = rng.uniform(-scale, scale, size=dim)
        cov_target = _random_spd(dim, low, high, rng)
        test_seed = int(rng.integers(0, 2**63))
        pair = GaussianPair(mean_source, cov_source, mean_target, cov_target, n_test=n_test,
                            test_seed=test_seed)
        pair.n_samples = n_samples
        pairs.append(pair)
    return pairs


def make_gaussian_pair_samples(
    pairs: Sequence[KnownMapPair],
    n_samples: int | None = None,
    random_state: RandomStateLike = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Independent source and target samples of each pair: the input of a meta estimator's fit.

    Parameters
    ----------
    pairs : sequence of KnownMapPair
        For example the output of :func:`make_gaussian_pairs`.
    n_samples : int or None, default=None
        Samples per measure (>= 1). None uses each pair's ``n_samples`` attribute (set by
        :func:`make_gaussian_pairs`).
    random_state : int, Generator, RandomState or None
        One generator draws all the pairs' samples in turn.

    Returns
    -------
    list of (Xs, Xt)
        ``Xs`` and ``Xt`` are float32 arrays of shape (n_samples, dim), drawn independently (not
        matched row by row) with :meth:`KnownMapPair.as_pair`.

    Examples
    --------
    >>> pairs = make_gaussian_pairs(2, dim=3, random_state=0)
    >>> samples = make_gaussian_pair_samples(pairs, 256, random_state=1)
    >>> len(samples), samples[0][0].shape, samples[0][1].dtype
    (2, (256, 3), dtype('float32'))
    """
    if isinstance(pairs, KnownMapPair) or not isinstance(pairs, Sequence):
        raise TypeError("pairs must be a sequence (e.g. a list) of KnownMapPair objects")
    if len(pairs) == 0:
        raise ValueError("pairs is empty")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, KnownMapPair):
            raise TypeError(f"pairs[{i}] is a {type(pair).__name__}, not a KnownMapPair")
    counts = []
    for i, pair in enumerate(pairs):
        count = n_samples if n_samples is not None else getattr(pair, "n_samples", None)
        if count is None:
            raise ValueError(f"n_samples is None and pairs[{i}] has no n_samples attribute")
        counts.append(check_positive_int(count, "n_samples"))
    rng = as_generator(random_state)
    samples = []
    for pair, count in zip(pairs, counts, strict=True):
        xs, xt = pair.as_pair(count, rng)
        samples.append((xs.astype(np.float32, copy=False), xt.astype(np.float32, copy=False)))
    return samples


def _sample_random_mixture(
    dim: int, n_components: tuple[int, int], n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_samples`` points of a freshly drawn random Gaussian mixture, float64."""
    k = int(rng.integers(n_components[0], n_components[1] + 1))
    means = rng.uniform(-_MIXTURE_MEAN_BOX, _MIXTURE_MEAN_BOX, size=(k, dim))
    factors = np.stack([np.linalg.cholesky(_random_spd(dim, *_MIXTURE_EIGEN_RANGE, rng))
                        for _ in range(k)])
    weights = rng.dirichlet(np.ones(k))
    labels = rng.choice(k, size=n_samples, p=weights)
    noise = rng.standard_normal((n_samples, dim))
    return means[labels] + np.einsum("nij,nj->ni", factors[labels], noise)


def make_gaussian_mixture_pairs(
    n_pairs: int,
    dim: int = 2,
    *,
    n_components: int | tuple[int, int] = (1, 4),
    n_samples: int = 1024,
    random_state: RandomStateLike = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Samples of random pairs of Gaussian mixtures (no exact optimal map).

    Each measure of each pair is an independent random mixture: its number of components is
    uniform in the inclusive range ``n_components``, the component means are uniform in
    ``[-2, 2]^dim``, the covariances are ``R diag(e) R^T`` with a Haar-random rotation R and
    eigenvalues e uniform in [0.05, 0.5], and the weights are drawn from a flat Dirichlet
    distribution. The optimal map between two mixtures is not known in closed form, so these pairs
    come as samples only, with no ground truth to score against (use
    :func:`make_gaussian_pairs` for that).

    Parameters
    ----------
    n_pairs : int
        Number of pairs (>= 1).
    dim : int, default=2
        Dimension (>= 1).
    n_components : int or tuple of int, default=(1, 4)
        ``(low, high)`` with ``1 <= low <= high``, both included; an int k means exactly k.
    n_samples : int, default=1024
        Samples per measure (>= 1).
    random_state : int, Generator, RandomState or None
        Draws every pair in turn; an int makes the whole family reproducible.

    Returns
    -------
    list of (Xs, Xt)
        ``Xs`` and ``Xt`` are float32 arrays of shape (n_samples, dim).

    Examples
    --------
    >>> pairs = make_gaussian_mixture_pairs(4, dim=2, n_samples=500, random_state=0)
    >>> len(pairs), pairs[0][0].shape, pairs[0][1].dtype
    (4, (500, 2), dtype('float32'))
    """
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    dim = check_positive_int(dim, "dim")
    n_samples = check_positive_int(n_samples, "n_samples")
    if isinstance(n_components, (int, np.integer)) and not isinstance(n_components, bool):
        n_components = (n_components, n_components)
    low, high = _check_range(n_components, "n_components", integer=True)
    components = (int(low), int(high))
    rng = as_generator(random_state)
    pairs = []
    for _ in range(n_pairs):
        source = _sample_random_mixture(dim, components, n_samples, rng)
        target = _sample_random_mixture(dim, components, n_samples, rng)
        pairs.append((source.astype(np.float32), target.astype(np.float32)))
    return pairs
