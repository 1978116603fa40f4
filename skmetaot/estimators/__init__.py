"""scikit-learn estimators."""

from skmetaot.estimators.meta_sinkhorn import MetaSinkhornTransport

__all__ = ["MetaSinkhornTransport"]
