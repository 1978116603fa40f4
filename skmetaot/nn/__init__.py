"""Networks: potentials, amortization models and encoders of measures."""

from skmetaot.nn.mlp import MLP

__all__ = ["MLP"]
