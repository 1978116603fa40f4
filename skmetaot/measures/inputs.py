"""From what users pass to pairs of measures: images, arrays, tables, lists of clouds.

:func:`~skmetaot.as_pairs` turns every accepted input form into a
:class:`~skmetaot.HistogramPairs` (shared supports) or a :class:`~skmetaot.MeasurePairs` (each
pair its own supports); :func:`~skmetaot.pairs_from_images` builds grid histograms from images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from skmetaot._backend import as_float_tensor, kind_of
from skmetaot.measures.pairs import HistogramPairs, MeasurePairs, concat_pairs

__all__ = ["as_pairs", "as_points_array", "image_grid", "is_table", "ndim_of", "pairs_from_images"]


def image_grid(height: int, width: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Pixel centres of an ``height x width`` image as points of [0, 1]^2, in row-major order.

    Parameters
    ----------
    height, width : int
    dtype : torch.dtype, default=torch.float64

    Returns
    -------
    torch.Tensor of shape (height * width, 2)

    Examples
    --------
    >>> image_grid(2, 3).shape
    torch.Size([6, 2])
    """
    rows = torch.linspace(0, 1, height, dtype=dtype)
    cols = torch.linspace(0, 1, width, dtype=dtype)
    return torch.cartesian_prod(rows, cols)


def pairs_from_images(images_a: Any, images_b: Any) -> HistogramPairs:
    """Histogram pairs from grayscale images on the pixel grid of [0, 1]^2.

    Each image is flattened and normalised to sum to one; the support is
    :func:`~skmetaot.measures.image_grid` (so solvers use the separable grid kernel for the
    squared Euclidean cost).

    Parameters
    ----------
    images_a, images_b : array-like of shape (N, H, W)
        Non-negative intensities (any numeric dtype; uint8 images are fine).

    Returns
    -------
    HistogramPairs

    Examples
    --------
    >>> import numpy as np
    >>> pairs = pairs_from_images(np.ones((2, 4, 4)), np.ones((2, 4, 4)))
    >>> pairs.a.shape, pairs.grid_x is not None
    (torch.Size([2, 16]), True)
    """
    kind = kind_of(images_a, images_b)
    imgs_a = as_float_tensor(images_a, "images_a", finite=False)
    imgs_b = as_float_tensor(images_b, "images_b", dtype=imgs_a.dtype, device=imgs_a.device,
                             finite=False)
    for name, imgs in (("images_a", imgs_a), ("images_b", imgs_b)):
        if imgs.ndim != 3:
            raise ValueError(f"{name} must have shape (N, H, W), got {tuple(imgs.shape)}")
        bad = ~torch.isfinite(imgs.flatten(1)).all(dim=1)
        if bool(bad.any()):
            raise ValueError(f"pair {int(bad.nonzero()[0])}: {name} contains NaN or infinite "
                             "values")
    if imgs_a.shape[0] != imgs_b.shape[0]:
        raise ValueError(
            f"images_a has {imgs_a.shape[0]} images but images_b has {imgs_b.shape[0]}")
    grid_a = image_grid(*imgs_a.shape[1:], dtype=imgs_a.dtype).to(imgs_a.device)
    grid_b = image_grid(*imgs_b.shape[1:], dtype=imgs_a.dtype).to(imgs_a.device)
    pairs = HistogramPairs(imgs_a.flatten(1), imgs_b.flatten(1), grid_a,
                           None if imgs_a.shape[1:] == imgs_b.shape[1:] else grid_b)
    pairs.kind = kind
    return pairs


def as_pairs(data: Any, *, allow_single: bool = True) -> MeasurePairs:
    """Normalise any accepted input form into a :class:`MeasurePairs`.

    Accepted forms:

    1. a :class:`MeasurePairs` or :class:`HistogramPairs` (returned unchanged);
    2. an array of image pairs of shape (N, 2, H, W) (grayscale intensities);
    3. a sequence of pairs ``(Xs, Xt)`` of point clouds (uniform weights) or ``((Xs, a), (Xt, b))``
       weighted ones, with sizes free to vary between pairs;
    4. a single pair ``(Xs, Xt)`` or ``((Xs, a), (Xt, b))`` when ``allow_single`` is true.

    Parameters
    ----------
    data : object
        One of the forms above.
    allow_single : bool, default=True
        Whether a single pair is accepted (as a collection of one).

    Returns
    -------
    MeasurePairs

    Raises
    ------
    TypeError
        If ``data`` is not one of the accepted forms, or holds object, string or complex arrays.
    ValueError
        If the values are invalid: NaN or inf, negative weights, zero total mass, empty measures,
        mismatched dimensions, ragged lists, tensors on the ``meta`` device (no data). The
        message names the pair index and the problem.

    Notes
    -----
    Integer and boolean arrays are converted to float64; torch tensors on any device holding
    data are accepted. Repeated (duplicate) support points are allowed.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> one = (rng.normal(size=(10, 2)), rng.normal(size=(12, 2)))
    >>> len(as_pairs(one)), len(as_pairs([one, one]))
    (1, 2)
    """
    if isinstance(data, MeasurePairs):
        return data
    if (isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and len(data)
            and all(isinstance(part, MeasurePairs) for part in data)):
        return concat_pairs(data)  # e.g. what a splitter's list indexing makes of a collection
    if isinstance(data, np.ndarray) and data.dtype == object:
        raise TypeError("an object array cannot be read as measure pairs; pass a list of "
                        "(Xs, Xt) pairs or a numeric (N, 2, H, W) array of images")
    if isinstance(data, (np.ndarray, torch.Tensor)):
        if data.ndim == 4 and data.shape[1] == 2:
            return pairs_from_images(data[:, 0], data[:, 1])
        raise ValueError(
            "an array input must hold image pairs of shape (N, 2, H, W), got shape "
            f"{tuple(data.shape)}; pass point clouds as a sequence of (Xs, Xt) pairs"
        )
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Sequence):
        raise TypeError(
            f"cannot interpret a {type(data).__name__} as measure pairs; pass a MeasurePairs, "
            "an (N, 2, H, W) array of images or a sequence of (Xs, Xt) pairs"
        )
    if len(data) == 0:
        raise ValueError("no pairs were given (empty collection)")
    if _is_pair(data):
        if not allow_single:
            raise TypeError(
                "a single pair (Xs, Xt) was given where a collection of pairs is needed")
        data = [data]
    for k, pair in enumerate(data):
        if not _is_pair(pair):
            raise TypeError(
                f"pair {k}: expected (Xs, Xt) with 2-D point arrays or ((Xs, a), (Xt, b)), got "
                f"{_describe(pair)}"
            )
    sources = [_split_measure(pair[0]) for pair in data]
    targets = [_split_measure(pair[1]) for pair in data]
    return MeasurePairs([s[0] for s in sources], [t[0] for t in targets],
                        [s[1] for s in sources], [t[1] for t in targets])


# -- helpers ------------------------------------------------------------------------------------
def ndim_of(obj: Any) -> int | None:
    """Dimensions of an array, table or nested list; None for ragged or other objects."""
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.ndim
    if is_table(obj):
        return 2
    if isinstance(obj, (list, tuple)):
        try:
            return np.asarray(obj).ndim if np.asarray(obj).dtype != object else None
        except ValueError:
            return None
    return None


def is_table(obj: Any) -> bool:
    """A 2-D array-like that is not an array: a pandas (or polars) DataFrame of points."""
    shape = getattr(obj, "shape", None)
    return (not isinstance(obj, (np.ndarray, torch.Tensor, MeasurePairs))
            and hasattr(obj, "__array__") and isinstance(shape, tuple) and len(shape) == 2)


def as_points_array(obj: Any) -> Any:
    """A DataFrame of points as a numpy array (its values); anything else unchanged.

    Parameters
    ----------
    obj : object

    Returns
    -------
    object
        ``np.asarray(obj)`` for a DataFrame, else ``obj``.

    Examples
    --------
    >>> import pandas as pd
    >>> as_points_array(pd.DataFrame({"u": [0.0, 1.0], "v": [2.0, 3.0]})).shape
    (2, 2)
    """
    return np.asarray(obj) if is_table(obj) else obj


def _is_measure(obj: Any) -> bool:
    """A measure is a 2-D array of points, or a (points, weights) pair of a 2-D and a 1-D array."""
    if ndim_of(obj) == 2:
        return True
    return (isinstance(obj, (list, tuple)) and len(obj) == 2
            and ndim_of(obj[0]) == 2 and ndim_of(obj[1]) == 1)


def _is_pair(obj: Any) -> bool:
    return (isinstance(obj, (list, tuple)) and len(obj) == 2
            and _is_measure(obj[0]) and _is_measure(obj[1]))


def _split_measure(measure: Any) -> tuple[Any, Any]:
    if isinstance(measure, (list, tuple)) and ndim_of(measure[0]) == 2 and ndim_of(measure[1]) == 1:
        return as_points_array(measure[0]), as_points_array(measure[1])
    return as_points_array(measure), None


def _describe(obj: Any) -> str:
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of length {len(obj)}"
    shape = getattr(obj, "shape", None)
    if shape is None:
        return type(obj).__name__
    return f"{type(obj).__name__} with shape {tuple(shape)}"
