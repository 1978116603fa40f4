"""Input-convex neural networks that evaluate from a flat parameter vector."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from skmetaot.nn.activations import get_activation

QUADRATIC_TERMS = ("scalar", "full", "none")


class ICNN(nn.Module):
    """Input-convex neural network potential ``f: R^d -> R`` (Amos, Xu & Kolter, 2017).

    With hidden sizes ``h_0, ..., h_{L-1}``::

        z_0 = s(A_0 x + b_0)
        z_l = s(W_l^+ z_{l-1} + A_l x + b_l),              l = 1, ..., L-1
        f(x) = s_out(W_L^+ z_{L-1} + A_L x + b_L) + q(x)

    ``W_l^+ = softplus(V_l) / fan_in`` is non-negative by construction (a reparametrisation, so
    plain gradient steps keep the network convex), ``s`` is convex and non-decreasing, and ``q`` is
    a convex quadratic: ``0.5 exp(log_alpha) |x|^2`` (``"scalar"``), ``0.5 |L x|^2``
    (``"full"``) or nothing. Every layer is then convex in ``x``, so ``f`` is.

    All weights live in one flat parameter vector. :meth:`functional` evaluates the network from
    any such vector, or from a batch of them (one network per problem), which is what a
    hypernetwork predicts; the module's own ``params`` is one such vector.

    Parameters
    ----------
    dim : int
        Input dimension ``d``.
    hidden_layer_sizes : sequence of int, default=(64, 64, 32)
        Widths ``h_0, ..., h_{L-1}``.
    activation : str, default="elu"
        A convex non-decreasing activation: ``"elu"``, ``"celu"``, ``"softplus"``, ``"relu"`` or
        ``"leaky_relu"``.
    quadratic : {"scalar", "full", "none"}, default="scalar"
        The convex quadratic term added to the output.
    output_activation : bool, default=True
        Apply the activation to the output layer too (it helps training, as in Amos 2023).
    generator : torch.Generator, optional
        Source of randomness for the initial parameters.

    Attributes
    ----------
    params : torch.nn.Parameter of shape (n_params,)
        The flat parameter vector.
    layout : list of (str, tuple)
        Name and shape of each block of the flat vector, in order.

    Examples
    --------
    >>> import torch
    >>> icnn = ICNN(2, (8, 8))
    >>> icnn(torch.zeros(5, 2)).shape
    torch.Size([5])
    >>> batch = torch.stack([icnn.params.detach()] * 3)          # three networks
    >>> icnn.functional(batch, torch.zeros(3, 5, 2)).shape
    torch.Size([3, 5])
    """

    def __init__(
        self,
        dim: int,
        hidden_layer_sizes: Sequence[int] = (64, 64, 32),
        activation: str = "elu",
        quadratic: str = "scalar",
        output_activation: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = [int(h) for h in hidden_layer_sizes]
        if int(dim) < 1 or not sizes or min(sizes) < 1:
            raise ValueError(f"ICNN needs dim >= 1 and positive hidden sizes, got dim={dim}, "
                             f"hidden_layer_sizes={hidden_layer_sizes!r}")
        if quadratic not in QUADRATIC_TERMS:
            raise ValueError(f"quadratic={quadratic!r} is not one of {QUADRATIC_TERMS}")
        get_activation(activation, convex=True)
        self.dim = int(dim)
        self.hidden_layer_sizes = tuple(sizes)
        self.activation = activation
        self.quadratic = quadratic
        self.output_activation = bool(output_activation)
        widths = [*sizes, 1]
        layout: list[tuple[str, tuple[int, ...]]] = []
        for layer, width in enumerate(widths):
            if layer > 0:
                layout.append((f"wz{layer}", (width, widths[layer - 1])))
            layout += [(f"ax{layer}", (width, self.dim)), (f"b{layer}", (width,))]
        if quadratic == "scalar":
            layout.append(("log_alpha", (1,)))
        elif quadratic == "full":
            layout.append(("quad", (self.dim, self.dim)))
        self.layout = layout
        self.params = nn.Parameter(self.init_params(generator))

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return sum(math.prod(shape) for _, shape in self.layout)

    def init_params(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw a fresh flat parameter vector (fan-in scaled normal weights, zero biases).

        The map does not start at the identity: estimators pre-train it to (a random start
        learns faster afterwards than one built to be the identity).

        Parameters
        ----------
        generator : torch.Generator, optional

        Returns
        -------
        torch.Tensor of shape (n_params,)
        """
        blocks = []
        for name, shape in self.layout:
            if name.startswith(("ax", "wz")):
                block = torch.randn(shape, generator=generator) / math.sqrt(shape[1])
            elif name == "quad":
                block = torch.eye(self.dim)
            else:  # biases and log_alpha start at zero
                block = torch.zeros(shape)
            blocks.append(block.reshape(-1))
        return torch.cat(blocks)

    def unflatten(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split flat parameters (..., n_params) into named blocks of shape ``(..., *shape)``.

        Parameters
        ----------
        params : torch.Tensor of shape (..., n_params)

        Returns
        -------
        dict of str to torch.Tensor
        """
        if params.shape[-1] != self.n_params:
            raise ValueError(f"expected {self.n_params} parameters per network, got "
                             f"{params.shape[-1]}")
        batch_shape = params.shape[:-1]
        blocks, start = {}, 0
        for name, shape in self.layout:
            size = math.prod(shape)
            blocks[name] = params[..., start:start + size].reshape(*batch_shape, *shape)
            start += size
        return blocks

    def functional(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the network with the parameters ``params`` at the points ``x``.

        Parameters
        ----------
        params : torch.Tensor of shape (n_params,) or (B, n_params)
            One network, or a batch of B networks.
        x : torch.Tensor of shape (n, d), or (B, n, d) for a batch of networks
            The points.

        Returns
        -------
        torch.Tensor of shape (n,) or (B, n)
        """
        blocks = self.unflatten(params)
        batched = params.dim() == 2
        if batched and x.dim() != 3:
            raise ValueError(f"a batch of networks needs points of shape (B, n, d), got "
                             f"{tuple(x.shape)}")

        def affine(weight: torch.Tensor, bias: torch.Tensor | None, inputs: torch.Tensor):
            out = torch.matmul(inputs, weight.transpose(-1, -2))
            return out if bias is None else out + (bias.unsqueeze(-2) if batched else bias)

        act = get_activation(self.activation, convex=True)
        n_layers = len(self.hidden_layer_sizes) + 1
        hidden = act(affine(blocks["ax0"], blocks["b0"], x))
        for layer in range(1, n_layers):
            raw = blocks[f"wz{layer}"]
            positive = F.softplus(raw) / raw.shape[-1]
            pre = affine(positive, None, hidden) + affine(blocks[f"ax{layer}"],
                                                          blocks[f"b{layer}"], x)
            is_output = layer == n_layers - 1
            hidden = act(pre) if (not is_output or self.output_activation) else pre
        value = hidden.squeeze(-1)
        if self.quadratic == "scalar":
            alpha = blocks["log_alpha"].exp()
            value = value + 0.5 * alpha * (x * x).sum(-1)
        elif self.quadratic == "full":
            lx = torch.matmul(x, blocks["quad"].transpose(-1, -2))
            value = value + 0.5 * (lx * lx).sum(-1)
        return value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate at ``x`` of shape (n, d) with the module's own parameters."""
        return self.functional(self.params, x)
