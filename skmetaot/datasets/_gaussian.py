"""Pairs of Gaussians, whose optimal transport map and W2 distance are known in closed form."""

from __future__ import annotations

import numpy as np
import torch

from skmetaot._gaussian import (
    bures_map,
    bures_potential,
    bures_transport,
    bures_wasserstein_squared,
    check_moment_shapes,
    psd_power,
)
from skmetaot._validation import check_positive_int
from skmetaot.datasets._known_map import KnownMapPair, RandomStateLike, as_generator


def _random_spd(dim: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """``R diag(e) R^T`` with e uniform in [low, high] and R a Haar-random rotation."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))  # the sign fix makes q Haar-distributed
    eigenvalues = rng.uniform(low, high, size=dim)
    cov = (q * eigenvalues) @ q.T
    return (cov + cov.T) / 2


class GaussianPair(KnownMapPair):
    """Source N(m_a, S_a) and target N(m_b, S_b) with the closed-form optimal map.

    The W2-optimal map is affine, ``T(x) = m_b + A (x - m_a)`` with the symmetric positive definite
    ``A = S_a^{-1/2} (S_a^{1/2} S_b S_a^{1/2})^{1/2} S_a^{-1/2}``; it is the gradient of the
    convex quadratic ``0.5 x^T A x + (m_b - A m_a)^T x``. Build it with :func:`make_gaussian_pair`.

    Parameters
    ----------
    mean_source, cov_source : ndarray of shape (dim,), (dim, dim)
    mean_target, cov_target : ndarray of shape (dim,), (dim, dim)
        Covariances must be symmetric positive definite.
    n_test : int, default=4096
    test_seed : int, default=0
        Seed of :func:`numpy.random.default_rng` that draws ``x_test`` from the source.
    dtype : {"float32", "float64"}, default="float32"
        The dtype of the samples and of the test set.

    Attributes
    ----------
    mean_source, cov_source, mean_target, cov_target : ndarray (float64)
    transport_matrix : ndarray of shape (dim, dim)
        A, symmetric positive definite.
    transport_bias : ndarray of shape (dim,)
        ``m_b - A m_a``, so that ``T(x) = A x + transport_bias``.
    w2_squared : float
        ``|m_a - m_b|^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``.
    var_target : float
        ``tr(S_b)``, the UVP denominator.

    Examples
    --------
    >>> pair = GaussianPair(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
    >>> pair.transport_matrix, pair.transport_bias
    (array([[2., 0.],
           [0., 2.]]), array([1., 1.]))
    >>> pair.transport_map(np.array([[1.0, 0.0]]))
    array([[3., 1.]])
    >>> round(pair.w2_squared, 6)  # |m_a - m_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})
    4.0
    """

    def __init__(self, mean_source: np.ndarray, cov_source: np.ndarray, mean_target: np.ndarray,
                 cov_target: np.ndarray, *, n_test: int = 4096, test_seed: int = 0,
                 dtype: str = "float32") -> None:
        arrays = [np.array(a, dtype=np.float64) for a in
                  (mean_source, cov_source, mean_target, cov_target)]
        self.mean_source, self.cov_source, self.mean_target, self.cov_target = arrays
        dim = check_moment_shapes(*arrays, names=("mean_source", "cov_source", "mean_target",
                                                  "cov_target"))
        for name, cov in (("cov_source", self.cov_source), ("cov_target", self.cov_target)):
            if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() <= 0:
                raise ValueError(f"{name} must be symmetric positive definite")
        super().__init__(dim, n_test=n_test, test_seed=test_seed, dtype=dtype)

        moments = [torch.from_numpy(array) for array in arrays]
        matrix, bias = bures_map(*moments)
        self.transport_matrix, self.transport_bias = matrix.numpy(), bias.numpy()
        self.w2_squared = float(bures_wasserstein_squared(*moments))
        self.var_target = float(np.trace(self.cov_target))
        self._source_factor = psd_power(moments[1]).numpy()

    def _sample_source(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean_source + rng.standard_normal((n, self.dim)) @ self._source_factor.T

    def _affine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        matrix = torch.from_numpy(self.transport_matrix).to(dtype=x.dtype, device=x.device)
        bias = torch.from_numpy(self.transport_bias).to(dtype=x.dtype, device=x.device)
        return matrix, bias

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        return bures_transport(x, *self._affine(x))

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        return bures_potential(x, *self._affine(x))


def make_gaussian_pair(
    dim: int,
    *,
    random_state: RandomStateLike = None,
    n_test: int = 4096,
    eigenvalue_range: tuple[float, float] = (0.5, 2.0),
    mean_scale: float = 1.0,
    dtype: str = "float32",
) -> GaussianPair:
    """A random pair of Gaussians with its exact optimal map and W2 distance.

    Each mean is ``mean_scale`` times a standard normal vector. Each covariance is
    ``R diag(e) R^T`` with a Haar-random rotation R and eigenvalues e drawn uniformly from
    ``eigenvalue_range``: with the default (0.5, 2) the covariances are anisotropic and rotated but
    no worse than 4-conditioned, so both the map and Monte-Carlo estimates stay well behaved.

    Parameters
    ----------
    dim : int
        Dimension (>= 1).
    random_state : int, Generator, RandomState or None
        Draws the means, the covariances and then the seed of the test set; an int makes the whole
        pair, ``x_test`` included, reproducible.
    n_test : int, default=4096
        Number of source points in ``x_test``.
    eigenvalue_range : tuple of float, default=(0.5, 2.0)
        ``(low, high)`` with ``0 < low <= high``.
    mean_scale : float, default=1.0
    dtype : {"float32", "float64"}, default="float32"
        The dtype of the samples and of the test set.

    Returns
    -------
    GaussianPair

    Examples
    --------
    >>> pair = make_gaussian_pair(3, random_state=0)
    >>> xs, xt = pair.as_pair(1000, random_state=1)
    >>> xs.shape, xt.shape
    ((1000, 3), (1000, 3))
    >>> round(pair.uvp(pair.transport_map(pair.x_test)), 6)
    0.0
    >>> bool(pair.uvp(pair.x_test) > 0)
    True
    """
    dim = check_positive_int(dim, "dim")
    low, high = (float(v) for v in eigenvalue_range)
    if not 0 < low <= high:
        raise ValueError(f"eigenvalue_range must satisfy 0 < low <= high, got {eigenvalue_range}")
    rng = as_generator(random_state)
    mean_source = mean_scale * rng.standard_normal(dim)
    mean_target = mean_scale * rng.standard_normal(dim)
    cov_source = _random_spd(int(dim), low, high, rng)
    cov_target = _random_spd(int(dim), low, high, rng)
    test_seed = int(rng.integers(0, 2**63))
    return GaussianPair(mean_source, cov_source, mean_target, cov_target, n_test=n_test,
                        test_seed=test_seed, dtype=dtype)
