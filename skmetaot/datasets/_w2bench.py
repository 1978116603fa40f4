"""The Mix3toMix10 pairs of the Wasserstein-2 benchmark of Korotin et al. (NeurIPS 2021).

The source P is a mixture of three Gaussians; the target Q is the push-forward of P by the gradient
of a fixed convex potential (the sum of two input-convex networks, standardised), so the optimal
map is known exactly. The arrays are bundled in ``data/w2bench`` (MIT licence, see the README
there); the network is evaluated here in torch with its hand-coded gradient.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from skmetaot.datasets._known_map import KnownMapPair

#: Dimensions with bundled potentials (D = 256 is not available).
DIMS = (2, 4, 8, 16, 32, 64, 128)

#: Seed of ``numpy.random.default_rng`` that draws the benchmark's fixed test set.
TEST_SEED = 12345

#: Published forward L2-UVP (%) per D = 2, 4, ..., 128: Korotin et al. 2021 (W2GN, MM, and the
#: L and ID baselines, as quoted in the data README) and Amos 2023, Table 1 (regression + L-BFGS).
_PUBLISHED = {
    "W2GN": (0.1, 0.7, 2.6, 3.3, 6.0, 7.2, 2.0),
    "MM": (0.1, 0.3, 0.9, 2.2, 4.2, 3.2, 3.1),
    "L": (14.1, 14.9, 27.3, 41.6, 55.3, 63.9, 63.6),
    "ID": (32.7, 42.0, 58.6, 87.0, 121.0, 137.0, 145.0),
    "ICNN regression+L-BFGS (Amos 2023)": (0.26, 0.78, 1.64, 1.14, 1.93, 4.41, 1.69),
    "MLP regression+L-BFGS (Amos 2023)": (0.03, 0.22, 0.61, 0.77, 1.97, 2.08, 0.67),
}


@lru_cache(maxsize=len(DIMS))
def _read_arrays(dim: int) -> dict[str, np.ndarray]:
    """The bundled arrays of one dimension, without their ``D{dim}/`` prefix."""
    path = resources.files("skmetaot.datasets") / "data" / "w2bench" / "mix3tomix10.npz"
    prefix = f"D{dim}/"
    with resources.as_file(path) as file, np.load(file) as bundle:
        arrays = {k[len(prefix):]: bundle[k] for k in bundle.files if k.startswith(prefix)}
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def _tensor(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # A copy: the cached arrays are read-only, which torch.from_numpy does not support.
    return torch.from_numpy(np.array(array)).to(dtype=dtype, device=device)


def _celu_slope(u: torch.Tensor, alpha: float) -> torch.Tensor:
    # exp of the clamped argument: the positive branch must not overflow in the unused exp.
    return torch.where(u > 0, torch.ones_like(u), torch.exp(u.clamp(max=0) / alpha))


class _DenseICNN:
    """One DenseICNN potential (rank-r quadratic input layers, CELU, non-negative weights).

    ``forward`` returns the potential and its gradient together; the gradient is the hand-coded
    backward pass of section 3.1 of the data README, so no autograd graph is built.
    """

    def __init__(self, arrays: dict[str, np.ndarray], prefix: str, *, lam: float, alpha: float,
                 dtype: torch.dtype, device: torch.device) -> None:
        def get(key: str) -> torch.Tensor:
            return _tensor(arrays[prefix + key], dtype, device)

        self.quadratic = [
            (get(f"quadratic_layers.{i}.quadratic_decomposed"),  # A (D, r, h)
             get(f"quadratic_layers.{i}.weight"),  # W (h, D)
             get(f"quadratic_layers.{i}.bias"))  # b (h,)
            for i in range(3)
        ]
        self.convex = [get("convex_layers.0.weight"), get("convex_layers.1.weight")]
        self.final = get("final_layer.weight")[0]
        self.lam, self.alpha = lam, alpha

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # A is stored as (D, r, h); flattened to (D, r h) the contractions are plain matmuls,
        # much faster on CPU than the equivalent einsum.
        projections = [(x @ a.flatten(1)).reshape(len(x), *a.shape[1:])
                       for a, _, _ in self.quadratic]  # (n, r, h)
        q = [(p**2).sum(1) + x @ w.T + b
             for p, (_, w, b) in zip(projections, self.quadratic, strict=True)]
        u1 = q[0] @ self.convex[0].T + q[1]  # the first layer has no activation
        z1 = F.celu(u1, self.alpha)
        u2 = z1 @ self.convex[1].T + q[2]
        value = F.celu(u2, self.alpha) @ self.final + 0.5 * self.lam * (x**2).sum(1)
        g2 = self.final * _celu_slope(u2, self.alpha)
        g1 = (g2 @ self.convex[1]) * _celu_slope(u1, self.alpha)
        g0 = g1 @ self.convex[0]
        grad = self.lam * x
        for g, p, (a, w, _) in zip((g0, g1, g2), projections, self.quadratic, strict=True):
            weighted = (g[:, None, :] * p).flatten(1)
            grad = grad + 2 * weighted @ a.flatten(1).T + g @ w
        return value, grad


class W2BenchmarkPair(KnownMapPair):
    """One Mix3toMix10 pair of the W2 benchmark: P a 3-Gaussian mixture, Q = T*#P, T* exact.

    Build it with :func:`load_w2_benchmark`. The map is T*(x) = grad psi_tilde(x) with
    ``psi_tilde = (psi1 + psi2 - <m, .>) / sqrt(v)``, psi1 and psi2 the two bundled DenseICNNs.

    Parameters
    ----------
    dim : int
    dtype : {"float32", "float64"}, default="float32"
        The dtype of the samples and of the test set. The map computes in the dtype of its input.

    Attributes
    ----------
    dim : int
    n_test : int
        16384 for D <= 32, 8192 for D = 64 and 128 (as in the shared data set).
    centers : ndarray of shape (3, dim)
    maps : ndarray of shape (3, dim, dim)
    std : float
        A source point is ``centers[k] + std * maps[k] @ z`` with k uniform and z ~ N(0, I).
    mean_source, cov_source : ndarray
        The exact mean and covariance of P (float64).
    var_target : float
        Total variance of Q as the benchmark estimates it (2^14 samples); the UVP denominator.
    var_source : float
        The same estimate for P (exactly ``dim`` in theory); the inverse-direction denominator.
    cost : float
        ``0.5 * mean |x - T*(x)|^2`` on the shared test set, an estimate of W2^2 / 2.
    published : dict of str to float
        Published forward L2-UVP (%) of solvers and baselines for this dimension.

    Examples
    --------
    >>> pair = W2BenchmarkPair(2)
    >>> pair.n_test, pair.published["W2GN"]
    (16384, 0.1)
    >>> round(pair.uvp(pair.linear_map(pair.x_test)), 1)  # the "L" baseline
    14.0
    """

    def __init__(self, dim: int, *, dtype: str = "float32") -> None:
        super().__init__(dim, n_test=16384 if dim <= 32 else 8192, test_seed=TEST_SEED,
                         dtype=dtype)
        self._arrays = arrays = _read_arrays(self.dim)
        self.centers = arrays["centers"].astype(np.float64)
        self.maps = arrays["maps"].astype(np.float64)
        # The stored float32 std stands for the decimal 0.4, which is what drew the test set.
        self.std = round(float(arrays["std"]), 6)
        self.var_target = float(arrays["var_target"])
        self.var_source = float(arrays["var_source"])
        self.cost = float(arrays["cost"])
        self.published = {name: row[DIMS.index(self.dim)] for name, row in _PUBLISHED.items()}
        self._networks: dict[tuple[torch.dtype, torch.device], Any] = {}

    @property
    def mean_source(self) -> np.ndarray:
        """Exact mean of P, ``mean_k c_k`` (float64, shape (dim,))."""
        return self.centers.mean(0)

    @property
    def cov_source(self) -> np.ndarray:
        """Exact covariance of P, ``mean_k (std^2 M_k M_k^T + c_k c_k^T) - mu mu^T``."""
        second = np.mean([self.std**2 * m @ m.T + np.outer(c, c)
                          for c, m in zip(self.centers, self.maps, strict=True)], axis=0)
        return second - np.outer(self.mean_source, self.mean_source)

    def _sample_source(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # The order of draws (all components, then all normals) is the benchmark's recipe, so
        # that default_rng(12345) reproduces its x_test bit for bit.
        component = rng.integers(0, 3, size=n)
        z = rng.standard_normal((n, self.dim))
        x = np.empty((n, self.dim))
        for k in range(3):  # per component, to avoid an (n, dim, dim) gather
            rows = component == k
            x[rows] = self.centers[k] + self.std * (z[rows] @ self.maps[k].T)
        return x

    def _parameters(self, like: torch.Tensor) -> tuple[Any, Any, torch.Tensor, float]:
        key = (like.dtype, like.device)
        if key not in self._networks:
            lam = float(self._arrays["strong_convexity"])
            alpha = float(self._arrays["celu_alpha"])
            nets = [_DenseICNN(self._arrays, p, lam=lam, alpha=alpha, dtype=like.dtype,
                               device=like.device) for p in ("psi1.", "psi2.")]
            shift = _tensor(self._arrays["std_shift"], like.dtype, like.device)
            self._networks[key] = (*nets, shift, float(self._arrays["std_scale"]))
        return self._networks[key]

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        psi1, psi2, shift, scale = self._parameters(x)
        return (psi1.forward(x)[1] + psi2.forward(x)[1] - shift) / scale

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        psi1, psi2, shift, scale = self._parameters(x)
        return (psi1.forward(x)[0] + psi2.forward(x)[0] - x @ shift) / scale

    def linear_map(self, x: Any) -> Any:
        """The benchmark's "L" baseline: the OT map between Gaussian fits of P and Q.

        Parameters
        ----------
        x : array-like or torch.Tensor of shape (n, dim) or (dim,)

        Returns
        -------
        ndarray or torch.Tensor like ``x``
            ``x @ W.T + b`` with the stored ``linear_fwd_weight`` W and ``linear_fwd_bias`` b.
        """

        def affine(points: torch.Tensor) -> torch.Tensor:
            weight, bias = (_tensor(self._arrays[k], points.dtype, points.device)
                            for k in ("linear_fwd_weight", "linear_fwd_bias"))
            return points @ weight.T + bias

        return self._apply(affine, x)


def load_w2_benchmark(dim: int, *, dtype: str = "float32") -> W2BenchmarkPair:
    """Load the Mix3toMix10 pair of the W2 benchmark (Korotin et al. 2021) in dimension ``dim``.

    Parameters
    ----------
    dim : {2, 4, 8, 16, 32, 64, 128}
    dtype : {"float32", "float64"}, default="float32"
        The dtype of the samples and of the test set.

    Returns
    -------
    W2BenchmarkPair
        Samplers of P and Q, the exact map and potential, the fixed test set with UVP and cosine
        scores, the "L" baseline and the published scores.

    Raises
    ------
    ValueError
        If ``dim`` is not one of the bundled dimensions.

    Notes
    -----
    The test set ``x_test`` is drawn from P with ``numpy.random.default_rng(12345)``, as in the
    shared data set, and ``Tx_test`` is the exact map there. The normalising constants (``m``,
    ``v``, ``var_target``) are Monte-Carlo estimates from the data set's generation; they define
    the ground truth. Please cite Korotin, Li, Genevay, Solomon, Filippov and Burnaev, "Do Neural
    Optimal Transport Solvers Work? A Continuous Wasserstein-2 Benchmark", NeurIPS 2021.

    Examples
    --------
    >>> pair = load_w2_benchmark(2)
    >>> xs, xt = pair.as_pair(512, random_state=0)
    >>> xs.shape, xt.dtype
    ((512, 2), dtype('float32'))
    >>> round(pair.uvp(pair.Tx_test), 6)
    0.0
    >>> round(pair.uvp(pair.x_test), 1)  # the identity map ("ID here" in the data README)
    32.9
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or int(dim) not in DIMS:
        raise ValueError(f"dim={dim!r} is not available; choose one of {list(DIMS)}")
    return W2BenchmarkPair(int(dim), dtype=dtype)
