"""A fitted dual potential as a user-facing object: values, forward map, inverse map."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from skmetaot._backend import as_float_tensor, kind_of
from skmetaot.estimators._standardise import Standardisation
from skmetaot.measures.pairs import check_weights
from skmetaot.nn.potentials import potential_gradient
from skmetaot.solvers.conjugate import solve_conjugate

#: Rows evaluated at once, so maps of millions of points run in bounded memory.
EVAL_CHUNK = 8192


class TransportPotential:
    """A convex (or nearly convex) potential ``f`` with its Brenier map and conjugate.

    Returned by ``predict_potentials``. numpy in gives numpy out; torch in gives torch out on
    the input's device.

    The network may act in standardised coordinates ``u = (x - shift) / scale`` (one shift and
    one positive scale for both measures of the problem, see :ref:`scale-free`); every method
    takes and returns the user's units: ``transform(x) = shift + scale * grad f_std(u)``,
    ``f(x) = scale^2 f_std(u) + <shift, x> - |shift|^2 / 2`` (so potential, conjugate and dual
    values scale by ``scale^2``), and the conjugate is solved in standardised coordinates, to
    ``conjugate_tol`` in those units, whatever the scale of the data.

    Points are validated by every method: they must be real numbers of shape (n, ``dim``)
    (integer arrays are converted to float; repeated points are allowed; an empty (0, ``dim``)
    array gives an empty result). Object, string and complex arrays raise :class:`TypeError`;
    NaN or inf, another shape, ragged lists and ``meta`` tensors (no data) raise
    :class:`ValueError` naming the argument.

    Parameters
    ----------
    potential : callable
        Torch function from standardised points (n, d) to values (n,).
    dim : int
        Dimension d.
    amortizer : callable, optional
        Torch function predicting the conjugate's argmin (the start of the conjugate solver),
        in standardised coordinates; the solver starts at ``y`` itself without it.
    conjugate_method : {"lbfgs", "adam"}, default="lbfgs"
    conjugate_tol : float, default=1e-3
    conjugate_max_iter : int, default=100
    device : torch.device, optional
        Where ``function`` lives.
    dtype : torch.dtype, default=torch.float32
    parameters : dict of str to numpy.ndarray, optional
        The parameters behind ``function`` (for inspection).
    shift : array-like of shape (d,), optional
        Centre of the standardisation (default: none, the network acts on ``x`` itself).
    scale : float, default=1.0
        Positive scale of the standardisation.

    Attributes
    ----------
    network : callable
        The ``potential`` given, in standardised coordinates.
    shift : ndarray of shape (d,)
    scale : float

    Examples
    --------
    >>> import numpy as np
    >>> quad = TransportPotential(lambda x: 0.5 * (x ** 2).sum(-1), dim=2)
    >>> quad.transform(np.ones((1, 2)))
    array([[1., 1.]], dtype=float32)

    The same quadratic in coordinates standardised around (3, -1) by a scale of 4 is still the
    identity map, with the same values:

    >>> far = TransportPotential(lambda u: 0.5 * (u ** 2).sum(-1), dim=2, shift=[3.0, -1.0],
    ...                          scale=4.0)
    >>> far.transform(np.ones((1, 2))), far(np.ones((1, 2)))
    (array([[1., 1.]], dtype=float32), array([1.], dtype=float32))
    """

    def __init__(self, potential: Callable[[torch.Tensor], torch.Tensor], dim: int, *,
                 amortizer: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 conjugate_method: str = "lbfgs", conjugate_tol: float = 1e-3,
                 conjugate_max_iter: int = 100, device: torch.device | None = None,
                 dtype: torch.dtype = torch.float32,
                 parameters: dict[str, np.ndarray] | None = None,
                 shift: Any = None, scale: float = 1.0) -> None:
        self.network = potential
        self.dim = int(dim)
        self.amortizer = amortizer
        self.conjugate_method = conjugate_method
        self.conjugate_tol = conjugate_tol
        self.conjugate_max_iter = conjugate_max_iter
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        self.parameters = parameters or {}
        shift = np.zeros(self.dim) if shift is None else np.asarray(shift, dtype=np.float64)
        if shift.shape != (self.dim,) or not np.isfinite(shift).all():
            raise ValueError(f"shift must be {self.dim} finite numbers, got {shift!r}")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite positive number, got {scale!r}")
        self.shift, self.scale = shift, float(scale)
        self._standardisation = Standardisation(torch.from_numpy(shift),
                                                torch.tensor(self.scale, dtype=torch.float64))

    def _points(self, points: Any, name: str) -> tuple[torch.Tensor, Any]:
        kind = kind_of(points)
        tensor = as_float_tensor(points, name, device=self.device)
        if tensor.dim() != 2 or tensor.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (n_samples, {self.dim}), got "
                             f"{tuple(tensor.shape)}")
        return tensor, kind

    def _chunked(self, points: Any, name: str, compute: Callable[[torch.Tensor], torch.Tensor],
                 dtype: torch.dtype | None = None) -> torch.Tensor:
        """``compute`` over chunks of the validated points, in ``dtype`` (or ``self.dtype``)."""
        tensor, _ = self._points(points, name)
        out = [compute(chunk).detach().to(dtype or self.dtype)
               for chunk in tensor.split(EVAL_CHUNK)]
        return torch.cat(out)

    def _mapped(self, points: Any, name: str,
                compute: Callable[[torch.Tensor], torch.Tensor]) -> Any:
        """:meth:`_chunked`, returned as the kind of array the user gave."""
        return kind_of(points).wrap(self._chunked(points, name, compute))

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        """Potential values ``f(x)`` of a torch tensor (n, d), in the user's units.

        Differentiable in ``x`` (``grad f`` is the forward map), in float64 or ``x``'s
        precision, whichever is finer; this is what :func:`skmetaot.conjugate` solves.
        """
        values = self.network(self._standardisation.apply(x, self.dtype).to(self.device))
        return self._standardisation.values(values.to(x.device), x).to(
            torch.promote_types(x.dtype, self.dtype))

    def __call__(self, x: Any) -> Any:
        """Potential values ``f(x)`` for points ``x`` (n, d); returns shape (n,)."""
        with torch.no_grad():
            return self._mapped(x, "x", self.potential)

    def transform(self, x: Any) -> Any:
        """The forward map ``grad f(x)`` of points ``x`` (n, d)."""
        standard = self._standardisation

        def forward(chunk: torch.Tensor) -> torch.Tensor:
            grad = potential_gradient(self.network, standard.apply(chunk, self.dtype))
            return standard.undo(grad.detach())

        return self._mapped(x, "x", forward)

    def inverse_transform(self, y: Any, solve: bool = True) -> Any:
        """The inverse map ``grad f*(y) = argmin_x f(x) - <x, y>`` (amortized, then solved).

        With ``solve=False``, the amortizer's prediction of the argmin alone (one forward
        pass, no solve); a potential without an amortizer raises a ``ValueError`` then.
        """
        standard = self._standardisation
        if solve:
            return self._mapped(y, "y", lambda chunk: standard.undo(self._solve(chunk).x))
        if self.amortizer is None:
            raise ValueError("solve=False returns the amortized inverse map, but this "
                             "potential has no amortizer; use solve=True")

        def predicted(chunk: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return standard.undo(self.amortizer(standard.apply(chunk, self.dtype)))

        return self._mapped(y, "y", predicted)

    def conjugate(self, y: Any) -> Any:
        """Conjugate values ``f*(y)`` (solved), shape (n,)."""
        return kind_of(y).wrap(self._conjugate_values(y, self.dtype))

    def _conjugate_values(self, y: Any, dtype: torch.dtype) -> torch.Tensor:
        return self._chunked(y, "y", lambda chunk: self._standardisation.values(
            self._solve(chunk).value, chunk), dtype)

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
        # In float64: far from the origin the values are large and the dual is their difference.
        with torch.no_grad():
            values = self._chunked(x, "x", self.potential, torch.float64).cpu()
        conj = self._conjugate_values(y, torch.float64).cpu()
        a = self._weights(a, values, "a (weights of x)")
        b = self._weights(b, conj, "b (weights of y)")
        return float(-(values * a).sum() - (conj * b).sum())

    @staticmethod
    def _weights(weights: Any, values: torch.Tensor, name: str) -> torch.Tensor:
        if len(values) == 0:
            raise ValueError(f"the points weighted by {name} form an empty measure (no points)")
        if weights is None:
            return torch.full_like(values, 1 / len(values))
        weights = check_weights(as_float_tensor(weights, name, dtype=torch.float64,
                                                 device=torch.device("cpu")), name)
        if len(weights) != len(values):
            raise ValueError(f"{name} has {len(weights)} entries but there are {len(values)} "
                             "points")
        return weights

    def _solve(self, y: torch.Tensor):
        """The conjugate problems of points ``y`` (user units), solved in standardised ones."""
        v = self._standardisation.apply(y, self.dtype)
        with torch.no_grad():
            start = self.amortizer(v) if self.amortizer is not None else v
        return solve_conjugate(self.network, v, start, method=self.conjugate_method,
                               tol=self.conjugate_tol, max_iter=self.conjugate_max_iter)

    def __repr__(self) -> str:
        return (f"TransportPotential(dim={self.dim}, conjugate_method={self.conjugate_method!r}, "
                f"n_parameters={sum(v.size for v in self.parameters.values())}, "
                f"scale={self.scale:.4g})")
