"""Non-convex potentials, conjugate amortization models and the gradient of a potential."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from skmetaot.nn.activations import get_activation
from skmetaot.nn.mlp import MLP


class MLPPotential(nn.Module):
    """A non-convex MLP potential ``f(x) = s(MLP(x)) + 0.5 exp(log_alpha) |x|^2``.

    Amos (2023) shows such potentials work as well as ICNNs, often better, once the conjugate
    is solved instead of only amortized. The quadratic term makes ``grad f`` start close to
    the identity.

    Parameters
    ----------
    dim : int
        Input dimension.
    hidden_layer_sizes : sequence of int, default=(64, 64, 32)
    activation : str, default="elu"
        Hidden (and output) activation.

    Examples
    --------
    >>> import torch
    >>> MLPPotential(3, (16,))(torch.zeros(4, 3)).shape
    torch.Size([4])
    """

    def __init__(self, dim: int, hidden_layer_sizes: Sequence[int] = (64, 64, 32),
                 activation: str = "elu") -> None:
        super().__init__()
        self.dim = int(dim)
        self.activation = activation
        self.network = MLP(self.dim, tuple(hidden_layer_sizes), 1, activation=activation)
        self.log_alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate at ``x`` of shape (n, d); returns shape (n,)."""
        # An activation on the output, as in the reference, keeps early training well scaled.
        value = get_activation(self.activation)(self.network(x)).squeeze(-1)
        return value + 0.5 * self.log_alpha.exp() * (x * x).sum(-1)


class ResidualAmortizer(nn.Module):
    """Predict the conjugate's argmin as ``x(y) = y + h(y)``, starting at the identity.

    Parameters
    ----------
    dim : int
    hidden_layer_sizes : sequence of int, default=(64, 64, 32)
    activation : str, default="elu"

    Examples
    --------
    >>> import torch
    >>> y = torch.randn(4, 2)
    >>> bool(torch.equal(ResidualAmortizer(2)(y), y))        # zero residual at initialisation
    True
    """

    def __init__(self, dim: int, hidden_layer_sizes: Sequence[int] = (64, 64, 32),
                 activation: str = "elu") -> None:
        super().__init__()
        self.residual = MLP(int(dim), tuple(hidden_layer_sizes), int(dim),
                            activation=activation, zero_last=True)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Predicted argmin for each row of ``y`` (n, d)."""
        return y + self.residual(y)


def potential_gradient(potential: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       *, create_graph: bool = False) -> torch.Tensor:
    """The gradient ``grad f(x)`` of a potential, row by row (the Brenier map).

    Parameters
    ----------
    potential : callable
        Maps points (n, d) to values (n,), rows independent.
    x : torch.Tensor of shape (n, d)
    create_graph : bool, default=False
        Keep the graph so the result can be differentiated again (with respect to the
        potential's parameters, e.g. for the cycle loss of W2GN). Without it the result is
        detached and no parameter receives a gradient.

    Returns
    -------
    torch.Tensor of shape (n, d)

    Examples
    --------
    >>> import torch
    >>> potential_gradient(lambda x: 0.5 * (x ** 2).sum(-1), torch.ones(2, 3))
    tensor([[1., 1., 1.],
            [1., 1., 1.]])
    """
    with torch.enable_grad():
        points = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        values = potential(points)
        (grad,) = torch.autograd.grad(values.sum(), points, create_graph=create_graph)
    return grad if create_graph else grad.detach()
