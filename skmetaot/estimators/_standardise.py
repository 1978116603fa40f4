"""One common similarity for the two measures of a W2 problem, so that training is scale-free.

Wasserstein-2 maps commute with a similarity applied to both measures at once: if ``T`` is the
optimal map from alpha to beta and ``S(x) = (x - m) / s`` (one shift ``m`` and one positive
scale ``s`` for both measures), then ``S o T o S^{-1}`` is the optimal map between the
standardised measures ``S#alpha`` and ``S#beta``. The W2 estimators train their networks on
standardised points and map every input and output back, so their results do not depend on the
units of the data, and tolerances, learning rates and initialisations tuned at unit scale hold
at any scale. (A separate scale per coordinate would not commute with the map.)

A potential ``f_std`` of the standardised problem is the potential
``f(x) = s^2 f_std((x - m) / s) + <m, x> - |m|^2 / 2`` of the original one: ``grad f = T``, the
conjugate transforms the same way, and ``W2^2 = E|x|^2 + E|y|^2 + 2 V(f)`` holds in the user's
units, with ``V(f) = s^2 V(f_std) - s <m, E u + E v> - |m|^2`` for the standardised samples
``u, v``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from skmetaot.measures.continuous import MeasureCollection


def _dims(tensor: torch.Tensor, extra: int) -> torch.Tensor:
    """``tensor`` with ``extra`` trailing unit dimensions (to broadcast over points)."""
    return tensor.reshape(*tensor.shape, *([1] * extra))


@dataclass
class Standardisation:
    """The similarity ``x -> (x - shift) / scale``, one per problem (batched when ``shift`` is).

    Attributes
    ----------
    shift : torch.Tensor of shape (..., d), float64
        The centre ``m`` of the problem's two measures.
    scale : torch.Tensor of shape (...), float64
        Their common positive scale ``s``.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def from_moments(cls, mean_a: torch.Tensor, variance_a: torch.Tensor,
                     mean_b: torch.Tensor, variance_b: torch.Tensor) -> Standardisation:
        """The centre and root-mean-square radius of the equal mixture of two measures.

        Parameters
        ----------
        mean_a, mean_b : torch.Tensor of shape (..., d)
            Means of the two measures.
        variance_a, variance_b : torch.Tensor of shape (...)
            Their total variances (traces of the covariances).

        Returns
        -------
        Standardisation
            ``shift = (mean_a + mean_b) / 2`` and ``scale`` the root mean square, per
            coordinate, of the distance to it; 1 when both measures are one and the same
            point (any scale is exact then).
        """
        mean_a, mean_b = mean_a.double(), mean_b.double()
        shift = (mean_a + mean_b) / 2
        spread = (variance_a.double() + variance_b.double() + ((mean_a - shift) ** 2).sum(-1)
                  + ((mean_b - shift) ** 2).sum(-1))
        scale = (spread / (2 * shift.shape[-1])).sqrt()
        scale = torch.where(torch.isfinite(scale) & (scale > 0), scale, torch.ones_like(scale))
        return cls(shift, scale)

    @classmethod
    def from_points(cls, x: torch.Tensor, a: torch.Tensor, y: torch.Tensor,
                    b: torch.Tensor) -> Standardisation:
        """:meth:`from_moments` of two weighted point clouds (n, d), (m, d) with weights."""
        moments = []
        for points, weights in ((x, a), (y, b)):
            points, weights = points.double(), weights.double() / weights.double().sum()
            mean = weights @ points
            moments += [mean, weights @ ((points - mean) ** 2).sum(-1)]
        return cls.from_moments(*moments)

    def __getitem__(self, index: object) -> Standardisation:
        return Standardisation(self.shift[index], self.scale[index])

    def _on(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shift (..., 1, d) and scale (..., 1, 1) on the device of ``points``, in float64."""
        return (self.shift.to(points.device).unsqueeze(-2),
                _dims(self.scale.to(points.device), 2))

    def apply(self, points: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Standardised points ``(x - m) / s`` of points (..., n, d), computed in float64."""
        shift, scale = self._on(points)
        return ((points.double() - shift) / scale).to(dtype or points.dtype)

    def undo(self, points: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Points in the user's units ``m + s u`` of standardised points (..., n, d)."""
        shift, scale = self._on(points)
        return (shift + scale * points.double()).to(dtype or points.dtype)

    def values(self, values: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Potential (or conjugate) values (..., n) at ``points`` (..., n, d), in user units.

        ``s^2 f_std(u) + <m, x> - |m|^2 / 2`` for the standardised values ``f_std(u)``, in
        float64 (differentiable in both arguments).
        """
        shift, scale = self.shift.to(points.device), self.scale.to(points.device)
        linear = (points.double() * shift.unsqueeze(-2)).sum(-1)
        return (_dims(scale, 1) ** 2 * values.double() + linear
                - _dims((shift ** 2).sum(-1), 1) / 2)

    def dual(self, dual: torch.Tensor, mean_u: torch.Tensor,
             mean_v: torch.Tensor) -> torch.Tensor:
        """The dual ``V`` in user units from the standardised one and the samples' means.

        Parameters
        ----------
        dual : torch.Tensor of shape (...)
            ``V(f_std)`` on standardised samples ``u`` and ``v``.
        mean_u, mean_v : torch.Tensor of shape (..., d)
            The means of those samples.

        Returns
        -------
        torch.Tensor of shape (...), float64
        """
        shift, scale = self.shift.to(dual.device), self.scale.to(dual.device)
        centre = ((mean_u.double() + mean_v.double()) * shift).sum(-1)
        return scale ** 2 * dual.double() - scale * centre - (shift ** 2).sum(-1)

    def moments(self, mean: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Mean (..., d) and covariance (..., d, d) of a measure after standardisation."""
        shift, scale = self.shift.to(mean.device), self.scale.to(mean.device)
        return (mean.double() - shift) / _dims(scale, 1), cov.double() / _dims(scale, 2) ** 2


# -- collections of pairs, each standardised by its own similarity -----------------------------
def pair_standardisations(collection: MeasureCollection,
                          pair_ids: np.ndarray) -> Standardisation:
    """Per pair of ``pair_ids``, the common similarity of its two measures (from moments)."""
    (mean_a, cov_a), (mean_b, cov_b) = (collection.moments(pair_ids, side) for side in (0, 1))
    return Standardisation.from_moments(mean_a, cov_a.diagonal(dim1=-2, dim2=-1).sum(-1),
                                        mean_b, cov_b.diagonal(dim1=-2, dim2=-1).sum(-1))


def standardised_samples(collection: MeasureCollection, pair_ids: np.ndarray, n_samples: int,
                         generator: Any, device: torch.device,
                         dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples (B, n_samples, d) of both sides of the pairs, each pair standardised.

    Drawn in float64 and standardised before the cast to ``dtype``, so that data far from the
    origin keep their digits.
    """
    standard = pair_standardisations(collection, pair_ids)
    x, y = collection.sample(pair_ids, n_samples, generator, device, torch.float64)
    return standard.apply(x, dtype), standard.apply(y, dtype)


def standardised_encoder_inputs(collection: MeasureCollection, pair_ids: np.ndarray, side: int,
                                images: bool, device: torch.device,
                                dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """An encoder's input for one side of the pairs, each pair standardised.

    The resized images (B, C, S, S) when ``images`` (their pixel values standardised like the
    points), else the encoding points (B, M, d) and their weights (B, M).
    """
    standard = pair_standardisations(collection, pair_ids)
    if images:
        grids = collection.images(pair_ids, side, device, torch.float64)
        pixels = standard.apply(grids.flatten(2).transpose(1, 2), dtype)
        return (pixels.transpose(1, 2).reshape(grids.shape),)
    points, weights = collection.encoding_points(pair_ids, side, device, torch.float64)
    return standard.apply(points, dtype), weights.to(dtype)
