"""Solvers: pure functions on tensors, no estimator state."""

from skmetaot.solvers.entropic import SinkhornResult, sinkhorn, solve_pairs
from skmetaot.solvers.initializers import gaussian_init, zeros_init
from skmetaot.solvers.sinkhorn import SinkhornState, c_transform, solve_batch, transport_plan

__all__ = [
    "SinkhornResult",
    "SinkhornState",
    "c_transform",
    "gaussian_init",
    "sinkhorn",
    "solve_batch",
    "solve_pairs",
    "transport_plan",
    "zeros_init",
]
