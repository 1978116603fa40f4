"""Plain multilayer perceptrons."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Fully connected network ``in -> hidden... -> out`` with a linear last layer.

    Parameters
    ----------
    in_features : int
    hidden_layer_sizes : sequence of int
    out_features : int
    activation : {"relu", "elu", "gelu", "tanh"}, default="relu"

    Examples
    --------
    >>> import torch
    >>> MLP(4, (8, 8), 3)(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, in_features: int, hidden_layer_sizes: Sequence[int], out_features: int,
                 activation: str = "relu") -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not one of {sorted(_ACTIVATIONS)}")
        sizes = [in_features, *hidden_layer_sizes]
        layers: list[nn.Module] = []
        for width_in, width_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(width_in, width_out), _ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Apply the network to ``inputs`` of shape (..., in_features)."""
        return self.layers(inputs)
