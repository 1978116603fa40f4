"""scikit-learn estimators."""

from skmetaot.estimators._domain_check import TargetDataWarning
from skmetaot.estimators._potential import TransportPotential
from skmetaot.estimators.meta_clouds import MetaSinkhornCloudTransport
from skmetaot.estimators.meta_icnn import MetaICNNTransport
from skmetaot.estimators.meta_sinkhorn import MetaSinkhornTransport
from skmetaot.estimators.neural_w2 import NeuralW2Transport

__all__ = ["MetaICNNTransport", "MetaSinkhornCloudTransport", "MetaSinkhornTransport",
           "NeuralW2Transport", "TargetDataWarning", "TransportPotential"]
