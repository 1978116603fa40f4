"""Networks: potentials, amortization models and encoders of measures."""

from skmetaot.nn.activations import get_activation
from skmetaot.nn.icnn import ICNN
from skmetaot.nn.mlp import MLP
from skmetaot.nn.potentials import MLPPotential, ResidualAmortizer, potential_gradient

__all__ = ["ICNN", "MLP", "MLPPotential", "ResidualAmortizer", "get_activation",
           "potential_gradient"]
