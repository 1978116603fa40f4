"""A hypernetwork from pairs of measures to the flat parameters of ICNN potentials."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from skmetaot.nn.icnn import ICNN
from skmetaot.nn.mlp import MLP
from skmetaot.nn.potentials import potential_gradient


class PairHypernetwork(nn.Module):
    """Maps a pair of measures to parameter vectors: ``base + head(enc(alpha), enc(beta))``.

    One encoder (shared by the two measures) embeds each measure; an MLP decodes the two
    embeddings into a correction of the learned ``base`` vector. The head's last layer starts
    at zero, so the untrained hypernetwork predicts ``base`` for every pair (the identity map
    once ``base`` is pre-trained to it).

    Parameters
    ----------
    encoder : torch.nn.Module
        Called as ``encoder(*inputs)`` for each measure, returning (B, n_features).
    base : torch.Tensor of shape (n_outputs,)
        Initial value of the learned base vector.
    hidden_layer_sizes : sequence of int, default=(512,)
        Widths of the decoding MLP.
    n_features : int, optional
        Features the encoder returns per measure (default: its ``n_features`` attribute).

    Examples
    --------
    >>> import torch
    >>> from skmetaot.nn.encoders import SetEncoder
    >>> net = PairHypernetwork(SetEncoder(2, n_features=16), torch.zeros(10), (32,))
    >>> net((torch.rand(3, 50, 2),), (torch.rand(3, 40, 2),)).shape
    torch.Size([3, 10])
    """

    def __init__(self, encoder: nn.Module, base: torch.Tensor,
                 hidden_layer_sizes: Sequence[int] = (512,), *,
                 n_features: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.base = nn.Parameter(base.detach().clone())
        n_features = encoder.n_features if n_features is None else n_features
        self.head = MLP(2 * n_features, tuple(hidden_layer_sizes), base.numel(),
                        activation="relu", zero_last=True)

    def forward(self, source: tuple[torch.Tensor, ...],
                target: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Parameters (B, n_outputs) for the pairs whose encoder inputs are given."""
        features = torch.cat([self.encoder(*source), self.encoder(*target)], dim=-1)
        return self.base + self.head(features)


class FunctionalPotential(nn.Module):
    """One ICNN potential with fixed flat parameters: ``x -> phi(M x) + <c, x>``.

    ``phi`` is ``icnn.functional(params, .)``; without ``matrix`` the potential is ``phi``.

    Parameters
    ----------
    icnn : ICNN
        The architecture (its own parameters are not used).
    params : torch.Tensor of shape (icnn.n_params,)
    matrix : torch.Tensor of shape (d, d), optional
        A symmetric matrix M applied to the input.
    shift : torch.Tensor of shape (d,), optional
        The linear term c (needed with ``matrix``).

    Examples
    --------
    >>> icnn = ICNN(2, (4,))
    >>> FunctionalPotential(icnn, icnn.params.detach())(torch.zeros(3, 2)).shape
    torch.Size([3])
    """

    def __init__(self, icnn: ICNN, params: torch.Tensor, matrix: torch.Tensor | None = None,
                 shift: torch.Tensor | None = None) -> None:
        super().__init__()
        self.icnn = icnn
        self.register_buffer("params", params.detach().clone())
        self.register_buffer("matrix", None if matrix is None else matrix.detach().clone())
        self.register_buffer("shift", None if shift is None else shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Potential values at ``x`` (n, d)."""
        if self.matrix is None:
            return self.icnn.functional(self.params, x)
        return self.icnn.functional(self.params, x @ self.matrix) + x @ self.shift


class GradientMap(nn.Module):
    """The map ``y -> grad g(y)`` of a potential ``g`` (e.g. the conjugate's ICNN).

    Parameters
    ----------
    potential : torch.nn.Module
        Maps points (n, d) to values (n,).

    Examples
    --------
    >>> import torch
    >>> from skmetaot.nn import MLPPotential
    >>> potential = MLPPotential(2, (8,))
    >>> GradientMap(potential)(torch.zeros(3, 2)).shape
    torch.Size([3, 2])
    """

    def __init__(self, potential: nn.Module) -> None:
        super().__init__()
        self.potential = potential

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``grad g(y)`` for points ``y`` (n, d)."""
        return potential_gradient(self.potential, y)
