"""Initial dual potentials for Sinkhorn, as objects sharing one interface.

An :class:`~skmetaot.Initializer` proposes the source potential f (cost units) for a batch of
problems; the solver derives g = g(f) exactly, so only f is needed. :func:`as_initializer`
turns every accepted form of ``init`` (a name, given potentials, an object, a fitted meta
estimator) into one, in one place; the solver then calls :meth:`Initializer.init_f` once per
batch. The functions :func:`~skmetaot.solvers.zeros_init` and
:func:`~skmetaot.solvers.gaussian_init` are the formulas on tensors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skmetaot._backend import as_float_tensor
from skmetaot._gaussian import bures_map, sqeuclidean_potential, weighted_moments
from skmetaot._softmin import log_weights
from skmetaot.solvers.sinkhorn import scale_on_support, update_potential

if TYPE_CHECKING:
    from skmetaot.geometry import Geometry
    from skmetaot.measures import MeasurePairs

#: What ``init`` accepts, for the error messages.
ACCEPTED = ("'zeros', 'gaussian', potentials f (an (N, n) array or a list of 1-D arrays), "
            "(f, g) or (None, g), an Initializer, or a fitted MetaSinkhornTransport or "
            "MetaSinkhornCloudTransport")


@dataclass(frozen=True)
class PairBatch:
    """One batch of problems as the solver sees it: what an :class:`~skmetaot.Initializer` is given.

    Attributes
    ----------
    pairs : MeasurePairs
        The whole collection being solved (on the solver's device and dtype).
    indices : list of int
        Which of its pairs are in this batch, in order.
    geometry : DenseGeometry, GridGeometry or OnlineGeometry
        The batch's kernel (its cost and ``epsilon``).
    x : torch.Tensor of shape (n, d) or (B, n, d)
        Source supports: shared by every pair, or one per pair, padded to the largest.
    a : torch.Tensor of shape (B, n)
        Source weights (zero on padding atoms).
    y : torch.Tensor of shape (m, d) or (B, m, d)
        Target supports.
    b : torch.Tensor of shape (B, m)
        Target weights.

    Examples
    --------
    >>> import torch
    >>> from skmetaot import as_pairs
    >>> from skmetaot.solvers.entropic import pair_geometry
    >>> pairs = as_pairs([(torch.rand(4, 2), torch.rand(5, 2)), (torch.rand(3, 2),
    ...                                                          torch.rand(6, 2))])
    >>> geometry, tensors = pair_geometry(pairs, [0, 1], epsilon=0.1, cost="sqeuclidean",
    ...                                   cost_matrix=None)
    >>> batch = PairBatch(pairs, [0, 1], geometry, *tensors)
    >>> batch.a.shape, batch.b.shape  # padded to the largest pair of the batch
    (torch.Size([2, 4]), torch.Size([2, 6]))
    """

    pairs: MeasurePairs
    indices: list[int]
    geometry: Geometry
    x: torch.Tensor
    a: torch.Tensor
    y: torch.Tensor
    b: torch.Tensor


class Initializer(ABC):
    """Where Sinkhorn starts: the source potential f of each problem of a batch.

    Subclass it and implement :meth:`init_f` to give :func:`skmetaot.sinkhorn` (and every
    solver that takes ``init=``) a start of your own. The fitted meta estimators
    (:class:`~skmetaot.MetaSinkhornTransport`, :class:`~skmetaot.MetaSinkhornCloudTransport`)
    are initializers: ``sinkhorn(pairs, init=model)`` starts from their predictions.

    Examples
    --------
    A start at ``f = -|x|^2`` (any f is valid: the solver computes g = g(f) from it):

    >>> import torch
    >>> from skmetaot import sinkhorn
    >>> class MinusSquares(Initializer):
    ...     def init_f(self, batch):
    ...         x = batch.x.expand(len(batch.indices), *batch.x.shape[-2:])
    ...         return -(x ** 2).sum(-1)
    >>> gen = torch.Generator().manual_seed(0)
    >>> pairs = [(torch.rand(5, 2, generator=gen), torch.rand(6, 2, generator=gen))]
    >>> bool(sinkhorn(pairs, epsilon=0.1, init=MinusSquares()).converged[0])
    True
    """

    #: Whether every f this initializer gives is finite by construction (its check is skipped).
    finite_by_construction: bool = False

    @abstractmethod
    def init_f(self, batch: PairBatch) -> torch.Tensor:
        """The initial source potential of each problem of ``batch``.

        Parameters
        ----------
        batch : PairBatch
            The problems, their padded tensors and their geometry.

        Returns
        -------
        torch.Tensor of shape (B, n)
            f in cost units, one row per problem, as wide as ``batch.a`` (values on
            zero-weight and padding atoms are ignored; they may be -inf).
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ZerosInitializer(Initializer):
    """The cold start, f = 0 (``init="zeros"``, the default).

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot import sinkhorn
    >>> a, b, C = np.full(3, 1 / 3), np.full(2, 0.5), np.array([[0., 1.], [1., 0.], [1., 1.]])
    >>> res = sinkhorn(a, b, C, epsilon=0.1, init=ZerosInitializer())
    >>> int(res.n_iter) == int(sinkhorn(a, b, C, epsilon=0.1, init="zeros").n_iter)
    True
    """

    finite_by_construction = True

    def init_f(self, batch: PairBatch) -> torch.Tensor:
        """``f = 0`` for every problem of ``batch`` (see :meth:`Initializer.init_f`)."""
        return zeros_init(batch.x, batch.a)


class GaussianInitializer(Initializer):
    """The potential of the OT map between Gaussian fits of the two measures (``"gaussian"``).

    Thornton & Cuturi (2022); the formula is :func:`~skmetaot.solvers.gaussian_init`. Exact for
    Gaussian measures and the squared Euclidean cost, a heuristic start otherwise.

    Examples
    --------
    >>> import torch
    >>> from skmetaot import sinkhorn
    >>> gen = torch.Generator().manual_seed(0)
    >>> pairs = [(torch.randn(100, 2, generator=gen),
    ...           2 + 0.5 * torch.randn(100, 2, generator=gen))]
    >>> cold = sinkhorn(pairs, epsilon=0.1, init=ZerosInitializer())
    >>> warm = sinkhorn(pairs, epsilon=0.1, init=GaussianInitializer())
    >>> bool(warm.n_iter[0] < cold.n_iter[0])
    True
    """

    def init_f(self, batch: PairBatch) -> torch.Tensor:
        """The Gaussian-map potential of each problem of ``batch``."""
        return gaussian_init(batch.x, batch.a, batch.y, batch.b)


class GivenPotentials(Initializer):
    """Start from potentials you already have: f, or g alone (then f is g's c-transform).

    What ``init=f``, ``init=(f, g)`` and ``init=(None, g)`` become.

    Parameters
    ----------
    f : array-like of shape (N, n) or (n,), or list of 1-D arrays, optional
        Source potentials in cost units, one row per pair (a list for pairs of different
        sizes). Values on zero-weight atoms are ignored (-inf is fine there).
    g : array-like of shape (N, m) or (m,), or list of 1-D arrays, optional
        Target potentials, used when ``f`` is None: the start is ``f = f(g)``.

    Raises
    ------
    ValueError
        If both are None; when solving, if a row has the wrong length or is not finite on an
        atom with mass (the message names the pair).

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot import sinkhorn
    >>> a, b, C = np.full(3, 1 / 3), np.full(2, 0.5), np.array([[0., 1.], [1., 0.], [1., 1.]])
    >>> cold = sinkhorn(a, b, C, epsilon=0.1, tol=1e-9)
    >>> warm = sinkhorn(a, b, C, epsilon=0.1, tol=1e-9, init=GivenPotentials(cold.f))
    >>> int(warm.n_iter) <= 1
    True
    """

    def __init__(self, f: Any = None, g: Any = None) -> None:
        if f is None and g is None:
            raise ValueError("init: GivenPotentials needs f or g, got neither")
        self.f, self.g = f, g

    def init_f(self, batch: PairBatch) -> torch.Tensor:
        """The given f of the batch's pairs, or f(g) from the given g."""
        if self.f is not None:
            return _gather_potential(self.f, batch.indices, batch.a, "init f")
        g = _finite_on_support(_gather_potential(self.g, batch.indices, batch.b, "init g"),
                               batch.b, "init g")
        epsilon = batch.geometry.epsilon
        scaled_g = scale_on_support(g, batch.b, epsilon)
        return epsilon * update_potential(batch.geometry, scaled_g, log_weights(batch.a), 1)

    def __repr__(self) -> str:
        given = "f" if self.f is not None else "g"
        return f"GivenPotentials({given}=...)"


def zeros_init(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The cold start: f = 0.

    Parameters
    ----------
    x : torch.Tensor of shape (n, d) or (B, n, d)
        Source supports (unused; kept so every initialiser has one signature).
    a : torch.Tensor of shape (B, n)
        Source weights.

    Returns
    -------
    torch.Tensor of shape (B, n)

    Examples
    --------
    >>> import torch
    >>> zeros_init(torch.rand(3, 2), torch.full((4, 3), 1 / 3))
    tensor([[0., 0., 0.],
            [0., 0., 0.],
            [0., 0., 0.],
            [0., 0., 0.]])
    """
    return torch.zeros_like(a)


def gaussian_init(
    x: torch.Tensor, a: torch.Tensor, y: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Potential of the closed-form OT map between Gaussian fits of the two measures.

    Fit N(m_a, S_a) to (x, a) and N(m_b, S_b) to (y, b); the Monge map for the squared Euclidean
    cost is ``T(x) = m_b + A (x - m_a)`` with
    ``A = S_a^{-1/2} (S_a^{1/2} S_b S_a^{1/2})^{1/2} S_a^{-1/2}``, and the matching dual potential
    for ``c(x, y) = |x - y|^2`` is, up to a constant::

        f(x) = |x|^2 - (x - m_a)^T A (x - m_a) - 2 <x, m_b>

    For other costs the same formula is a heuristic starting point.

    Parameters
    ----------
    x : torch.Tensor of shape (n, d) or (B, n, d)
    a : torch.Tensor of shape (B, n)
    y : torch.Tensor of shape (m, d) or (B, m, d)
    b : torch.Tensor of shape (B, m)

    Returns
    -------
    torch.Tensor of shape (B, n)
        f at the source points, centred to zero mean under a.

    Examples
    --------
    Between two Gaussian-like clouds the Gaussian initialisation is close to the solution, so
    Sinkhorn needs fewer iterations than from zeros:

    >>> import torch
    >>> from skmetaot import sinkhorn
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 2, generator=gen, dtype=torch.float64)
    >>> y = 3.0 + 0.5 * torch.randn(200, 2, generator=gen, dtype=torch.float64)
    >>> a = b = torch.full((1, 200), 1 / 200, dtype=torch.float64)
    >>> gaussian_init(x, a, y, b).shape
    torch.Size([1, 200])
    >>> cold = sinkhorn(a, b, x=x, y=y, epsilon=0.1, tol=1e-4, init="zeros")
    >>> warm = sinkhorn(a, b, x=x, y=y, epsilon=0.1, tol=1e-4, init="gaussian")
    >>> bool(warm.n_iter[0] < cold.n_iter[0])
    True
    """
    # f is unchanged when both supports move together: work relative to a point of x, so that
    # the moments below round relative to the clouds' spread, not to their distance from the
    # origin (float32 supports at 1000 + [0, 1]^2 would otherwise lose most digits of f).
    origin = x.detach()[..., :1, :]
    x, y = x - origin, y - origin
    mean_a, cov_a = weighted_moments(x, a)
    mean_b, cov_b = weighted_moments(y, b)
    dim = cov_a.shape[-1]
    # Degenerate fits (a single atom, collinear points) get a ridge relative to their scale.
    scale = (cov_a.diagonal(dim1=-2, dim2=-1).sum(-1) + cov_b.diagonal(dim1=-2, dim2=-1).sum(-1))
    floor = (scale / dim).clamp_min(torch.finfo(a.dtype).tiny) * 1e-6
    eye = torch.eye(dim, dtype=a.dtype, device=a.device)
    matrix, bias = bures_map(mean_a, cov_a + floor[:, None, None] * eye, mean_b,
                             cov_b + floor[:, None, None] * eye, floor=floor)
    points = x if x.ndim == 3 else x.expand(a.shape[0], *x.shape)
    f = sqeuclidean_potential(points, matrix, bias)
    return f - (a * f).sum(-1, keepdim=True)


def as_initializer(init: Any) -> Initializer:
    """The :class:`~skmetaot.Initializer` that an ``init=`` argument stands for.

    Parameters
    ----------
    init : None, str, array-like, tuple, list or Initializer
        ``None`` or ``"zeros"``: :class:`~skmetaot.ZerosInitializer`; ``"gaussian"``:
        :class:`~skmetaot.GaussianInitializer`; an array or a list of 1-D arrays of f,
        ``(f, g)`` or ``(None, g)``: :class:`~skmetaot.GivenPotentials`; an
        :class:`~skmetaot.Initializer` (a fitted meta estimator included): itself.

    Returns
    -------
    Initializer

    Raises
    ------
    ValueError
        If ``init`` is an unknown name or a tuple other than ``(f, g)``.
    TypeError
        If ``init`` is of another type.
    sklearn.exceptions.NotFittedError
        If ``init`` is an estimator that is not fitted yet.

    Examples
    --------
    >>> as_initializer("gaussian"), as_initializer(None)
    (GaussianInitializer(), ZerosInitializer())
    >>> as_initializer([[0.0, 1.0]])
    GivenPotentials(f=...)
    """
    if init is None:
        return ZerosInitializer()
    if isinstance(init, Initializer):
        if isinstance(init, BaseEstimator):
            _check_fitted(init)
        return init
    if isinstance(init, str):
        named = {"zeros": ZerosInitializer, "gaussian": GaussianInitializer}
        if init not in named:
            raise ValueError(f"init={init!r} is not supported; init accepts {ACCEPTED}")
        return named[init]()
    if isinstance(init, tuple):
        if len(init) != 2:
            raise ValueError(f"init as a tuple must be (f, g) or (None, g), got {len(init)} "
                             "items; for one potential per pair, pass a list or an array")
        return GivenPotentials(*init)
    if isinstance(init, (np.ndarray, torch.Tensor, list)):
        return GivenPotentials(init)
    raise TypeError(f"init of type {type(init).__name__} is not supported; init accepts "
                    f"{ACCEPTED}")


def _check_fitted(estimator: BaseEstimator) -> None:
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise NotFittedError(f"init={type(estimator).__name__}(...) is not fitted yet: fit it "
                             "before starting Sinkhorn from its predictions") from None


def refine_start(estimator: Initializer, init: Any) -> Initializer | str:
    """What a meta estimator's ``refine(..., init=init)`` solves from.

    ``"meta"`` is the estimator itself (its predictions); ``"zeros"`` and ``"gaussian"`` are
    passed on to the solver. Other starts go to :func:`skmetaot.sinkhorn` directly: ``refine``
    solves its pairs batch by batch, whose rows given potentials could not follow.

    Parameters
    ----------
    estimator : Initializer
        The fitted estimator whose ``refine`` is called.
    init : {"meta", "zeros", "gaussian"}

    Returns
    -------
    Initializer or str

    Raises
    ------
    ValueError
        If ``init`` is another string (checked before any work).
    TypeError
        If ``init`` is not a string.
    """
    accepted = "'meta', 'zeros', 'gaussian'"
    if not isinstance(init, str):
        raise TypeError(f"init of type {type(init).__name__} is not one of {accepted}; to start "
                        "from another initializer or from potentials, call "
                        "skmetaot.sinkhorn(pairs, init=...)")
    if init not in ("meta", "zeros", "gaussian"):
        raise ValueError(f"init={init!r} is not one of {accepted}")
    return estimator if init == "meta" else init


def initial_f(initializer: Initializer, batch: PairBatch) -> torch.Tensor:
    """``initializer.init_f(batch)``, checked: shape (B, n), finite where there is mass.

    The one place where the solver reads a start, so that a user's :class:`~skmetaot.Initializer`
    gets the same checks (and the same dtype and device conversion) as the built-in ones.

    Parameters
    ----------
    initializer : Initializer
    batch : PairBatch

    Returns
    -------
    torch.Tensor of shape (B, n)
        On ``batch.a``'s dtype and device; zero on atoms without mass (the solver ignores
        them there).

    Raises
    ------
    ValueError
        If f has another shape, or is NaN or infinite on an atom with mass.
    """
    f = initializer.init_f(batch)
    a = batch.a
    f = as_float_tensor(f, "init f", dtype=a.dtype, device=a.device, finite=False)
    if f.shape != a.shape:
        raise ValueError(f"init={initializer!r} gave f of shape {tuple(f.shape)} for a batch "
                         f"of {a.shape[0]} pairs with {a.shape[1]} source atoms; expected "
                         f"{tuple(a.shape)}")
    if initializer.finite_by_construction:
        return f
    return _finite_on_support(f, a, "init f")


def _gather_potential(values: Any, indices: list[int], like: torch.Tensor,
                      name: str) -> torch.Tensor:
    """Rows ``indices`` of user potentials: an (N, n) array, or a list of 1-D arrays."""
    if isinstance(values, (list, tuple)):
        out = torch.zeros_like(like)
        for k, i in enumerate(indices):
            row = as_float_tensor(values[i], f"{name}[{i}]", dtype=like.dtype, device=like.device,
                                  finite=False).reshape(-1)
            if row.shape[0] > like.shape[1]:
                raise ValueError(
                    f"{name}[{i}] has {row.shape[0]} entries, expected {like.shape[1]}")
            out[k, : row.shape[0]] = row
        return out
    tensor = as_float_tensor(values, name, dtype=like.dtype, device=like.device, finite=False)
    tensor = tensor.reshape(1, -1) if tensor.ndim == 1 else tensor
    if tensor.ndim != 2 or tensor.shape[1] != like.shape[1] or tensor.shape[0] <= max(indices):
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}, expected (n_pairs, {like.shape[1]})")
    return tensor[indices]


def _finite_on_support(values: torch.Tensor, weights: torch.Tensor, name: str) -> torch.Tensor:
    # NaN is refused everywhere, +-inf only where there is mass; one host sync for both.
    if bool((torch.isnan(values) | (~torch.isfinite(values) & (weights > 0))).any()):
        raise ValueError(f"{name} must be finite on atoms with positive weight")
    return torch.where(weights > 0, values, torch.zeros_like(values))
