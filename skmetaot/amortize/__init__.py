"""Amortization: losses of each amortized model and the shared training loop."""

from skmetaot.amortize.cloud_features import CloudFeatures, cloud_features
from skmetaot.amortize.features import first_sinkhorn_step, pair_features
from skmetaot.amortize.losses import (
    entropic_dual_value,
    error_after_update,
    potential_regression_error,
    unrolled_marginal_error,
)
from skmetaot.amortize.training import TrainingDiverged, TrainingHistory, train

__all__ = [
    "CloudFeatures",
    "TrainingDiverged",
    "TrainingHistory",
    "cloud_features",
    "entropic_dual_value",
    "error_after_update",
    "first_sinkhorn_step",
    "pair_features",
    "potential_regression_error",
    "train",
    "unrolled_marginal_error",
]
