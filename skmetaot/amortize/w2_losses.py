"""Losses of the neural W2 dual with an amortized, optionally fine-tuned, convex conjugate.

One step of Algorithm 1 of Amos (ICLR 2023): predict the conjugate's argmin with the amortization
model, fine-tune it with a conjugate solver (or not), take the Danskin gradient of the dual, and
add the amortization loss. W2GN and Makkuva et al. are the settings ``("cycle", None)`` and
``("objective", None)`` of the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from skmetaot.amortize.training import cosine_learning_rate
from skmetaot.nn.potentials import potential_gradient
from skmetaot.solvers.conjugate import solve_conjugate

AMORTIZATIONS = ("regression", "objective", "cycle")
CONJUGATE_SOLVERS = ("lbfgs", "adam", None)
#: A W2 loss beyond this many times the measures' second moments (plus one) is diverging: the
#: dual is of the order of the second moments.
DIVERGED_LOSS = 1e3


@dataclass
class W2StepOutput:
    """What one training step computes.

    Attributes
    ----------
    loss : torch.Tensor
        Scalar to minimise: the negated dual plus the amortization loss.
    dual : float
        The dual objective ``V = -E f(x) - E f*(y)`` on the batch (higher is better), averaged
        over the problems of a batch of problems.
    amortization_loss : float
    conjugate_iterations : float
        Mean solver iterations per conjugate (0 without a solver).
    problem_duals : torch.Tensor or None
        The dual of each problem, shape (B,) for samples (B, n, d) and () for one problem
        (detached).
    """

    loss: torch.Tensor
    dual: float
    amortization_loss: float
    conjugate_iterations: float
    problem_duals: torch.Tensor | None = None


def _detached_potential(potential: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``potential`` evaluated with its parameters frozen (gradients reach the inputs only)."""
    frozen = {name: p.detach() for name, p in potential.named_parameters()}
    return lambda points: torch.func.functional_call(potential, frozen, (points,))


def w2_dual_step(
    potential: nn.Module,
    amortizer: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    amortization: str = "regression",
    conjugate: str | None = "lbfgs",
    conjugate_tol: float = 1e-2,
    conjugate_max_iter: int = 100,
    cycle_weight: float = 1.0,
) -> W2StepOutput:
    """Loss of one step of the neural W2 dual with conjugate amortization.

    Parameters
    ----------
    potential : torch.nn.Module
        The dual potential ``f`` (points (n, d) to values (n,)); ``grad f`` is the forward map.
    amortizer : torch.nn.Module
        Predicts the conjugate's argmin ``x_tilde(y)``.
    x, y : torch.Tensor of shape (n, d) and (m, d)
        Source and target samples of the batch.
    amortization : {"regression", "objective", "cycle"}
        Loss of the amortizer: ``|x_tilde - x_breve|^2`` onto the solver's answer,
        ``J_f(x_tilde; y)`` (Makkuva et al. without a solver), or the cycle loss
        ``|grad f(x_tilde(y)) - y|^2 + |x_tilde(grad f(x)) - x|^2`` (W2GN without a solver).
    conjugate : {"lbfgs", "adam", None}
        Solver that fine-tunes ``x_tilde`` into ``x_breve``; None uses ``x_tilde`` as it is.
    conjugate_tol, conjugate_max_iter : float, int
        Solver stopping rule (gradient norm, iterations).
    cycle_weight : float, default=1.0
        Weight of the cycle loss (sum over coordinates, mean over samples).

    Returns
    -------
    W2StepOutput
    """
    if amortization not in AMORTIZATIONS:
        raise ValueError(f"amortization={amortization!r} is not one of {AMORTIZATIONS}")
    if amortization == "regression" and conjugate is None:
        raise ValueError("amortization='regression' regresses onto the solver's answer and needs "
                         "a conjugate solver (conjugate='lbfgs' or 'adam')")
    x_tilde = amortizer(y)
    iterations = 0.0
    if conjugate is None:
        x_breve = x_tilde.detach()
    else:
        solved = solve_conjugate(_detached_potential(potential), y, x_tilde.detach(),
                                 method=conjugate, tol=conjugate_tol,
                                 max_iter=conjugate_max_iter)
        x_breve = solved.x
        iterations = float(solved.n_iter.float().mean())
    # Danskin: f*(y) = <x_breve, y> - f(x_breve), with x_breve held fixed.
    # Means over each problem's samples: the last axis of the values.
    problem_losses = (potential(x).mean(-1)
                      + ((x_breve * y).sum(-1) - potential(x_breve)).mean(-1))
    dual_loss = problem_losses.mean()
    if amortization == "regression":
        amortization_loss = ((x_tilde - x_breve) ** 2).sum(-1).mean()
    elif amortization == "objective":
        frozen = _detached_potential(potential)
        amortization_loss = (frozen(x_tilde) - (x_tilde * y).sum(-1)).mean()
    else:
        # W2GN lets the cycle loss shape f as well as the amortizer (its default).
        forward_of_pred = potential_gradient(potential, x_tilde, create_graph=True)
        back_of_forward = amortizer(potential_gradient(potential, x, create_graph=True))
        amortization_loss = cycle_weight * (((forward_of_pred - y) ** 2).sum(-1).mean()
                                            + ((back_of_forward - x) ** 2).sum(-1).mean())
    return W2StepOutput(loss=dual_loss + amortization_loss, dual=-float(dual_loss.detach()),
                        amortization_loss=float(amortization_loss.detach()),
                        conjugate_iterations=iterations,
                        problem_duals=-problem_losses.detach())


def identity_pretraining_loss(potential: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """``mean |grad f(x) - x|^2``: pre-training makes the map start at the identity.

    Parameters
    ----------
    potential : torch.nn.Module
    points : torch.Tensor of shape (n, d)

    Returns
    -------
    torch.Tensor
        Scalar, differentiable in the potential's parameters.
    """
    grad = potential_gradient(potential, points, create_graph=True)
    return ((grad - points) ** 2).sum(-1).mean()


def pretrain_identity(potential: nn.Module, points: torch.Tensor, n_steps: int,
                      batch_size: int, generator: torch.Generator, *,
                      learning_rate: float = 3e-3, decay: bool = False,
                      tol: float = 1e-6) -> list[float]:
    """Fit ``grad f(x) ~ x`` with Adam on ``points`` jittered by 10% of their spread.

    Parameters
    ----------
    potential : torch.nn.Module
        Trained in place.
    points : torch.Tensor of shape (n, d)
        Where the map must be the identity (the pooled samples of the measures).
    n_steps, batch_size : int
    generator : torch.Generator
        CPU generator of the batches and the jitter.
    learning_rate : float, default=3e-3
    decay : bool, default=False
        Cosine decay of the rate (to 10%); a tighter fit for the same steps.
    tol : float, default=1e-6
        Stop once the loss is below this.

    Returns
    -------
    list of float
        The loss of every step.
    """
    scale = points.std(0, keepdim=True)
    optimizer = torch.optim.Adam(potential.parameters(), lr=learning_rate)
    losses: list[float] = []
    for step in range(n_steps):
        if decay:
            optimizer.param_groups[0]["lr"] = cosine_learning_rate(learning_rate, step, n_steps)
        pick = torch.randint(len(points), (batch_size,), generator=generator)
        noise = torch.randn(batch_size, points.shape[1], generator=generator)
        batch = points[pick.to(points.device)] + 0.1 * scale * noise.to(points)
        loss = identity_pretraining_loss(potential, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if losses[-1] < tol:
            break
    return losses
