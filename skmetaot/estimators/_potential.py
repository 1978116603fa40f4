"""A fitted dual potential as a user-facing object: values, forward map, inverse map."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from skmetaot._backend import as_float_tensor, kind_of
from skmetaot.measures import _check_weights
from skmetaot.nn.potentials import potential_gradient
from skmetaot.solvers.conjugate import solve_conjugate

#: Rows evaluated at once, so maps of millions of points run in bounded memory.
EVAL_CHUNK = 8192


class TransportPotential:
    """A convex (or nearly convex) potential ``f`` with its Brenier map and conjugate.

    Returned by ``predict_potentials``. numpy in gives numpy out; torch in gives torch out on
    the input's device.

    Points are validated by every method: they must be real numbers of shape (n, ``dim``)
    (integer arrays are converted to float; repeated points are allowed; an empty (0, ``dim``)
    array gives an empty result). Object, string and complex arrays raise :class:`TypeError`;
    NaN or inf, another shape, ragged lists and ``meta`` tensors (no data) raise
    :class:`ValueError` naming the argument.

    Parameters
    ----------
    potential : callable
        Torch function from points (n, d) to values (n,).
    dim : int
        Dimension d.
    amortizer : callable, optional
        Torch function predicting the conjugate's argmin (the start of the conjugate solver);
        the solver starts at ``y`` itself without it.
    conjugate_method : {"lbfgs", "adam"}, default="lbfgs"
    conjugate_tol : float, default=1e-3
    conjugate_max_iter : int, default=100
    device : torch.device, optional
        Where ``function`` lives.
    dtype : torch.dtype, default=torch.float32
    parameters : dict of str to numpy.ndarray, optional
        The parameters behind ``function`` (for inspection).

    Examples
    --------
    >>> import numpy as np
    >>> quad = TransportPotential(lambda x: 0.5 * (x ** 2).sum(-1), dim=2)
    >>> quad.transform(np.ones((1, 2)))
    array([[1., 1.]], dtype=float32)
    """

    def __init__(self, potential: Callable[[torch.Tensor], torch.Tensor], dim: int, *,
                 amortizer: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 conjugate_method: str = "lbfgs", conjugate_tol: float = 1e-3,
                 conjugate_max_iter: int = 100, device: torch.device | None = None,
                 dtype: torch.dtype = torch.float32,
                 parameters: dict[str, np.ndarray] | None = None) -> None:
        self.potential = potential
        self.dim = int(dim)
        self.amortizer = amortizer
        self.conjugate_method = conjugate_method
        self.conjugate_tol = conjugate_tol
        self.conjugate_max_iter = conjugate_max_iter
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        self.parameters = parameters or {}

    def _points(self, points: Any, name: str) -> tuple[torch.Tensor, Any]:
        kind = kind_of(points)
        tensor = as_float_tensor(points, name, dtype=self.dtype, device=self.device)
        if tensor.dim() != 2 or tensor.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (n_samples, {self.dim}), got "
                             f"{tuple(tensor.shape)}")
        return tensor, kind

    def _chunked(self, points: Any, name: str,
                 compute: Callable[[torch.Tensor], torch.Tensor]) -> Any:
        tensor, kind = self._points(points, name)
        out = [compute(chunk) for chunk in tensor.split(EVAL_CHUNK)]
        return kind.wrap(torch.cat(out).detach())

    def __call__(self, x: Any) -> Any:
        """Potential values ``f(x)`` for points ``x`` (n, d); returns shape (n,)."""
        with torch.no_grad():
            return self._chunked(x, "x", self.potential)

    def transform(self, x: Any) -> Any:
        """The forward map ``grad f(x)`` of points ``x`` (n, d)."""
        return self._chunked(x, "x", lambda chunk: potential_gradient(self.potential, chunk))

    def inverse_transform(self, y: Any) -> Any:
        """The inverse map ``grad f*(y) = argmin_x f(x) - <x, y>`` (amortized, then solved)."""
        return self._chunked(y, "y", lambda chunk: self._solve(chunk).x)

    def conjugate(self, y: Any) -> Any:
        """Conjugate values ``f*(y)`` (solved), shape (n,)."""
        return self._chunked(y, "y", lambda chunk: self._solve(chunk).value)

    def dual_value(self, x: Any, y: Any, a: Any = None, b: Any = None) -> float:
        """The dual objective ``V(f) = -E_alpha f - E_beta f*`` with solved conjugates.

        Higher is better; at the optimum ``W2^2 = E|x|^2 + E|y|^2 + 2 V``, and any other
        potential gives a lower bound of that.

        Parameters
        ----------
        x, y : array-like of shape (n, d), (m, d)
            Points of the source and the target measure.
        a, b : array-like of shape (n,), (m,), optional
            Their weights (uniform when omitted): finite, non-negative, with positive total
            mass; rescaled to sum to one.

        Returns
        -------
        float
        """
        values = torch.as_tensor(self(x)).double().cpu()
        conj = torch.as_tensor(self.conjugate(y)).double().cpu()
        a = self._weights(a, values, "a (weights of x)")
        b = self._weights(b, conj, "b (weights of y)")
        return float(-(values * a).sum() - (conj * b).sum())

    @staticmethod
    def _weights(weights: Any, values: torch.Tensor, name: str) -> torch.Tensor:
        if len(values) == 0:
            raise ValueError(f"the points weighted by {name} form an empty measure (no points)")
        if weights is None:
            return torch.full_like(values, 1 / len(values))
        weights = _check_weights(as_float_tensor(weights, name, dtype=torch.float64,
                                                 device=torch.device("cpu")), name)
        if len(weights) != len(values):
            raise ValueError(f"{name} has {len(weights)} entries but there are {len(values)} "
                             "points")
        return weights

    def _solve(self, y: torch.Tensor):
        with torch.no_grad():
            start = self.amortizer(y) if self.amortizer is not None else y
        return solve_conjugate(self.potential, y, start, method=self.conjugate_method,
                               tol=self.conjugate_tol, max_iter=self.conjugate_max_iter)

    def __repr__(self) -> str:
        return (f"TransportPotential(dim={self.dim}, conjugate_method={self.conjugate_method!r}, "
                f"n_parameters={sum(v.size for v in self.parameters.values())})")
