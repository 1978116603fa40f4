"""W2GN for batches of ICNN pairs given as flat parameters: the Meta ICNN loss and its refinement.

Each problem k has the parameters ``params[k] = (psi_k, psi_bar_k)`` of two ICNNs of one
architecture: ``grad psi_k`` is the forward map and ``grad psi_bar_k`` its inverse (the
conjugate's argmin). The loss is W2GN's (Korotin et al. 2019), eq. (12) of the Meta OT paper:
the dual with the amortized conjugate plus ``cycle_weight`` times the symmetric cycle loss; it is
the ``("cycle", None)`` setting of :func:`~skmetaot.amortize.w2_losses.w2_dual_step`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from skmetaot.amortize.training import TrainingDiverged
from skmetaot.amortize.w2_losses import W2StepOutput, w2_dual_step
from skmetaot.nn.icnn import ICNN
from skmetaot.nn.potentials import potential_gradient


def w2gn_loss(icnn: ICNN, params: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
              cycle_weight: float = 3.0) -> W2StepOutput:
    """The W2GN loss of a batch of problems, averaged over the problems.

    Parameters
    ----------
    icnn : ICNN
        The architecture of both potentials.
    params : torch.Tensor of shape (B, 2 * icnn.n_params)
        ``psi`` then ``psi_bar`` of each problem.
    x, y : torch.Tensor of shape (B, n, d) and (B, m, d)
        Source and target samples of each problem.
    cycle_weight : float, default=3.0

    Returns
    -------
    W2StepOutput
        Its ``loss`` is differentiable in ``params``.
    """
    n = icnn.n_params
    psi, psi_bar = params[:, :n], params[:, n:]

    def potential(points: torch.Tensor) -> torch.Tensor:
        return icnn.functional(psi, points)

    def inverse_map(points: torch.Tensor) -> torch.Tensor:
        return potential_gradient(lambda q: icnn.functional(psi_bar, q), points,
                                  create_graph=True)

    return w2_dual_step(potential, inverse_map, x, y, amortization="cycle", conjugate=None,
                        cycle_weight=cycle_weight)


def refine_w2gn(
    icnn: ICNN,
    params: torch.Tensor,
    sample: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    n_steps: int,
    *,
    learning_rate: float = 1e-3,
    cycle_weight: float = 3.0,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run W2GN on a batch of independent problems from the given parameters.

    The loss is summed over problems and Adam works coordinate-wise, so each problem follows
    exactly the trajectory it would follow alone; batching only removes the per-problem
    Python loop.

    Parameters
    ----------
    icnn : ICNN
    params : torch.Tensor of shape (B, 2 * icnn.n_params)
        Starting parameters (a prediction, or the identity repeated).
    sample : callable
        ``sample() -> (x, y)``, fresh samples (B, n, d) of the problems' measures.
    n_steps : int
    learning_rate : float, default=1e-3
    cycle_weight : float, default=3.0
    callback : callable, optional
        ``callback(step, params)`` after every step (``step`` counts from 1).

    Returns
    -------
    torch.Tensor of shape (B, 2 * icnn.n_params)

    Raises
    ------
    TrainingDiverged
        When the loss stops being finite (the exception's ``params`` holds the last good ones).
    """
    current = params.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([current], lr=learning_rate)
    for step in range(n_steps):
        x, y = sample()
        loss = w2gn_loss(icnn, current, x, y, cycle_weight).loss * len(current)
        if not math.isfinite(float(loss.detach())):
            error = TrainingDiverged(f"W2GN refinement diverged at step {step} (loss "
                                     f"{float(loss.detach()):.4g}); lower the learning rate")
            error.params = current.detach().clone()
            raise error
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if callback is not None:
            callback(step + 1, current.detach())
    return current.detach()
