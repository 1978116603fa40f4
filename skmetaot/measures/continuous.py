"""Collections of continuous measure pairs: point clouds or images, stored once, sampled per step.

A meta estimator over continuous measures sees the same measure in many pairs (every ordered
pair of 35 images is 1,190 pairs of 35 measures), so each distinct input object is converted
once and pairs are index pairs into the list of measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from skmetaot._backend import ArrayKind, as_float_tensor, check_has_data, kind_of
from skmetaot.datasets._color_images import image_to_measure
from skmetaot.measures import MeasurePairs, as_points_array
from skmetaot.measures.inputs import is_table, ndim_of
from skmetaot.measures.pairs import check_support, check_weights

#: Side of the square to which images are area-resized for the image encoder.
IMAGE_SIDE = 64
#: Largest number of points per measure the set encoder sees at prediction time.
ENCODE_POINTS = 4096


@dataclass
class ContinuousMeasure:
    """One measure: points (n, d), optional weights (n,), optional image (C, S, S) and shape."""

    points: torch.Tensor
    weights: torch.Tensor | None = None
    image: torch.Tensor | None = None
    image_shape: tuple[int, ...] | None = None
    kind: ArrayKind = ArrayKind()

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (d,) and covariance (d, d) of the measure, float64, computed once."""
        if not hasattr(self, "_moments"):
            points = self.points.double()
            weights = (self.weights if self.weights is not None
                       else torch.full((len(points),), 1.0 / len(points), dtype=torch.float64))
            mean = weights @ points
            centred = points - mean
            self._moments = (mean, (centred * weights[:, None]).T @ centred)
        return self._moments


def _image_measure(value: Any, name: str) -> ContinuousMeasure:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
    try:
        pixels = torch.from_numpy(image_to_measure(array))
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name}: {error}") from error
    height, width, channels = np.shape(array)
    if channels > 4:
        raise ValueError(f"{name} has shape {np.shape(array)}: an image must be (H, W, C) "
                         "with at most 4 channels")
    grid = pixels.T.reshape(1, channels, height, width)
    small = F.adaptive_avg_pool2d(grid, IMAGE_SIDE)[0]
    return ContinuousMeasure(pixels, None, small, (height, width, channels))


def _point_measure(value: Any, name: str) -> ContinuousMeasure:
    weights = None
    # (points, weights) when the first entry is a 2-D array: a list of two points has 1-D rows.
    if isinstance(value, (tuple, list)) and len(value) == 2 and ndim_of(value[0]) == 2:
        value, raw_weights = value
        weights = check_weights(as_float_tensor(raw_weights, f"{name} weights").double(),
                                 f"{name} weights")
    points = check_support(as_float_tensor(value, name), name)
    if weights is not None and len(weights) != len(points):
        raise ValueError(f"{name} has {len(points)} points but {len(weights)} weights")
    if weights is not None and bool((weights == weights[0]).all()):
        weights = None  # uniform: sampling and encoding take the fast path
    return ContinuousMeasure(points, weights)


def _measure(value: Any, name: str) -> ContinuousMeasure:
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError(f"{name} must be an array of points (n, d), a (points, weights) pair "
                        f"or an image (H, W, C), got {type(value).__name__}")
    check_has_data(value, name)
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 3:
        measure = _image_measure(value, name)
    else:
        measure = _point_measure(as_points_array(value), name)
    measure.kind = kind_of(value[0] if isinstance(value, (tuple, list)) else value)
    return measure


class MeasureCollection:
    """Pairs of continuous measures as index pairs into a list of distinct measures.

    Parameters
    ----------
    measures : list of ContinuousMeasure
    index : numpy.ndarray of shape (n_pairs, 2)
        ``index[k] = (i, j)``: pair k transports measure i to measure j.
    """

    def __init__(self, measures: list[ContinuousMeasure], index: np.ndarray) -> None:
        self.measures = measures
        self.index = index
        dims = {m.points.shape[1] for m in measures}
        if len(dims) != 1:
            raise ValueError(f"all measures must have the same dimension, got {sorted(dims)}")
        self.dim = dims.pop()
        self.has_images = all(m.image is not None for m in measures)

    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return len(self.index)

    def sample(self, pair_ids: np.ndarray, n_samples: int,
               generator: torch.Generator | Sequence[torch.Generator], device: torch.device,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n_samples`` points of each side of the pairs ``pair_ids``: (B, n, d) twice.

        ``generator`` is one generator, or one per pair of ``pair_ids`` (each pair's draws
        then do not depend on the pairs drawn with it).
        """
        sides = []
        for side in (0, 1):
            drawn = []
            for position, k in enumerate(pair_ids):
                own = (generator if isinstance(generator, torch.Generator)
                       else generator[position])
                measure = self.measures[self.index[k, side]]
                if measure.weights is None:
                    pick = torch.randint(len(measure.points), (n_samples,), generator=own)
                else:
                    pick = torch.multinomial(measure.weights, n_samples, replacement=True,
                                             generator=own)
                drawn.append(measure.points[pick])
            sides.append(torch.stack(drawn).to(device, dtype))
        return sides[0], sides[1]

    def moments(self, pair_ids: np.ndarray, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Means (B, d) and covariances (B, d, d), float64 on the CPU, of one side."""
        pairs = [self.measures[self.index[k, side]].moments() for k in pair_ids]
        return torch.stack([m for m, _ in pairs]), torch.stack([c for _, c in pairs])

    def images(self, pair_ids: np.ndarray, side: int, device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
        """Resized images (B, C, S, S) of one side of the pairs ``pair_ids``."""
        return torch.stack([self.measures[self.index[k, side]].image for k in pair_ids]).to(
            device, dtype)

    def encoding_points(self, pair_ids: np.ndarray, side: int, device: torch.device,
                        dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """All points of each measure (a fixed subsample beyond ENCODE_POINTS), zero-padded.

        Returns points (B, M, d) and weights (B, M) that sum to one per row, so the set
        encoder's prediction for a pair does not depend on a random draw.
        """
        clouds, masses = [], []
        for k in pair_ids:
            measure = self.measures[self.index[k, side]]
            points, weights = measure.points, measure.weights
            if len(points) > ENCODE_POINTS:
                keep = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))
                keep = keep[:ENCODE_POINTS]
                points = points[keep]
                weights = weights[keep] if weights is not None else None
            if weights is None:
                weights = torch.full((len(points),), 1.0 / len(points), dtype=torch.float64)
            clouds.append(points)
            masses.append(weights / weights.sum())
        size = max(len(c) for c in clouds)
        padded = torch.zeros(len(clouds), size, self.dim, dtype=dtype, device=device)
        mass = torch.zeros(len(clouds), size, dtype=dtype, device=device)
        for row, (cloud, weights) in enumerate(zip(clouds, masses, strict=True)):
            padded[row, :len(cloud)] = cloud.to(device, dtype)
            mass[row, :len(cloud)] = weights.to(device, dtype)
        return padded, mass


def concat_collections(parts: list[MeasureCollection]) -> MeasureCollection:
    """One collection of the pairs of several (each part's measures, its indices shifted)."""
    measures: list[ContinuousMeasure] = []
    index = []
    for part in parts:
        index.append(part.index + len(measures))
        measures += part.measures
    return MeasureCollection(measures, np.concatenate(index))


def as_measure_collection(data: Any) -> MeasureCollection:
    """Normalise the input forms of a continuous meta estimator into a MeasureCollection.

    Accepted: a :class:`~skmetaot.MeasurePairs`; a sequence of pairs ``(A, B)`` where each
    measure is a point cloud (n, d), a weighted ``(points, weights)`` pair or an image
    (H, W, C) (a measure over its pixel values, uint8 or floats in [0, 1]); an array of image
    pairs (N, 2, H, W, C); a single pair ``(A, B)``. An object that appears in several pairs is
    converted once.

    Parameters
    ----------
    data : object
        One of the forms above.

    Returns
    -------
    MeasureCollection
    """
    if isinstance(data, MeasurePairs):
        measures, rows = [], []
        for k in range(data.n_pairs):
            rows.append((len(measures), len(measures) + 1))
            measures.append(_point_measure((data.x[k], data.a[k]), f"pair {k} source"))
            measures.append(_point_measure((data.y[k], data.b[k]), f"pair {k} target"))
        return MeasureCollection(measures, np.asarray(rows, dtype=np.int64))
    if isinstance(data, (np.ndarray, torch.Tensor)):
        if data.ndim == 5 and data.shape[1] == 2:
            data = [(data[k, 0], data[k, 1]) for k in range(data.shape[0])]
        else:
            raise ValueError(f"an array input must hold image pairs of shape (N, 2, H, W, C), "
                             f"got shape {tuple(data.shape)}; pass point clouds as a sequence "
                             "of (Xs, Xt) pairs")
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Sequence):
        raise TypeError(f"cannot interpret a {type(data).__name__} as measure pairs; pass a "
                        "sequence of (Xs, Xt) pairs")
    if len(data) == 0:
        raise ValueError("no pairs were given (empty collection)")
    if _is_single_pair(data):
        data = [data]
    measures: list[ContinuousMeasure] = []
    seen: dict[int, int] = {}
    rows = []
    for k, pair in enumerate(data):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"pair {k}: expected (source, target), got {type(pair).__name__}")
        row = []
        for side, value in zip(("source", "target"), pair, strict=True):
            key = id(value)
            if key not in seen:
                seen[key] = len(measures)
                measures.append(_measure(value, f"pair {k} {side}"))
            row.append(seen[key])
        rows.append(row)
    if len({m.image is not None for m in measures}) > 1:
        raise ValueError("mix of images and point clouds: pass all measures in one form")
    dim = measures[rows[0][0]].points.shape[1]
    for k, row in enumerate(rows):
        for side, i in zip(("source", "target"), row, strict=True):
            if measures[i].points.shape[1] != dim:
                raise ValueError(f"pair {k} {side} has dimension "
                                 f"{measures[i].points.shape[1]}, but pair 0 source has {dim}")
    return MeasureCollection(measures, np.asarray(rows, dtype=np.int64))


def _is_single_pair(data: Sequence[Any]) -> bool:
    """``(A, B)`` with A and B measures, rather than a collection of pairs."""
    if len(data) != 2:
        return False
    first = data[0]
    if isinstance(first, (np.ndarray, torch.Tensor)) or is_table(first):
        return ndim_of(first) in (2, 3)
    return (isinstance(first, (tuple, list)) and len(first) == 2
            and isinstance(first[0], (np.ndarray, torch.Tensor)) and np.ndim(first[0]) == 2
            and np.ndim(first[1]) == 1)
