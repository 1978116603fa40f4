"""scikit-learn estimators."""

from skmetaot.estimators._potential import TransportPotential
from skmetaot.estimators.meta_sinkhorn import MetaSinkhornTransport
from skmetaot.estimators.neural_w2 import NeuralW2Transport

__all__ = ["MetaSinkhornTransport", "NeuralW2Transport", "TransportPotential"]
