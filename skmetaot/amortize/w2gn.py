"""W2GN for batches of ICNN pairs given as flat parameters: the Meta ICNN loss and its refinement.

Each problem k has the parameters ``params[k] = (psi_k, psi_bar_k)`` of two ICNNs of one
architecture: ``grad psi_k`` is the forward map and ``grad psi_bar_k`` its inverse (the
conjugate's argmin). The loss is W2GN's (Korotin et al. 2019), eq. (12) of the Meta OT paper:
the dual with the amortized conjugate plus ``cycle_weight`` times the symmetric cycle loss; it is
the ``("cycle", None)`` setting of :func:`~skmetaot.amortize.w2_losses.w2_dual_step`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from skmetaot._gaussian import bures_map, psd_power
from skmetaot.amortize.training import TrainingDiverged, TrainingHistory, train
from skmetaot.amortize.w2_losses import DIVERGED_LOSS, W2StepOutput, w2_dual_step
from skmetaot.nn.icnn import ICNN
from skmetaot.nn.potentials import potential_gradient


@dataclass
class AffineBaseline:
    """Affine changes of variables that turn an identity ICNN into the Gaussian (Bures) maps.

    With ``psi(x) = phi(M x) + <c, x>``, a ``phi`` whose gradient is the identity gives
    ``grad psi(x) = A x + c`` with ``A = M^2``: the W2 map between Gaussians with the measures'
    means and covariances. ``psi_bar(y) = phi_bar(M^{-1} y) + <c_bar, y>`` gives its inverse.
    ``phi`` composed with a linear map is still convex, so both potentials stay convex.

    Attributes
    ----------
    matrix, inverse_matrix : torch.Tensor of shape (B, d, d)
        ``M = A^{1/2}`` and ``M^{-1}`` (symmetric).
    shift, inverse_shift : torch.Tensor of shape (B, d)
        ``c = m_b - A m_a`` and ``c_bar = m_a - A^{-1} m_b``.
    """

    matrix: torch.Tensor
    shift: torch.Tensor
    inverse_matrix: torch.Tensor
    inverse_shift: torch.Tensor

    def to(self, device: torch.device, dtype: torch.dtype) -> AffineBaseline:
        """The same baseline on ``device`` in ``dtype``."""
        return AffineBaseline(*(t.to(device, dtype) for t in (
            self.matrix, self.shift, self.inverse_matrix, self.inverse_shift)))

    def __getitem__(self, index: object) -> AffineBaseline:
        return AffineBaseline(self.matrix[index], self.shift[index],
                              self.inverse_matrix[index], self.inverse_shift[index])


def gaussian_baseline(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor,
                      cov_b: torch.Tensor, ridge: float = 1e-3) -> AffineBaseline:
    """The W2 maps between the Gaussians of given moments, as an :class:`AffineBaseline`.

    Parameters
    ----------
    mean_a, mean_b : torch.Tensor of shape (B, d)
    cov_a, cov_b : torch.Tensor of shape (B, d, d)
    ridge : float, default=1e-3
        Added to each covariance, relative to its mean eigenvalue, so that degenerate measures
        (a grey image has rank-one colours) still give finite maps.

    Returns
    -------
    AffineBaseline
    """
    eye = torch.eye(mean_a.shape[-1], dtype=cov_a.dtype, device=cov_a.device)

    def regular(cov: torch.Tensor) -> torch.Tensor:
        scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
        return cov + (ridge * scale + 1e-9) * eye

    transport, shift = bures_map(mean_a, regular(cov_a), mean_b, regular(cov_b), floor=1e-12)
    matrix, inverse_matrix = psd_power(transport, 0.5, 1e-12), psd_power(transport, -0.5, 1e-12)
    inverse = inverse_matrix @ inverse_matrix
    inverse_shift = mean_a - (inverse @ mean_b.unsqueeze(-1)).squeeze(-1)
    return AffineBaseline(matrix, shift, inverse_matrix, inverse_shift)


def affine_potential(icnn: ICNN, params: torch.Tensor, matrix: torch.Tensor | None,
                     shift: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> phi(M x) + <c, x>`` for ICNN parameters ``params`` (one or a batch)."""
    if matrix is None:
        return lambda points: icnn.functional(params, points)

    def potential(points: torch.Tensor) -> torch.Tensor:
        # M is symmetric, so the rows of points @ M are the M x
        return icnn.functional(params, points @ matrix) + (points * shift.unsqueeze(-2)
                                                          ).sum(-1)

    return potential


def w2gn_loss(icnn: ICNN, params: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
              cycle_weight: float = 3.0,
              baseline: AffineBaseline | None = None) -> W2StepOutput:
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
    baseline : AffineBaseline, optional
        Affine changes of variables of the two potentials (batch B); none by default.

    Returns
    -------
    W2StepOutput
        Its ``loss`` is differentiable in ``params``.
    """
    n = icnn.n_params
    b = baseline
    potential = affine_potential(icnn, params[:, :n], b and b.matrix, b and b.shift)
    conjugate_side = affine_potential(icnn, params[:, n:], b and b.inverse_matrix,
                                      b and b.inverse_shift)

    def inverse_map(points: torch.Tensor) -> torch.Tensor:
        return potential_gradient(conjugate_side, points, create_graph=True)

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
    baseline: AffineBaseline | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    max_recoveries: int = 3,
) -> torch.Tensor:
    """Run W2GN on a batch of independent problems from the given parameters.

    The loss is summed over problems and Adam works coordinate-wise, so each problem follows
    exactly the trajectory it would follow alone; batching only removes the per-problem
    Python loop. The steps run through :func:`~skmetaot.amortize.train` at a constant
    learning rate, with its divergence guard: a failed step (a loss that is not finite or
    beyond ``DIVERGED_LOSS`` times the problems' second moments, a non-finite gradient or
    parameters) restores the last good parameters of the batch and divides the rate by 10.

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
    baseline : AffineBaseline, optional
        Fixed affine changes of variables of the problems' potentials.
    callback : callable, optional
        ``callback(step, params)`` after every step (``step`` counts from 1).
    max_recoveries : int, default=3
        Failed steps recovered from before giving up.

    Returns
    -------
    torch.Tensor of shape (B, 2 * icnn.n_params)

    Raises
    ------
    TrainingDiverged
        After ``max_recoveries`` recoveries (the exception's ``params`` holds the last good
        parameters: finite, and with a loss no worse than the starting ones').
    """
    holder = torch.nn.ParameterDict({"params": params.detach().clone()})
    current = holder["params"]
    optimizer = torch.optim.Adam(holder.parameters(), lr=learning_rate)
    batches = [sample()]  # the first batch sets the scale of a diverging loss

    def step_loss(step: int) -> torch.Tensor:
        if callback is not None and step > 0:
            callback(step, current.detach())  # the state after ``step`` steps, once it stood
        x, y = batches.pop() if batches else sample()
        return w2gn_loss(icnn, current, x, y, cycle_weight, baseline).loss * len(current)

    # The loss is of the order of the second moments (per problem); far beyond, W2GN diverges
    # while staying finite, and its last good state is what to keep.
    x, y = batches[0]
    moments = float((x.detach() ** 2).sum(-1).mean() + (y.detach() ** 2).sum(-1).mean())
    try:
        train(holder, step_loss, optimizer, n_steps=n_steps, learning_rate=learning_rate,
              schedule="constant", grad_clip=None, history=TrainingHistory(),
              max_recoveries=max_recoveries, description="W2GN refinement",
              max_abs_loss=DIVERGED_LOSS * len(current) * (moments + 1), synchronise=False)
    except TrainingDiverged as error:
        error.params = current.detach().clone()
        raise
    if callback is not None:
        callback(n_steps, current.detach())
    return current.detach().clone()
