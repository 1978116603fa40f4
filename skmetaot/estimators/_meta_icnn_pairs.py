"""How MetaICNNTransport reads pairs and turns its predictions into per-pair maps.

A mixin of :class:`~skmetaot.MetaICNNTransport`: pairs read into a measure collection and
checked against the fitted estimator, standardised samples and encoder inputs, batches within a
memory budget, the predicted parameters, Gaussian baselines and potentials of each pair, and the
per-pair points that :meth:`~skmetaot.MetaICNNTransport.transform` and
:meth:`~skmetaot.MetaICNNTransport.inverse_transform` map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from skmetaot._backend import as_float_tensor, check_points_input
from skmetaot._validation import check_positive_int
from skmetaot.amortize.w2gn import AffineBaseline, gaussian_baseline
from skmetaot.estimators._potential import TransportPotential
from skmetaot.estimators._standardise import (
    Standardisation,
    pair_standardisations,
    standardised_encoder_inputs,
    standardised_samples,
)
from skmetaot.geometry import DENSE_CHUNK_ELEMENTS
from skmetaot.measures.continuous import (
    ENCODE_POINTS,
    MeasureCollection,
    as_measure_collection,
)
from skmetaot.nn.encoders import ENCODERS
from skmetaot.nn.hypernetwork import FunctionalPotential, GradientMap

#: The measure of each pair that each map moves: the forward map the source, its inverse the
#: target.
SIDES = {"transform": 0, "inverse_transform": 1}


class PairPredictions:
    """Pairs in, per-pair potentials and maps out (a mixin of MetaICNNTransport)."""

    def _collection(self, pairs: Any) -> MeasureCollection:
        collection = as_measure_collection(pairs)
        fitted = getattr(self, "n_features_in_", None)
        if fitted is not None and collection.dim != fitted:
            raise ValueError(f"the pairs have dimension {collection.dim}, but the estimator "
                             f"was fitted on dimension {fitted}")
        if self._encodes_images() and not collection.has_images:
            raise ValueError(f"this estimator encodes images (encoder={self.encoder_!r}); "
                             "pass the measures as images (H, W, C)")
        return collection

    def _sample(self, collection: MeasureCollection, pair_ids: np.ndarray, generator: Any,
                n_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised samples (B, n, d) of both sides of the pairs (n: ``n_samples``)."""
        return standardised_samples(collection, pair_ids, n_samples or self.n_samples,
                                    generator, self._device_, self._dtype_)

    def _encodes_images(self) -> bool:
        encoder = getattr(self, "encoder_", None)
        return encoder is not None and ENCODERS[encoder].inputs == "images"

    def _encoder_inputs(self, collection: MeasureCollection, pair_ids: np.ndarray, side: int,
                        samples: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """What the encoder reads of one side of the pairs, standardised per pair."""
        if samples is not None and not self._encodes_images():
            return (samples,)
        return standardised_encoder_inputs(collection, pair_ids, side, self._encodes_images(),
                                           self._device_, self._dtype_)

    def _batches(self, collection: MeasureCollection, batch_size: int | None,
                 refine: bool = False, ids: np.ndarray | None = None) -> list[np.ndarray]:
        """``ids`` (default: all pairs) in batches of ``batch_size`` pairs.

        ``batch_size`` is a method argument, not the training one; by default, as many pairs
        as keep a batch's activations within the memory budget.
        """
        ids = np.arange(collection.n_pairs) if ids is None else ids
        if batch_size is not None:
            size = check_positive_int(batch_size, "chunk_size")
        else:  # elements held per pair, at the default network widths
            dim = self.n_features_in_
            if refine:  # W2GN: samples through both ICNNs, with gradients and conjugates
                per_pair = 8 * self.n_samples * (dim + sum(self.icnn_hidden_sizes))
            else:  # what the encoder declares it holds for each of the two measures
                largest = max(len(m.points) for m in collection.measures)
                per_pair = 2 * ENCODERS[self.encoder_].elements_per_measure(
                    dim, min(largest, ENCODE_POINTS), self.encoder_features)
            size = max(1, DENSE_CHUNK_ELEMENTS // per_pair)
        return [ids[start:start + size] for start in range(0, len(ids), size)]

    def _predict_params(self, collection: MeasureCollection, batch_size: int | None = None,
                        ids: np.ndarray | None = None) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for chunk in self._batches(collection, batch_size, ids=ids):
                out.append(self.hypernetwork_(self._encoder_inputs(collection, chunk, 0),
                                              self._encoder_inputs(collection, chunk, 1)))
        return torch.cat(out)

    def _baselines(self, collection: MeasureCollection,
                   pair_ids: np.ndarray) -> AffineBaseline | None:
        """The Gaussian maps of the standardised pairs (None without a baseline)."""
        if self.baseline is None:
            return None
        standard = pair_standardisations(collection, pair_ids)
        return gaussian_baseline(*standard.moments(*collection.moments(pair_ids, 0)),
                                 *standard.moments(*collection.moments(pair_ids, 1))).to(
            self._device_, self._dtype_)

    def _potential(self, params: torch.Tensor, baseline: AffineBaseline | None = None,
                   standard: Standardisation | None = None) -> TransportPotential:
        """The potential of one pair from its parameters, baseline and standardisation."""
        n = self.icnn_.n_params
        b = baseline
        psi = FunctionalPotential(self.icnn_, params[:n], b and b.matrix, b and b.shift)
        psi_bar = FunctionalPotential(self.icnn_, params[n:], b and b.inverse_matrix,
                                      b and b.inverse_shift)
        parameters = {"psi": params[:n].cpu().numpy(), "psi_bar": params[n:].cpu().numpy()}
        if b is not None:
            parameters.update({name: getattr(b, name).cpu().numpy() for name in (
                "matrix", "shift", "inverse_matrix", "inverse_shift")})
        return TransportPotential(
            psi, self.n_features_in_, amortizer=GradientMap(psi_bar), conjugate_tol=1e-4,
            device=self._device_, dtype=self._dtype_, parameters=parameters,
            shift=None if standard is None else standard.shift.cpu().numpy(),
            scale=1.0 if standard is None else float(standard.scale))

    def _predicted_potentials(self, collection: MeasureCollection,
                              batch_size: int | None = None) -> list[TransportPotential]:
        params = self._predict_params(collection, batch_size)
        ids = np.arange(collection.n_pairs)
        baselines = self._baselines(collection, ids)
        standards = pair_standardisations(collection, ids)
        return [self._potential(row, baselines and baselines[k], standards[k])
                for k, row in enumerate(params)]

    def _points_per_pair(self, points: Any, n_pairs: int) -> list[Any]:
        """Validated per-pair points: one array (k, d) per pair, each kept in its own kind."""
        dim = self.n_features_in_
        if isinstance(points, (np.ndarray, torch.Tensor)) and points.ndim == 2:
            if n_pairs != 1:
                raise ValueError(f"points is one array of shape {tuple(points.shape)} but "
                                 f"there are {n_pairs} pairs: give a list of {n_pairs} arrays "
                                 f"(k, {dim}), one per pair")
            points = [points]
        elif isinstance(points, (np.ndarray, torch.Tensor)) and points.ndim == 3:
            points = list(points)  # (N, k, d): k points for each of N pairs
        if not isinstance(points, Sequence) or isinstance(points, (str, bytes)):
            raise TypeError(f"points must be a list of arrays (k, {dim}), one per pair, got "
                            f"{type(points).__name__}")
        if len(points) != n_pairs:
            raise ValueError(f"points holds {len(points)} arrays but there are {n_pairs} "
                             f"pairs: give one array (k, {dim}) per pair")
        checked = []
        for k, entry in enumerate(points):
            name = f"pair {k}: points"
            check_points_input(entry, name)
            tensor = as_float_tensor(entry, name)
            if tensor.ndim != 2 or tensor.shape[1] != dim:
                raise ValueError(f"{name} must have shape (n_samples, {dim}), got "
                                 f"{tuple(tensor.shape)}")
            checked.append(entry)
        return checked

    def _map_pairs(self, pairs: Any, points: Any, method: str, batch_size: int | None,
                   **options: Any) -> list[Any]:
        """Each pair's predicted map ``method`` applied to ``points`` or to its own samples."""
        collection = self._collection(pairs)
        given = None if points is None else self._points_per_pair(points, collection.n_pairs)
        side = SIDES[method]
        mapped = []
        for k, potential in enumerate(self._predicted_potentials(collection, batch_size)):
            apply = getattr(potential, method)
            if given is not None:
                mapped.append(apply(given[k], **options))
                continue
            measure = collection.measures[collection.index[k, side]]
            pushed = apply(measure.points.to(self._device_), **options)
            if measure.image_shape is not None:
                pushed = pushed.reshape(measure.image_shape)
            mapped.append(measure.kind.wrap(pushed))
        return mapped
