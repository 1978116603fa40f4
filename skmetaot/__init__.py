"""skmetaot: amortized (meta) optimal transport for scikit-learn and POT users."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Names are imported on first use (PEP 562), so that ``python -m skmetaot --help`` and
# ``import skmetaot.pot`` do not pay for torch and the estimators before they are needed.
_EXPORTS = {
    "ConjugateResult": "skmetaot.solvers",
    "GaussianInitializer": "skmetaot.solvers",
    "GivenPotentials": "skmetaot.solvers",
    "Initializer": "skmetaot.solvers",
    "ZerosInitializer": "skmetaot.solvers",
    "HistogramPairs": "skmetaot.measures",
    "MeasurePairs": "skmetaot.measures",
    "MetaICNNTransport": "skmetaot.estimators",
    "MetaSinkhornCloudTransport": "skmetaot.estimators",
    "MetaSinkhornTransport": "skmetaot.estimators",
    "NeuralW2Transport": "skmetaot.estimators",
    "SinkhornResult": "skmetaot.solvers",
    "TransportPotential": "skmetaot.estimators",
    "as_pairs": "skmetaot.measures",
    "conjugate": "skmetaot.solvers",
    "euclidean": "skmetaot.costs",
    "pairs_from_images": "skmetaot.measures",
    "sinkhorn": "skmetaot.solvers",
    "spherical": "skmetaot.costs",
    "sqeuclidean": "skmetaot.costs",
}

__all__ = [
    "ConjugateResult",
    "GaussianInitializer",
    "GivenPotentials",
    "Initializer",
    "ZerosInitializer",
    "NeuralW2Transport",
    "TransportPotential",
    "conjugate",
    "HistogramPairs",
    "MeasurePairs",
    "MetaICNNTransport",
    "MetaSinkhornCloudTransport",
    "MetaSinkhornTransport",
    "SinkhornResult",
    "as_pairs",
    "euclidean",
    "pairs_from_images",
    "sinkhorn",
    "spherical",
    "sqeuclidean",
]


#: Sub-modules reachable as attributes after a bare ``import skmetaot``.
_SUBMODULES = ("amortize", "costs", "da", "datasets", "distributed", "estimators", "geometry",
               "measures", "metrics", "nn", "plotting", "pot", "sampling", "solvers")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return import_module(f"skmetaot.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skmetaot' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
