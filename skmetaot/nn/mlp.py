"""Plain multilayer perceptrons."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from skmetaot.nn.activations import get_activation


class MLP(nn.Module):
    """Fully connected network ``in -> hidden -> out`` with a linear last layer.

    Parameters
    ----------
    in_features : int
    hidden_layer_sizes : sequence of int
    out_features : int
    activation : str, default="relu"
        Any name :func:`~skmetaot.nn.get_activation` knows.
    zero_last : bool, default=False
        Initialise the last layer to zero, so the network starts as the constant zero.

    Examples
    --------
    >>> import torch
    >>> MLP(4, (8, 8), 3)(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, in_features: int, hidden_layer_sizes: Sequence[int], out_features: int,
                 activation: str = "relu", zero_last: bool = False) -> None:
        super().__init__()
        self.activation = activation
        get_activation(activation)  # fail at construction, not at the first forward pass
        sizes = [in_features, *hidden_layer_sizes, out_features]
        self.layers = nn.ModuleList(nn.Linear(width_in, width_out)
                                    for width_in, width_out in zip(sizes[:-1], sizes[1:],
                                                                   strict=True))
        if zero_last:
            nn.init.zeros_(self.layers[-1].weight)
            nn.init.zeros_(self.layers[-1].bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Apply the network to ``inputs`` of shape (..., in_features)."""
        act = get_activation(self.activation)
        # Not self.layers[:-1]: slicing a ModuleList builds a new one (about 25 us, as much as
        # a small layer's product at batch 1).
        *hidden_layers, last = self.layers
        hidden = inputs
        for layer in hidden_layers:
            hidden = act(layer(hidden))
        return last(hidden)
