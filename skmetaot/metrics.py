"""Quality measures shared by tests, benchmarks and estimators."""

from __future__ import annotations

from typing import Any

import torch

from skmetaot._backend import as_float_tensor, kind_of
from skmetaot._gaussian import MOMENT_NAMES, bures_wasserstein_squared, check_moment_shapes

__all__ = ["dual_objective", "marginal_error", "uvp", "w2_gaussian"]


def marginal_error(plan: Any, a: Any, b: Any) -> Any:
    """L1 marginal error of eq. (7): ``|P 1 - a|_1 + |P^T 1 - b|_1``.

    Parameters
    ----------
    plan : array-like of shape (n, m) or (N, n, m)
    a : array-like of shape (n,) or (N, n)
    b : array-like of shape (m,) or (N, m)

    Returns
    -------
    float or array of shape (N,)
        In the kind of ``plan`` (a float for one plan).

    Examples
    --------
    >>> import numpy as np
    >>> round(float(marginal_error(np.full((2, 2), 0.25), np.array([0.5, 0.5]),
    ...                            np.array([0.7, 0.3]))), 6)
    0.4
    """
    kind = kind_of(plan, a, b)
    p = as_float_tensor(plan, "plan")
    a_t = as_float_tensor(a, "a", dtype=p.dtype, device=p.device)
    b_t = as_float_tensor(b, "b", dtype=p.dtype, device=p.device)
    err = (p.sum(-1) - a_t).abs().sum(-1) + (p.sum(-2) - b_t).abs().sum(-1)
    return float(err) if err.ndim == 0 else kind.wrap(err)


def dual_objective(f: Any, g: Any, a: Any, b: Any) -> Any:
    """Entropic dual objective ``<f, a> + <g, b>`` for potentials with ``g = g(f)``.

    With ``g = g(f)`` the plan has total mass one, so the exponential term of the dual is the
    constant ``eps`` and drops out. Atoms with zero weight contribute nothing, whatever their
    potential (it is -inf after a Sinkhorn update).

    Parameters
    ----------
    f, g : array-like of shape (n,), (m,) or (N, n), (N, m)
    a, b : array-like of the same shapes

    Returns
    -------
    float or array of shape (N,)

    Examples
    --------
    >>> import numpy as np
    >>> float(dual_objective(np.array([1.0, -np.inf]), np.array([2.0]), np.array([1.0, 0.0]),
    ...                      np.array([1.0])))
    3.0
    """
    kind = kind_of(f, g, a, b)
    tensors = [as_float_tensor(v, name, finite=False) for v, name in
               ((f, "f"), (g, "g"), (a, "a"), (b, "b"))]
    f_t, g_t, a_t, b_t = (t.to(tensors[0].dtype) for t in tensors)
    value = (torch.where(a_t > 0, f_t * a_t, 0).sum(-1)
             + torch.where(b_t > 0, g_t * b_t, 0).sum(-1))
    return float(value) if value.ndim == 0 else kind.wrap(value)


def uvp(mapped: Any, true_mapped: Any, target_variance: float | None = None) -> float:
    """Unexplained variance percentage, L2-UVP = 100 E|T_hat(x) - T(x)|^2 / Var(beta).

    Parameters
    ----------
    mapped : array-like of shape (n_samples, d)
        The estimated map at the evaluation points.
    true_mapped : array-like of shape (n_samples, d)
        The true map at the same points.
    target_variance : float, optional
        Total variance of the target measure; by default that of ``true_mapped``.

    Returns
    -------
    float
        In percent of the target variance.

    Examples
    --------
    >>> import numpy as np
    >>> uvp(np.zeros((4, 1)), np.array([[1.0], [-1.0], [1.0], [-1.0]]))
    100.0
    """
    est = as_float_tensor(mapped, "mapped", dtype=torch.float64)
    ref = as_float_tensor(true_mapped, "true_mapped", dtype=torch.float64)
    if est.shape != ref.shape:
        raise ValueError(f"mapped has shape {tuple(est.shape)}, true_mapped {tuple(ref.shape)}")
    variance = target_variance
    if variance is None:
        variance = float(ref.var(0, unbiased=False).sum())
    return float(100.0 * ((est - ref) ** 2).sum(-1).mean() / variance)


def w2_gaussian(mean_a: Any, cov_a: Any, mean_b: Any, cov_b: Any) -> float:
    """Closed-form squared W2 distance between two Gaussians (Bures-Wasserstein).

    ``W2^2 = |m_a - m_b|^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``.

    Parameters
    ----------
    mean_a, mean_b : array-like of shape (d,)
    cov_a, cov_b : array-like of shape (d, d)

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the shapes do not match (d,), (d, d), (d,), (d, d), or a value is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> round(w2_gaussian(np.zeros(2), np.eye(2), np.ones(2), np.eye(2)), 6)
    2.0
    """
    moments = [as_float_tensor(value, name, dtype=torch.float64) for value, name in
               zip((mean_a, cov_a, mean_b, cov_b), MOMENT_NAMES, strict=True)]
    check_moment_shapes(*moments)
    return float(bures_wasserstein_squared(*moments))
