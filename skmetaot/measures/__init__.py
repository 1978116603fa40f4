"""Pairs of discrete measures: the samples that meta estimators and batched solvers consume.

Two containers:

* :class:`~skmetaot.HistogramPairs`: N pairs of histograms on supports shared by all pairs
  (images on a grid, supply/demand on fixed locations). Stored as (N, n) and (N, m) weight
  matrices.
* :class:`~skmetaot.MeasurePairs`: N pairs of weighted point clouds, each with its own support
  and size.

Pairs of *continuous* measures (point clouds or images sampled at every training step, for
:class:`~skmetaot.MetaICNNTransport`) are index pairs into a list of distinct measures:
``skmetaot.measures.continuous``.

:func:`~skmetaot.as_pairs` turns every accepted input form into one of them, and
:func:`~skmetaot.pairs_from_images` builds grid histograms from images.

Weights are validated (finite, non-negative, positive total mass) and then **rescaled to sum to
one**: the solvers compute balanced OT between probability measures. Zero weights are allowed.
"""

from skmetaot.measures.inputs import as_pairs, as_points_array, image_grid, pairs_from_images
from skmetaot.measures.pairs import HistogramPairs, MeasurePairs, concat_pairs

__all__ = ["MeasurePairs", "HistogramPairs", "pairs_from_images", "as_pairs", "as_points_array",
           "concat_pairs", "image_grid"]
