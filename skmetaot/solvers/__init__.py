"""Solvers: pure functions on tensors, no estimator state."""

from skmetaot.solvers.conjugate import ConjugateResult, conjugate, solve_conjugate
from skmetaot.solvers.convergence import sinkhorn_convergence
from skmetaot.solvers.entropic import SinkhornResult, sinkhorn, solve_pairs
from skmetaot.solvers.initializers import (
    GaussianInitializer,
    GivenPotentials,
    Initializer,
    PairBatch,
    ZerosInitializer,
    as_initializer,
    gaussian_init,
    zeros_init,
)
from skmetaot.solvers.sinkhorn import (
    SinkhornState,
    c_transform,
    solve_batch,
    transport_plan,
    update_potential,
)

__all__ = [
    "ConjugateResult",
    "GaussianInitializer",
    "GivenPotentials",
    "Initializer",
    "PairBatch",
    "ZerosInitializer",
    "as_initializer",
    "SinkhornResult",
    "SinkhornState",
    "c_transform",
    "conjugate",
    "gaussian_init",
    "sinkhorn",
    "sinkhorn_convergence",
    "solve_batch",
    "solve_conjugate",
    "solve_pairs",
    "transport_plan",
    "update_potential",
    "zeros_init",
]
