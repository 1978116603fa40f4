"""skmetaot: amortized (meta) optimal transport for scikit-learn and POT users."""

from skmetaot.costs import euclidean, spherical, sqeuclidean
from skmetaot.estimators import (
    MetaICNNTransport,
    MetaSinkhornTransport,
    NeuralW2Transport,
    TransportPotential,
)
from skmetaot.measures import HistogramPairs, MeasurePairs, as_pairs, pairs_from_images
from skmetaot.solvers import ConjugateResult, SinkhornResult, conjugate, sinkhorn

__version__ = "0.1.0"

__all__ = [
    "ConjugateResult",
    "NeuralW2Transport",
    "TransportPotential",
    "conjugate",
    "HistogramPairs",
    "MeasurePairs",
    "MetaICNNTransport",
    "MetaSinkhornTransport",
    "SinkhornResult",
    "as_pairs",
    "euclidean",
    "pairs_from_images",
    "sinkhorn",
    "spherical",
    "sqeuclidean",
]
