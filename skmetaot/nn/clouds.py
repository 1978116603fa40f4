"""Networks mapping a pair of weighted point clouds to a potential at each source atom.

Both encoders are permutation-equivariant in the source atoms, invariant to the order of the
target atoms, and work for any sizes n and m: every interaction between atoms is a sum weighted
by the measures' weights (Deep Sets) or an attention whose logits include the log-weights
(cross-attention), so atoms without mass (padding) take part in nothing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skmetaot.nn.mlp import MLP

#: The encoders :class:`CloudPotentialNet` knows.
ENCODERS = ("deepsets", "attention")


def _weighted_mean(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bn,bnh->bh", weights, features)


class WeightedCrossAttention(nn.Module):
    """Multi-head attention of the atoms of one measure to those of another, by mass and cost.

    The logits of head h are ``<q_i, k_j> / sqrt(d_h) + log w_j - C_ij / tau_h``: a learned
    content term, the other measure's log-weights (so attention is to mass, and atoms without
    mass get none) and a kernel of the cost at a learned temperature per head (initialised
    from fine to coarse). So the layer is a learned, multi-scale generalisation of the
    Sinkhorn update, which is one such attention with the potentials as values.

    Parameters
    ----------
    width : int
        Feature width (a multiple of ``n_heads``).
    n_heads : int, default=4

    Examples
    --------
    >>> import torch
    >>> layer = WeightedCrossAttention(8, n_heads=2)
    >>> out = layer(torch.rand(3, 5, 8), torch.rand(3, 7, 8), torch.full((3, 7), 1 / 7),
    ...             torch.rand(3, 5, 7))
    >>> out.shape
    torch.Size([3, 5, 8])
    """

    def __init__(self, width: int, n_heads: int = 4) -> None:
        super().__init__()
        if width % n_heads:
            raise ValueError(f"width={width} must be a multiple of n_heads={n_heads}")
        self.n_heads, self.head_width = n_heads, width // n_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)
        # Cost temperatures from 1/100 to 1 of the pair's cost scale, one per head.
        self.log_temperature = nn.Parameter(torch.linspace(math.log(1e-2), 0.0, n_heads))

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_weights: torch.Tensor,
                cost: torch.Tensor) -> torch.Tensor:
        """Attend from queries (B, n, w) to keys (B, m, w), weights (B, m) and cost (B, n, m)."""
        batch, n, _ = queries.shape
        m = keys.shape[1]
        q = self.query(queries).view(batch, n, self.n_heads, self.head_width).transpose(1, 2)
        k = self.key(keys).view(batch, m, self.n_heads, self.head_width).transpose(1, 2)
        v = self.value(keys).view(batch, m, self.n_heads, self.head_width).transpose(1, 2)
        temperature = self.log_temperature.exp()[None, :, None, None]
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_width)
        logits = logits - cost[:, None] / temperature + torch.log(key_weights)[:, None, None, :]
        mixed = torch.softmax(logits, -1) @ v  # (B, heads, n, head_width)
        return self.out(mixed.transpose(1, 2).reshape(batch, n, -1))


class CloudPotentialNet(nn.Module):
    """A correction to the source potential at each atom of a pair of weighted point clouds.

    Atoms are embedded from their features (:func:`skmetaot.amortize.cloud_features`).
    ``"deepsets"``: each source atom's output is an MLP of its embedding and of a context
    vector, the weighted means of the embeddings of both measures. ``"attention"``: first
    ``n_layers`` rounds of :class:`WeightedCrossAttention` (source atoms attend to the target's,
    then target atoms to the updated source's, each with a residual MLP), then the same
    head. The last layer starts at zero, so the network starts as the baseline it corrects.

    Parameters
    ----------
    n_features : int
        Features per atom (both measures).
    encoder : {"deepsets", "attention"}, default="attention"
    width : int, default=64
    n_layers : int, default=2
        Attention rounds (``"attention"``) or hidden layers of the embedding MLPs.
    n_heads : int, default=4

    Examples
    --------
    >>> import torch
    >>> net = CloudPotentialNet(6, encoder="deepsets", width=16)
    >>> a, b = torch.full((2, 5), 0.2), torch.full((2, 7), 1 / 7)
    >>> net(torch.rand(2, 5, 6), a, torch.rand(2, 7, 6), b, torch.rand(2, 5, 7)).shape
    torch.Size([2, 5])
    """

    def __init__(self, n_features: int, encoder: str = "attention", width: int = 64,
                 n_layers: int = 2, n_heads: int = 4) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder={encoder!r} is not one of {ENCODERS}")
        self.encoder = encoder
        hidden = (width,) * (n_layers if encoder == "deepsets" else 1)
        self.embed_source = MLP(n_features, hidden, width, activation="gelu")
        self.embed_target = MLP(n_features, hidden, width, activation="gelu")
        if encoder == "attention":
            self.to_source = nn.ModuleList(WeightedCrossAttention(width, n_heads)
                                           for _ in range(n_layers))
            self.to_target = nn.ModuleList(WeightedCrossAttention(width, n_heads)
                                           for _ in range(n_layers - 1))
            self.mix = nn.ModuleList(MLP(width, (2 * width,), width, activation="gelu")
                                     for _ in range(2 * n_layers - 1))
            self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(2 * n_layers - 1))
        self.head = MLP(3 * width, (width,), 1, activation="gelu", zero_last=True)

    def forward(self, source: torch.Tensor, a: torch.Tensor, target: torch.Tensor,
                b: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
        """Correction (B, n) from atom features (B, n, k), (B, m, k), weights and scaled cost."""
        h_source, h_target = self.embed_source(source), self.embed_target(target)
        if self.encoder == "attention":
            cost_t = cost.transpose(1, 2)
            for layer, attend in enumerate(self.to_source):
                h_source = h_source + attend(h_source, h_target, b, cost)
                h_source = h_source + self.mix[2 * layer](self.norms[2 * layer](h_source))
                if layer < len(self.to_target):  # the last round updates the source only
                    h_target = h_target + self.to_target[layer](h_target, h_source, a, cost_t)
                    h_target = h_target + self.mix[2 * layer + 1](
                        self.norms[2 * layer + 1](h_target))
        context = torch.cat([_weighted_mean(a, h_source), _weighted_mean(b, h_target)], -1)
        inputs = torch.cat([h_source, context[:, None, :].expand(-1, h_source.shape[1], -1)], -1)
        return self.head(inputs)[..., 0]
