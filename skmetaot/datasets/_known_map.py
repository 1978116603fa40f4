"""Base class for pairs of measures whose optimal transport map is known exactly."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import Any, Union

import numpy as np
import torch

from skmetaot._backend import as_float_tensor, kind_of, resolve_dtype
from skmetaot.metrics import uvp as _uvp

#: What ``random_state`` arguments of this module accept.
RandomStateLike = Union[int, np.random.Generator, np.random.RandomState, None]

#: Rows per chunk when evaluating a map or potential, to bound the memory of large inputs.
_BATCH_ROWS = 8192


def as_generator(random_state: RandomStateLike) -> np.random.Generator:
    """Turn a ``random_state`` argument into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    random_state : int, Generator, RandomState or None
        An int seeds :func:`numpy.random.default_rng` (so ``random_state=12345`` reproduces the
        W2 benchmark's test set); a Generator is used as it is (and advanced); a legacy
        RandomState seeds a new Generator from draws of its stream (advancing it, so repeated
        calls differ); None draws fresh OS entropy.

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**32, size=4, dtype=np.uint64))
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(
        f"random_state must be an int, a numpy Generator or RandomState, or None; "
        f"got {type(random_state).__name__}"
    )


class KnownMapPair(ABC):
    """A source measure P and a target Q = T#P with the exact W2-optimal map T known.

    Subclasses provide the source sampler, the map and its potential; this class turns them into
    the public sampling, mapping and scoring interface shared by all such pairs.

    Parameters
    ----------
    dim : int
        Dimension of both measures.
    n_test : int
        Number of points in the fixed test set.
    test_seed : int
        Seed of :func:`numpy.random.default_rng` that draws ``x_test`` from P.
    dtype : {"float32", "float64"}
        Floating dtype of the samples and of the test set.

    Attributes
    ----------
    dim : int
    n_test : int
    dtype : numpy.dtype
    var_target : float
        Total variance of Q (the sum of the per-coordinate variances): the denominator of UVP.

    Examples
    --------
    A subclass gives the source sampler, the map and its potential; here P is uniform on
    [0, 1] and T doubles it:

    >>> import numpy as np
    >>> class Doubling(KnownMapPair):
    ...     var_target = 4 / 12
    ...     def _sample_source(self, n, rng):
    ...         return rng.uniform(size=(n, 1))
    ...     def _map(self, x):
    ...         return 2 * x
    ...     def _potential(self, x):
    ...         return (x**2).sum(1)
    >>> pair = Doubling(1, n_test=1000, test_seed=0)
    >>> xs, xt = pair.as_pair(5, random_state=0)
    >>> xs.shape, xt.dtype
    ((5, 1), dtype('float32'))
    >>> pair.uvp(pair.transport_map(pair.x_test)), round(pair.cosine(pair.Tx_test), 6)
    (0.0, 1.0)
    """

    var_target: float

    def __init__(self, dim: int, *, n_test: int, test_seed: int, dtype: str = "float32") -> None:
        self.dim = int(dim)
        self.n_test = int(n_test)
        self._test_seed = int(test_seed)
        torch_dtype = resolve_dtype(dtype)
        self.dtype = np.dtype(str(torch_dtype).removeprefix("torch."))

    # -- what subclasses implement ---------------------------------------------------------------

    @abstractmethod
    def _sample_source(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` points of P as a float64 array of shape (n, dim)."""

    @abstractmethod
    def _map(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) for a floating tensor of shape (n, dim), in the dtype and device of ``x``."""

    @abstractmethod
    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        """The convex potential whose gradient is T, shape (n,), dtype and device of ``x``."""

    # -- sampling --------------------------------------------------------------------------------

    def sample_source(self, n: int, random_state: RandomStateLike = None) -> np.ndarray:
        """Draw ``n`` independent samples of the source measure P.

        Parameters
        ----------
        n : int
        random_state : int, Generator, RandomState or None
            An int seeds :func:`numpy.random.default_rng`; a Generator is used (and advanced)
            as it is.

        Returns
        -------
        ndarray of shape (n, dim), dtype ``self.dtype``
        """
        return self._sample_source(check_count(n), as_generator(random_state)).astype(self.dtype)

    def sample_target(self, n: int, random_state: RandomStateLike = None) -> np.ndarray:
        """Draw ``n`` independent samples of the target measure Q = T#P.

        Parameters
        ----------
        n : int
        random_state : int, Generator, RandomState or None
            An int seeds :func:`numpy.random.default_rng`; a Generator is used (and advanced)
            as it is.

        Returns
        -------
        ndarray of shape (n, dim), dtype ``self.dtype``
        """
        # Map float64 source points so that the float32 output is rounded only once.
        x = self._sample_source(check_count(n), as_generator(random_state))
        return self.transport_map(x).astype(self.dtype)

    def as_pair(
        self, n: int, random_state: RandomStateLike = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh source samples and ``n`` independent fresh target samples.

        This is the ``(X_source, X_target)`` form that the estimators' ``fit`` accepts; the two
        arrays are not matched row by row.

        Parameters
        ----------
        n : int
        random_state : int, Generator, RandomState or None
            An int seeds :func:`numpy.random.default_rng`; a Generator is used (and advanced)
            as it is.

        Returns
        -------
        Xs, Xt : ndarray of shape (n, dim), dtype ``self.dtype``
        """
        rng = as_generator(random_state)
        return self.sample_source(n, rng), self.sample_target(n, rng)

    # -- the exact map ---------------------------------------------------------------------------

    def transport_map(self, x: Any) -> Any:
        """The exact optimal map T(x), the gradient of :meth:`potential`.

        Parameters
        ----------
        x : array-like or torch.Tensor of shape (n, dim) or (dim,)
            Float32/float64 inputs keep their dtype; a tensor keeps its device.

        Returns
        -------
        ndarray or torch.Tensor of the shape of ``x``
            numpy in, numpy out; torch in, torch out (detached).
        """
        return self._apply(self._map, x)

    def potential(self, x: Any) -> Any:
        """The convex potential whose gradient is :meth:`transport_map`.

        Parameters
        ----------
        x : array-like or torch.Tensor of shape (n, dim) or (dim,)

        Returns
        -------
        ndarray or torch.Tensor of shape (n,) (a 0-d array or tensor for one point)
        """
        return self._apply(self._potential, x)

    def _apply(self, function: Callable[[torch.Tensor], torch.Tensor], x: Any) -> Any:
        kind = kind_of(x)
        points = as_float_tensor(x, "x")
        single = points.ndim == 1
        if single:
            points = points[None]
        if points.ndim != 2 or points.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(points.shape)}")
        with torch.no_grad():  # chunks bound the memory of the hidden layers for large inputs
            out = torch.cat([function(chunk) for chunk in points.split(_BATCH_ROWS)])
        return kind.wrap(out[0] if single else out)

    # -- the fixed test set and the metrics ------------------------------------------------------

    @cached_property
    def _test_set(self) -> tuple[np.ndarray, np.ndarray]:
        x = self.sample_source(self.n_test, self._test_seed)
        # The map is evaluated in float64 so that a float32 test set is rounded only once.
        return x, self.transport_map(x.astype(np.float64)).astype(self.dtype)

    @property
    def x_test(self) -> np.ndarray:
        """Fixed test points from P, shape (n_test, dim), drawn with ``default_rng(test_seed)``.

        Drawn on first use and cached; each access returns a copy, so the scores of :meth:`uvp`
        and :meth:`cosine` cannot be changed by editing the array.
        """
        return self._test_set[0].copy()

    @property
    def Tx_test(self) -> np.ndarray:  # the benchmark's name, hence not snake case
        """The exact map at ``x_test``, shape (n_test, dim) (a copy, like ``x_test``)."""
        return self._test_set[1].copy()

    def _mapped_test(self, mapped: Any) -> np.ndarray:
        x_test = self._test_set[0]
        if callable(mapped):
            mapped = mapped(x_test.copy())
        if isinstance(mapped, torch.Tensor):
            mapped = mapped.detach().cpu().numpy()
        values = np.asarray(mapped, dtype=np.float64)
        if values.shape != x_test.shape:
            raise ValueError(
                f"mapped must be the map at x_test, of shape {x_test.shape}; got {values.shape}"
            )
        return values

    def uvp(self, mapped: Any) -> float:
        """Forward L2-UVP (%) of a fitted map on the test set.

        ``100 * mean_i |T_hat(x_i) - T(x_i)|^2 / var_target`` over ``x_test``.

        Parameters
        ----------
        mapped : array-like of shape (n_test, dim), or callable
            The fitted map evaluated at ``x_test`` (or the map itself, then applied to ``x_test``).

        Returns
        -------
        float
            0 for the exact map; about 100 for the constant map at the target mean.
        """
        return _uvp(self._mapped_test(mapped), self._test_set[1], self.var_target)

    def cosine(self, mapped: Any) -> float:
        """Forward cosine similarity between the fitted and the true displacements.

        A ratio of averages over ``x_test`` (not an average of per-point cosines)::

            mean <T(x) - x, T_hat(x) - x> / sqrt(mean |T(x) - x|^2 * mean |T_hat(x) - x|^2)

        Parameters
        ----------
        mapped : array-like of shape (n_test, dim), or callable
            As for :meth:`uvp`.

        Returns
        -------
        float
            In [-1, 1]; 1 for the exact map; 0 for the identity (by definition, as in the
            benchmark, since its displacement is zero).
        """
        x, mapped_true = (a.astype(np.float64) for a in self._test_set)
        true_step = mapped_true - x
        step = self._mapped_test(mapped) - x
        norm = np.mean(np.sum(true_step**2, 1)) * np.mean(np.sum(step**2, 1))
        if norm == 0.0:
            return 0.0
        return float(np.mean(np.sum(true_step * step, 1)) / np.sqrt(norm))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, n_test={self.n_test})"


def check_count(n: int) -> int:
    """Validate a sample count ``n`` (a non-negative integer) and return it as an int."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return int(n)
