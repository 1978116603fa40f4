"""The two containers of pairs of discrete measures, and joining them.

* :class:`~skmetaot.HistogramPairs`: N pairs of histograms on supports shared by all pairs,
  stored as (N, n) and (N, m) weight matrices;
* :class:`~skmetaot.MeasurePairs`: N pairs of weighted point clouds, each with its own support
  and size.

Weights are validated (finite, non-negative, positive total mass) and then rescaled to sum to
one. What users pass is turned into these by :mod:`skmetaot.measures.inputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from skmetaot._backend import ArrayKind, as_float_tensor, kind_of
from skmetaot.geometry import GridGeometry, detect_grid

__all__ = ["HistogramPairs", "MeasurePairs", "check_support", "check_weights", "concat_pairs"]


def check_weights(weights: torch.Tensor, name: str) -> torch.Tensor:
    """Check one measure's weights and rescale them to sum to one."""
    if weights.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one weight per atom), got shape {tuple(weights.shape)}")
    if weights.numel() == 0:
        raise ValueError(f"{name} is an empty measure (no atoms)")
    if bool((weights < 0).any()):
        raise ValueError(f"{name} has negative weights (min {float(weights.min()):.3g})")
    total = weights.sum()
    if not float(total) > 0:
        raise ValueError(f"{name} has zero total mass")
    return weights / total


def check_support(points: torch.Tensor, name: str) -> torch.Tensor:
    """Check that one measure's support is a non-empty (n_points, dim) array, dim >= 1."""
    if points.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_points, dim), got shape {tuple(points.shape)}"
        )
    if points.shape[0] == 0:
        raise ValueError(f"{name} is an empty measure (no points)")
    if points.shape[1] == 0:
        raise ValueError(f"{name} has points of dimension 0")
    return points


class MeasurePairs:
    """N pairs of weighted point clouds, each pair with its own supports and sizes.

    Parameters
    ----------
    x, y : sequence of array-like of shape (n_k, d) and (m_k, d)
        Source and target supports of each pair. All pairs share the dimension d.
    a, b : sequence of array-like of shape (n_k,) and (m_k,), optional
        Source and target weights; uniform when omitted. Rescaled to sum to one.

    Attributes
    ----------
    n_pairs : int
        Number of pairs N.
    dim : int
        Dimension d of the support points.
    shared_support : bool
        False here; True for :class:`HistogramPairs`.
    kind : ArrayKind
        Whether the input was numpy or torch (results are returned in the same kind).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pairs = MeasurePairs([rng.normal(size=(5, 2))], [rng.normal(size=(7, 2))])
    >>> len(pairs), pairs.dim, pairs.source_sizes
    (1, 2, [5])
    """

    shared_support = False

    def __init__(
        self,
        x: Sequence[Any],
        y: Sequence[Any],
        a: Sequence[Any] | None = None,
        b: Sequence[Any] | None = None,
    ) -> None:
        for name, seq in (("x", x), ("y", y), ("a", a), ("b", b)):
            if seq is None and name in ("x", "y"):
                raise TypeError(f"{name} must be a sequence of point arrays, one per pair, "
                                "got None")
            if seq is not None and not isinstance(seq, Sequence):
                raise TypeError(f"{name} must be a sequence with one entry per pair")
        if len(x) != len(y):
            raise ValueError(f"got {len(x)} source supports but {len(y)} target supports")
        if len(x) == 0:
            raise ValueError("no pairs were given (empty collection)")
        self.kind: ArrayKind = kind_of(*x, *y)
        self.x: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []
        self.a: list[torch.Tensor] = []
        self.b: list[torch.Tensor] = []
        dtype = _common_dtype([*x, *y])
        for k in range(len(x)):
            xs = check_support(as_float_tensor(x[k], f"pair {k}: source points", dtype=dtype),
                                f"pair {k}: source points")
            ys = check_support(as_float_tensor(y[k], f"pair {k}: target points", dtype=dtype),
                                f"pair {k}: target points")
            self.x.append(xs)
            self.y.append(ys.to(xs.device))
            self.a.append(self._weights(a, k, xs, "source"))
            self.b.append(self._weights(b, k, ys, "target"))
        self.dim = self.x[0].shape[1]
        for k, (xs, ys) in enumerate(zip(self.x, self.y, strict=False)):
            if xs.shape[1] != self.dim or ys.shape[1] != self.dim:
                raise ValueError(
                    f"pair {k}: dimension mismatch (source d={xs.shape[1]}, target "
                    f"d={ys.shape[1]}, expected d={self.dim} as in pair 0)"
                )

    @staticmethod
    def _weights(weights: Sequence[Any] | None, k: int, points: torch.Tensor, side: str):
        name = f"pair {k}: {side} weights"
        n_points = points.shape[0]
        if weights is None or weights[k] is None:
            return torch.full((n_points,), 1.0 / n_points, dtype=points.dtype, device=points.device)
        w = as_float_tensor(weights[k], name, dtype=points.dtype, device=points.device)
        w = check_weights(w, name)
        if w.shape[0] != n_points:
            raise ValueError(f"{name} has {w.shape[0]} entries but there are {n_points} points")
        return w

    # -- collection protocol -------------------------------------------------------------
    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return len(self.a)

    def __len__(self) -> int:
        return self.n_pairs

    @property
    def shape(self) -> tuple[int]:
        """``(n_pairs,)``: scikit-learn's splitters index objects with a shape by ``X[indices]``.

        So cross-validation and ``GridSearchCV`` split a collection into collections (not
        into lists of one-pair collections).
        """
        return (self.n_pairs,)

    @property
    def source_sizes(self) -> list[int]:
        """Number of source atoms of each pair."""
        return [int(w.shape[-1]) for w in self.a]

    @property
    def target_sizes(self) -> list[int]:
        """Number of target atoms of each pair."""
        return [int(w.shape[-1]) for w in self.b]

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the stored tensors."""
        return self.a[0].dtype

    def __getitem__(self, index: Any) -> MeasurePairs:
        """Select pairs by an int, a slice or an index array; always returns a collection."""
        indices = _as_indices(index, self.n_pairs)
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for name in ("x", "y", "a", "b"):
            new.__dict__[name] = [getattr(self, name)[i] for i in indices]
        return new

    def to(self, dtype: torch.dtype | None = None, device: torch.device | None = None):
        """Return a copy with every tensor moved to ``dtype``/``device`` (the kind is kept)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for name in ("x", "y", "a", "b"):
            new.__dict__[name] = [t.to(dtype=dtype or t.dtype, device=device or t.device)
                                  for t in getattr(self, name)]
        return new

    def padded(self, indices: Sequence[int] | None = None):
        """Stack the selected pairs into padded tensors; padding atoms get zero weight.

        Parameters
        ----------
        indices : sequence of int, optional
            Which pairs (all by default).

        Returns
        -------
        x : torch.Tensor of shape (B, n_max, d)
        a : torch.Tensor of shape (B, n_max)
        y : torch.Tensor of shape (B, m_max, d)
        b : torch.Tensor of shape (B, m_max)
        """
        indices = range(self.n_pairs) if indices is None else indices
        return (*_pad([self.x[i] for i in indices], [self.a[i] for i in indices]),
                *_pad([self.y[i] for i in indices], [self.b[i] for i in indices]))

    def __repr__(self) -> str:
        sizes = f"n={self.source_sizes[:3]}..., m={self.target_sizes[:3]}..."
        return f"{type(self).__name__}(n_pairs={self.n_pairs}, dim={self.dim}, {sizes})"


class HistogramPairs(MeasurePairs):
    """N pairs of histograms on supports shared by every pair.

    Parameters
    ----------
    a : array-like of shape (N, n) or (n,)
        Source weights of each pair (rows are rescaled to sum to one). One row, or a 1-D
        array, is one measure shared by every pair (broadcast over ``b``'s pairs).
    b : array-like of shape (N, m) or (m,)
        Target weights of each pair; likewise broadcast when one measure is given.
    x : array-like of shape (n, d), optional
        Source support. Default: n points evenly spaced on [0, 1] (d = 1).
    y : array-like of shape (m, d), optional
        Target support. Default: ``x`` when n == m, else m points evenly spaced on [0, 1].

    Attributes
    ----------
    a, b : torch.Tensor of shape (N, n), (N, m)
        Normalised weights.
    x, y : torch.Tensor of shape (n, d), (m, d)
        Shared supports.
    grid_x, grid_y : list of torch.Tensor or None
        The 1-D axes when a support is a regular product grid (so that solvers can use a
        separable kernel), else None.

    Examples
    --------
    >>> import numpy as np
    >>> pairs = HistogramPairs(np.ones((4, 3)), np.ones((4, 3)))
    >>> pairs.a.shape, pairs.x.shape
    (torch.Size([4, 3]), torch.Size([3, 1]))
    >>> HistogramPairs(np.ones((4, 3)), np.ones(5)).b.shape  # one target for the four sources
    torch.Size([4, 5])
    """

    shared_support = True

    def __init__(self, a: Any, b: Any, x: Any = None, y: Any = None) -> None:
        self.kind = kind_of(a, b, x, y)
        dtype = _common_dtype([a, b, x, y])
        a_t = as_float_tensor(a, "a (source weights)", dtype=dtype, finite=False)
        b_t = as_float_tensor(b, "b (target weights)", dtype=dtype, device=a_t.device,
                              finite=False)
        for name, w in (("a (source weights)", a_t), ("b (target weights)", b_t)):
            if w.ndim not in (1, 2):
                raise ValueError(f"{name} must be 2-D (n_pairs, n_atoms), or 1-D for one "
                                 f"measure shared by every pair, got shape {tuple(w.shape)}")
        a_t, b_t = _broadcast_weights(a_t, b_t)
        if a_t.shape[0] == 0:
            raise ValueError("no pairs were given (empty collection)")
        self.a = _check_weight_rows(a_t, "source")
        self.b = _check_weight_rows(b_t, "target")
        n, m = self.a.shape[1], self.b.shape[1]
        self.x = self._support(x, n, "x (source support)")
        if y is None and n == m:
            self.y = self.x
        else:
            self.y = self._support(y, m, "y (target support)")
        if self.x.shape[1] != self.y.shape[1]:
            raise ValueError(
                f"dimension mismatch: x has d={self.x.shape[1]}, y has d={self.y.shape[1]}"
            )
        self.dim = self.x.shape[1]
        self.grid_x = detect_grid(self.x)
        self.grid_y = self.grid_x if self.y is self.x else detect_grid(self.y)
        # Shared by every selection of these pairs (same supports); see grid_geometry.
        self._grid_geometries: dict[float, GridGeometry] = {}

    def _support(self, points: Any, n_atoms: int, name: str) -> torch.Tensor:
        if points is None:
            return torch.linspace(0, 1, n_atoms, dtype=self.a.dtype, device=self.a.device)[:, None]
        support = check_support(
            as_float_tensor(points, name, dtype=self.a.dtype, device=self.a.device), name
        )
        if support.shape[0] != n_atoms:
            raise ValueError(f"{name} has {support.shape[0]} points but the weights have {n_atoms}")
        return support

    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return int(self.a.shape[0])

    @property
    def source_sizes(self) -> list[int]:
        """Number of source atoms of each pair (all equal)."""
        return [int(self.a.shape[1])] * self.n_pairs

    @property
    def target_sizes(self) -> list[int]:
        """Number of target atoms of each pair (all equal)."""
        return [int(self.b.shape[1])] * self.n_pairs

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the stored tensors."""
        return self.a.dtype

    def grid_geometry(self, epsilon: float) -> GridGeometry | None:
        """The separable squared Euclidean kernel of the grid supports, built once per epsilon.

        Selections of these pairs (``pairs[k]``) share the cache, so solving pairs one at a time
        does not rebuild the kernels for each.

        Parameters
        ----------
        epsilon : float
            Entropic regularisation.

        Returns
        -------
        GridGeometry or None
            None unless both supports are product grids.

        Examples
        --------
        >>> import torch
        >>> from skmetaot.measures import image_grid
        >>> pairs = HistogramPairs(torch.rand(3, 16), torch.rand(3, 16), image_grid(4, 4))
        >>> pairs[0].grid_geometry(0.1) is pairs[2].grid_geometry(0.1)
        True
        """
        if self.grid_x is None or self.grid_y is None:
            return None
        cache = self.__dict__.setdefault("_grid_geometries", {})
        epsilon = float(epsilon)
        if epsilon not in cache:
            cache[epsilon] = GridGeometry(self.grid_x, self.grid_y, epsilon)
        return cache[epsilon]

    def __getitem__(self, index: Any) -> HistogramPairs:
        """Select pairs by an int, a slice or an index array; always returns a collection."""
        indices = torch.as_tensor(_as_indices(index, self.n_pairs), dtype=torch.long,
                                  device=self.a.device)
        new = object.__new__(HistogramPairs)
        new.__dict__.update(self.__dict__)
        new.a, new.b = self.a[indices], self.b[indices]
        return new

    def to(self, dtype: torch.dtype | None = None, device: torch.device | None = None):
        """Return the pairs with every tensor moved to ``dtype``/``device`` (the kind is kept).

        A copy when something moves; the pairs themselves (and their cached kernels) when not.
        """
        def move(t):
            return t.to(dtype=dtype or t.dtype, device=device or t.device)

        if (dtype is None or dtype == self.a.dtype) and (device is None
                                                         or torch.device(device) == self.a.device):
            return self  # nothing moves: keep the cached kernels (a batch-1 solve reuses them)
        new = object.__new__(HistogramPairs)
        new.__dict__.update(self.__dict__)
        new.a, new.b, new.x = move(self.a), move(self.b), move(self.x)
        new.y = new.x if self.y is self.x else move(self.y)
        for name in ("grid_x", "grid_y"):
            axes = getattr(self, name)
            setattr(new, name, None if axes is None else [move(t) for t in axes])
        new._grid_geometries = {}  # the kernels are for the old dtype and device
        return new

    def padded(self, indices: Sequence[int] | None = None):
        """Return ``(x, a, y, b)`` for the selected pairs; supports are shared, so x is (n, d)."""
        rows = _rows(indices)
        return self.x, self.a[rows], self.y, self.b[rows]


def _rows(indices: Sequence[int] | None) -> slice | torch.Tensor:
    # A run of consecutive pairs (every batch of solve_pairs) is a view: no index tensor and no
    # gather, about 8 us of a batch-1 solve.
    if indices is None:
        return slice(None)
    indices = list(indices)
    if indices and indices == list(range(indices[0], indices[0] + len(indices))):
        return slice(indices[0], indices[0] + len(indices))
    return torch.as_tensor(indices, dtype=torch.long)


def concat_pairs(parts: Sequence[MeasurePairs]) -> MeasurePairs:
    """One collection of the pairs of several, in order.

    Histogram pairs on the same supports stay :class:`~skmetaot.HistogramPairs` (the supports are
    shared, the weights joined); any other mix becomes :class:`~skmetaot.MeasurePairs`.

    Parameters
    ----------
    parts : sequence of MeasurePairs

    Returns
    -------
    MeasurePairs

    Examples
    --------
    >>> import numpy as np
    >>> pairs = HistogramPairs(np.ones((4, 3)), np.ones((4, 3)))
    >>> joined = concat_pairs([pairs[[0]], pairs[[2, 3]]])
    >>> type(joined).__name__, len(joined)
    ('HistogramPairs', 3)
    """
    first = parts[0]
    if all(isinstance(p, HistogramPairs) and _same_tensor(p.x, first.x)
           and _same_tensor(p.y, first.y) for p in parts):
        joined = object.__new__(HistogramPairs)
        joined.__dict__.update(first.__dict__)
        joined.a = torch.cat([p.a.to(first.a) for p in parts])
        joined.b = torch.cat([p.b.to(first.b) for p in parts])
        return joined
    if len({p.dim for p in parts}) > 1:
        raise ValueError(f"the collections have points of dimensions {[p.dim for p in parts]}")
    sides: dict[str, list[torch.Tensor]] = {"x": [], "y": [], "a": [], "b": []}
    for part in parts:
        for k in range(part.n_pairs):
            x, a, y, b = part.padded([k])
            n, m = part.source_sizes[k], part.target_sizes[k]
            for name, value in (("x", x[0] if x.ndim == 3 else x), ("a", a[0]),
                                ("y", y[0] if y.ndim == 3 else y), ("b", b[0])):
                sides[name].append(value[: n if name in "xa" else m])
    joined = MeasurePairs(sides["x"], sides["y"], sides["a"], sides["b"])
    joined.kind = first.kind
    return joined


def _same_tensor(u: torch.Tensor, v: torch.Tensor) -> bool:
    return u is v or (u.shape == v.shape and bool(torch.equal(u, v.to(u))))


def _common_dtype(values: Sequence[Any]) -> torch.dtype | None:
    """float32 only when every floating input is float32; None lets conversion decide."""
    dtypes = set()
    for v in values:
        dt = getattr(v, "dtype", None)
        if dt in (np.float32, torch.float32):
            dtypes.add("float32")
        elif dt is not None and v is not None:
            dtypes.add("other")
    return torch.float32 if dtypes == {"float32"} else (torch.float64 if dtypes else None)


def _check_weight_rows(weights: torch.Tensor, side: str) -> torch.Tensor:
    if weights.shape[1] == 0:
        raise ValueError(f"the {side} measures are empty (0 atoms)")
    non_finite = ~torch.isfinite(weights).all(dim=1)
    if bool(non_finite.any()):
        raise ValueError(f"pair {int(non_finite.nonzero()[0])}: {side} weights contain NaN or inf")
    negative = (weights < 0).any(dim=1)
    if bool(negative.any()):
        k = int(negative.nonzero()[0])
        raise ValueError(
            f"pair {k}: {side} weights are negative (min {float(weights[k].min()):.3g})")
    totals = weights.sum(dim=1, keepdim=True)
    empty = totals[:, 0] <= 0
    if bool(empty.any()):
        raise ValueError(f"pair {int(empty.nonzero()[0])}: {side} weights have zero total mass")
    return weights / totals


def _broadcast_weights(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, n) and (N, m) weights: a 1-D or one-row side is repeated for the other's pairs."""
    a, b = (w[None] if w.ndim == 1 else w for w in (a, b))
    if a.shape[0] != b.shape[0]:
        if b.shape[0] == 1:
            b = b.expand(a.shape[0], -1)
        elif a.shape[0] == 1:
            a = a.expand(b.shape[0], -1)
        else:
            raise ValueError(f"a has {a.shape[0]} pairs but b has {b.shape[0]}; give as many "
                             "of each, or one measure (a 1-D array) to pair with every other")
    return a, b


def _as_indices(index: Any, n: int) -> list[int]:
    if isinstance(index, tuple):  # X[indices, ...], as scikit-learn's splitters write it
        if not (len(index) == 1 or (len(index) == 2 and index[1] is Ellipsis)):
            raise IndexError(f"pairs are indexed along one axis, got the key {index!r}")
        index = index[0]
    if isinstance(index, slice):
        return list(range(n))[index]
    if isinstance(index, (int, np.integer)):
        if not -n <= int(index) < n:
            raise IndexError(f"pair index {index} is out of range for {n} pairs")
        return [int(index) % n]
    indices = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
    if indices.dtype == bool:
        if indices.shape != (n,):
            raise IndexError(f"a boolean mask must have {n} entries, got shape {indices.shape}")
        indices = np.flatnonzero(indices)
    if not np.issubdtype(indices.dtype, np.integer) and indices.size:
        raise IndexError(f"pair indices must be integers, got dtype {indices.dtype}")
    flat = indices.ravel().astype(np.int64)
    if flat.size and (flat.min() < -n or flat.max() >= n):
        raise IndexError(f"pair index {int(flat[(flat < -n) | (flat >= n)][0])} is out of range "
                         f"for {n} pairs")
    return [int(i) % n for i in flat]


def _pad(points: list[torch.Tensor], weights: list[torch.Tensor]):
    size = max(int(w.shape[0]) for w in weights)
    ref = weights[0]
    out_x = ref.new_zeros((len(points), size, points[0].shape[1]))
    out_w = ref.new_zeros((len(points), size))
    for k, (p, w) in enumerate(zip(points, weights, strict=False)):
        out_x[k, : p.shape[0]] = p
        out_w[k, : w.shape[0]] = w
    return out_x, out_w
