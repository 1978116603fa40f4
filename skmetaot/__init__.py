"""skmetaot: amortized (meta) optimal transport for scikit-learn and POT users."""

from skmetaot.costs import euclidean, spherical, sqeuclidean
from skmetaot.estimators import MetaSinkhornTransport
from skmetaot.measures import HistogramPairs, MeasurePairs, as_pairs, pairs_from_images
from skmetaot.solvers import SinkhornResult, sinkhorn

__version__ = "0.1.0"

__all__ = [
    "HistogramPairs",
    "MeasurePairs",
    "MetaSinkhornTransport",
    "SinkhornResult",
    "as_pairs",
    "euclidean",
    "pairs_from_images",
    "sinkhorn",
    "spherical",
    "sqeuclidean",
]
