"""Pairs on the supports an estimator was fitted on: checked once, their kernels built once.

A fitted :class:`~skmetaot.MetaSinkhornTransport` predicts only for histograms on the supports
it saw in ``fit``. Checking that (an ``allclose`` of the supports, after moving them to the
network's dtype) and building the supports' kernels are fixed costs of every call; at batch 1
they cost as much as the network. Here they are paid once per support tensor: a support that
passed the check is remembered (by identity and in-place version, never by value), and every
view of pairs on the fitted supports shares one cache of kernels.
"""

from __future__ import annotations

import weakref

import torch

from skmetaot.geometry import detect_grid
from skmetaot.measures import HistogramPairs


def same_support(points: torch.Tensor, fitted: torch.Tensor) -> bool:
    """Equal up to rounding: the same grid built in float64 and float32 differs in the last bit."""
    if points is fitted:  # pairs selected from the fitted collection: nothing to compare
        return True
    tolerance = 8 * torch.finfo(fitted.dtype).eps
    return points.shape == fitted.shape and torch.allclose(
        points.to(dtype=fitted.dtype, device=fitted.device), fitted, rtol=tolerance,
        atol=tolerance)


class FittedSupports:
    """Mixin: ``_on_fitted_supports(pairs)`` for estimators with ``support_x_``/``support_y_``.

    The estimator also has ``_dtype_`` and ``_device_`` (where its network computes).
    """

    def _support_cache(self) -> dict:
        cache = self.__dict__.get("_cache_supports")
        if cache is None or cache["x"] is not self.support_x_ or cache["y"] is not self.support_y_:
            # The fitted supports changed (a new fit): nothing of the old cache applies.
            grid_x = detect_grid(self.support_x_)
            grid_y = grid_x if self.support_y_ is self.support_x_ else detect_grid(
                self.support_y_)
            cache = {"x": self.support_x_, "y": self.support_y_, "grid_x": grid_x,
                     "grid_y": grid_y, "kernels": {}, "checked": []}
            self._cache_supports = cache
        return cache

    def _known_supports(self, pairs: HistogramPairs, cache: dict) -> bool:
        if pairs.x is self.support_x_ and pairs.y is self.support_y_:
            return True
        return any(ref() is pairs.x and version == pairs.x._version
                   and ref_y() is pairs.y and version_y == pairs.y._version
                   for ref, version, ref_y, version_y in cache["checked"])

    def _on_fitted_supports(self, pairs: HistogramPairs) -> HistogramPairs:
        """``pairs``' weights on the network's dtype and device, on the fitted supports.

        Parameters
        ----------
        pairs : HistogramPairs
            Pairs whose numbers of atoms were already checked against the fitted ones.

        Returns
        -------
        HistogramPairs
            A view whose ``x`` and ``y`` are the fitted tensors, so the solver's batches of it
            and later calls pass on identity; its grid kernels are the estimator's.

        Raises
        ------
        ValueError
            If the supports differ from the fitted ones.
        """
        cache = self._support_cache()
        if not self._known_supports(pairs, cache):
            if not (same_support(pairs.x, self.support_x_)
                    and same_support(pairs.y, self.support_y_)):
                raise ValueError("the pairs' supports differ from the supports seen in fit")
            # Remembered by identity and version: an in-place change of the tensors (a new
            # _version) is checked again; the few last supports are kept, weakly.
            cache["checked"] = [*cache["checked"][-3:], (
                weakref.ref(pairs.x), pairs.x._version, weakref.ref(pairs.y), pairs.y._version)]
        view = object.__new__(HistogramPairs)
        view.__dict__.update(pairs.__dict__)
        view.a = pairs.a.to(dtype=self._dtype_, device=self._device_)
        view.b = pairs.b.to(dtype=self._dtype_, device=self._device_)
        view.x, view.y = self.support_x_, self.support_y_
        view.grid_x, view.grid_y = cache["grid_x"], cache["grid_y"]
        view._grid_geometries = cache["kernels"]
        return view
