"""Networks: potentials, amortization models and encoders of measures."""

from skmetaot.nn.activations import get_activation
from skmetaot.nn.clouds import CloudPotentialNet, WeightedCrossAttention
from skmetaot.nn.encoders import (
    EncoderSpec,
    ImageEncoder,
    SetEncoder,
    moment_features,
    register_encoder,
)
from skmetaot.nn.grid import GridUNet
from skmetaot.nn.hypernetwork import FunctionalPotential, GradientMap, PairHypernetwork
from skmetaot.nn.icnn import ICNN
from skmetaot.nn.mlp import MLP
from skmetaot.nn.potentials import MLPPotential, ResidualAmortizer, potential_gradient

__all__ = ["ICNN", "MLP", "CloudPotentialNet", "EncoderSpec", "FunctionalPotential",
           "GradientMap", "GridUNet", "ImageEncoder", "MLPPotential", "PairHypernetwork",
           "ResidualAmortizer", "SetEncoder", "WeightedCrossAttention", "get_activation",
           "moment_features", "potential_gradient", "register_encoder"]
