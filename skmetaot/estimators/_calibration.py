"""How much of its network's correction a meta Sinkhorn estimator applies (one implementation).

Both meta Sinkhorn estimators predict ``f = baseline + correction``. The training loss (the
dual, the marginal error after a few unrolled iterations) stands in for what a user pays, the
iterations of the refinement, and the two can disagree: a correction can lower every error of
the prediction and still leave the potentials farther out along Sinkhorn's slowest directions.
So the scale of the correction is measured by what it is for, the median iterations of the
warm-started solve on pairs of the training distribution. Measured on mixtures in R^10 (256
calibration pairs, 256 held-out pairs): scale 0.7 is kept (159 iterations to 1e-3 against 160
for the whole correction and 167 for the Gaussian baseline alone), and held out it needs 62
iterations to 1e-2 and 153 to 1e-3, against 64.5 and 162 for the whole correction. On MNIST
grids the trained U-Net keeps its whole correction (0.9 and 1.1 cost 20.5 and 22 iterations
to 1e-3 against 16).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from skmetaot.measures import MeasurePairs

#: The scales :meth:`CorrectionCalibration.calibrate` tries by default: from the baseline
#: alone (0) to the whole correction (1), in tenths.
DEFAULT_SCALES = tuple(k / 10 for k in range(11))


def _check_scales(scales: Any) -> tuple[float, ...]:
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or not scales:
        raise ValueError(f"scales must be a non-empty sequence of numbers, got {scales!r}")
    for value in scales:
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not math.isfinite(value) or value < 0):
            raise ValueError(f"scales must hold finite numbers >= 0, got {value!r} in {scales!r}")
    return tuple(float(value) for value in scales)


class CorrectionCalibration:
    """``calibrate``: the scale of the network's correction, chosen by refinement iterations.

    A mixin of the meta Sinkhorn estimators; it reads ``_fitted_pairs``,
    ``_refine_arguments`` and ``_refine_state`` of :class:`WarmStartRefinement`. The
    estimator's forward pass multiplies its correction by ``correction_scale_`` (1 until
    calibrated; ``fit`` resets it, ``partial_fit`` keeps it).
    """

    #: The scale of the correction (1: the trained network as it is). A class default, so
    #: that estimators pickled before calibration existed load with the whole correction.
    correction_scale_: float = 1.0

    def calibrate(self, pairs: Any, tol: float | None = None, max_iter: int | None = None,
                  *, scales: Sequence[float] = DEFAULT_SCALES,
                  chunk_size: int | None = None) -> Any:
        """Choose the scale of the correction that refines ``pairs`` in the fewest iterations.

        For each scale ``s`` the prediction is ``baseline + s * correction``; ``pairs`` are
        refined from it to ``tol`` and the scale with the smallest median iteration count is
        kept (ties go to the larger scale, closer to the trained network). Calibrate on fresh
        pairs of the training distribution, after training, not on the pairs you evaluate on.

        Parameters
        ----------
        pairs : MeasurePairs or anything :meth:`refine` accepts, or a list of MeasurePairs
            Calibration pairs: a few hundred. Scales differ by a few iterations, and a median
            over 48 pairs moves by more (two draws of 48 mixtures in R^10 chose 0.4 and 1.0,
            256 chose 0.7). A list of collections holds pairs in different dimensions, which
            one collection cannot; the median is over all of their pairs.
        tol : float, optional
            L1 marginal error to refine to (default: ``self.tol``).
        max_iter : int, optional
            Iteration cap of each refinement (default: ``self.refine_max_iter``).
        scales : sequence of float, default=(0, 0.1, ..., 1)
            Scales to try (finite, >= 0; 0 is the baseline alone).
        chunk_size : int, optional
            Pairs solved together, as in :meth:`refine`.

        Returns
        -------
        self
            With ``correction_scale_`` set and ``calibration_`` (``tol``, ``scales`` and the
            ``median_n_iter`` of each).

        Raises
        ------
        ValueError
            If ``scales`` is empty or holds a negative or non-finite number, or as
            :meth:`refine` for ``pairs``, ``tol`` and ``max_iter``.
        """
        check_is_fitted(self, "model_")
        scales = _check_scales(scales)
        # Pairs of different dimensions cannot share one collection: a list of collections.
        groups = (list(pairs) if isinstance(pairs, (list, tuple)) and pairs
                  and all(isinstance(group, MeasurePairs) for group in pairs) else [pairs])
        groups = [self._fitted_pairs(group) for group in groups]
        tol, max_iter = self._refine_arguments(tol, max_iter, "meta", chunk_size)
        kept, medians = self.correction_scale_, []
        try:
            for scale in scales:
                self.correction_scale_ = scale
                n_iter = [self._refine_state(group, tol, max_iter, "meta",
                                             batch_size=chunk_size).n_iter.cpu().numpy()
                          for group in groups]
                medians.append(float(np.median(np.concatenate(n_iter))))
        except BaseException:  # an interrupted calibration leaves the estimator as it was
            self.correction_scale_ = kept
            raise
        best = min(range(len(scales)), key=lambda k: (medians[k], -scales[k]))
        self.correction_scale_ = scales[best]
        self.calibration_ = {"tol": tol, "scales": list(scales), "median_n_iter": medians}
        return self

    def _reset_calibration(self) -> None:
        """A new network (``fit``) starts with its whole correction and no calibration."""
        self.correction_scale_ = 1.0
        self.__dict__.pop("calibration_", None)

    def _scaled(self, correction: Any) -> Any:
        """The correction times ``correction_scale_`` (no operation at the default 1)."""
        scale = self.correction_scale_
        return correction if scale == 1.0 else correction * scale
