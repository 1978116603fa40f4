"""Encoders of measures: point clouds (permutation invariant) and images (pixel grids)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from skmetaot.nn.mlp import MLP


def moment_features(points: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean and covariance (upper triangle) of each point cloud in a batch.

    The first two moments fix the optimal map between Gaussians, and they are what a W2 map
    between real measures mostly has to get right, so encoders hand them to the network exactly
    instead of asking it to learn them.

    Parameters
    ----------
    points : torch.Tensor of shape (B, n, d)
    weights : torch.Tensor of shape (B, n), optional
        Probability weights of the points (uniform when omitted).

    Returns
    -------
    torch.Tensor of shape (B, d + d (d + 1) / 2)

    Examples
    --------
    >>> import torch
    >>> moment_features(torch.zeros(4, 10, 3)).shape
    torch.Size([4, 9])
    """
    if weights is None:
        weights = torch.full(points.shape[:2], 1.0 / points.shape[1], dtype=points.dtype,
                             device=points.device)
    mean = torch.einsum("bn,bnd->bd", weights, points)
    centred = points - mean.unsqueeze(1)
    cov = torch.einsum("bn,bnd,bne->bde", weights, centred, centred)
    rows, cols = torch.triu_indices(points.shape[-1], points.shape[-1], device=points.device)
    return torch.cat([mean, cov[:, rows, cols]], dim=-1)


class SetEncoder(nn.Module):
    """Permutation-invariant encoder of point clouds in R^d (Deep Sets with exact moments).

    Each point goes through an MLP; the features are averaged over the measure (weighted by
    its weights), concatenated with the measure's mean and covariance and mapped to the output.
    Works for any number of points.

    Parameters
    ----------
    dim : int
        Dimension d of the points.
    hidden_layer_sizes : sequence of int, default=(128, 128)
        Widths of the per-point MLP; the last one is the pooled width.
    n_features : int, default=256
        Size of the encoding.

    Examples
    --------
    >>> import torch
    >>> SetEncoder(3)(torch.rand(2, 100, 3)).shape
    torch.Size([2, 256])
    """

    def __init__(self, dim: int, hidden_layer_sizes: Sequence[int] = (128, 128),
                 n_features: int = 256) -> None:
        super().__init__()
        sizes = [int(h) for h in hidden_layer_sizes]
        if dim < 1 or not sizes or min(sizes) < 1 or n_features < 1:
            raise ValueError(f"SetEncoder needs dim >= 1, positive hidden sizes and features, "
                             f"got dim={dim}, hidden_layer_sizes={hidden_layer_sizes!r}, "
                             f"n_features={n_features}")
        self.dim = int(dim)
        self.n_features = int(n_features)
        self.point_net = MLP(self.dim, sizes[:-1], sizes[-1], activation="relu")
        n_moments = self.dim + self.dim * (self.dim + 1) // 2
        self.head = nn.Linear(sizes[-1] + n_moments, self.n_features)

    def forward(self, points: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a batch of point clouds ``points`` (B, n, d), optionally weighted (B, n)."""
        features = F.relu(self.point_net(points))
        if weights is None:
            pooled = features.mean(1)
        else:
            pooled = torch.einsum("bn,bnh->bh", weights, features)
        return F.relu(self.head(torch.cat([pooled, moment_features(points, weights)], -1)))


class ImageEncoder(nn.Module):
    """Convolutional encoder of images given as pixel grids (B, C, H, W) with values in [0, 1].

    Images are first area-resized to ``resolution`` x ``resolution``, so any size works. Four
    strided convolutions with global average pooling give spatial features; the exact moments
    of the pixel values (the measure's mean and covariance) are appended, as in
    :class:`SetEncoder`. It plays the part of the ResNet of the Meta OT paper at a size that
    trains on a CPU.

    Parameters
    ----------
    channels : int, default=3
    n_features : int, default=256
    width : int, default=32
        Channels of the first convolution (doubled at each of the next three).
    resolution : int, default=32

    Examples
    --------
    >>> import torch
    >>> ImageEncoder()(torch.rand(2, 3, 50, 40)).shape
    torch.Size([2, 256])
    """

    def __init__(self, channels: int = 3, n_features: int = 256, width: int = 32,
                 resolution: int = 32) -> None:
        super().__init__()
        if min(channels, n_features, width, resolution) < 1:
            raise ValueError("ImageEncoder sizes must be positive")
        self.channels = int(channels)
        self.n_features = int(n_features)
        self.resolution = int(resolution)
        widths = [self.channels, width, 2 * width, 4 * width, 8 * width]
        self.convs = nn.ModuleList(
            nn.Conv2d(w_in, w_out, kernel_size=3, stride=1 if i == 0 else 2, padding=1)
            for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)))
        n_moments = self.channels + self.channels * (self.channels + 1) // 2
        self.head = nn.Linear(widths[-1] + n_moments, self.n_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode a batch of images (B, C, H, W)."""
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ValueError(f"ImageEncoder expects images of shape (B, {self.channels}, H, W), "
                             f"got {tuple(images.shape)}")
        pixels = images.flatten(2).transpose(1, 2)
        hidden = F.adaptive_avg_pool2d(images, self.resolution)
        for conv in self.convs:
            hidden = F.relu(conv(hidden))
        pooled = hidden.mean((-2, -1))
        return F.relu(self.head(torch.cat([pooled, moment_features(pixels)], -1)))


@dataclass(frozen=True)
class EncoderSpec:
    """How a meta estimator builds, feeds and budgets a measure encoder.

    Parameters
    ----------
    build : callable
        ``build(dim, n_features) -> torch.nn.Module``: the encoder of measures in R^dim (or
        of images with ``dim`` channels), returning (B, n_features).
    inputs : {"points", "images"}
        What it reads: ``"points"``, called as ``encoder(points)`` on the samples of a
        training step, (B, M, d) with equal weights, and ``encoder(points, weights)`` on the
        measure's encoding points with their weights (B, M); ``"images"``,
        ``encoder(pixels)`` with (B, C, S, S) pixel grids of measures given as images.
    elements_per_measure : callable
        ``elements_per_measure(dim, n_points, n_features) -> int``: the activations held per
        measure, which sizes the batches that predict within the memory budget.

    Examples
    --------
    >>> spec = ENCODERS["set"]
    >>> spec.inputs, spec.build(2, 8)(torch.rand(3, 5, 2), torch.full((3, 5), 0.2)).shape
    ('points', torch.Size([3, 8]))
    """

    build: Callable[[int, int], nn.Module]
    inputs: str
    elements_per_measure: Callable[[int, int, int], int]


#: The measure encoders :class:`~skmetaot.MetaICNNTransport` knows, by name
#: (:func:`register_encoder` adds one).
ENCODERS: dict[str, EncoderSpec] = {
    "set": EncoderSpec(lambda dim, n_features: SetEncoder(dim, n_features=n_features), "points",
                       lambda dim, n_points, n_features: n_points * (dim + n_features)),
    # The feature maps of one image at the collection's resize (64 x 64), about 60 per pixel.
    "image": EncoderSpec(lambda dim, n_features: ImageEncoder(dim, n_features), "images",
                         lambda dim, n_points, n_features: 60 * 64 ** 2),
}


def register_encoder(name: str, spec: EncoderSpec, *, replace: bool = False) -> None:
    """Make ``MetaICNNTransport(encoder=name)`` build the encoder ``spec`` describes.

    Parameters
    ----------
    name : str
    spec : EncoderSpec
    replace : bool, default=False
        Allow replacing an encoder of that name.

    Examples
    --------
    >>> register_encoder("mean", EncoderSpec(
    ...     lambda dim, n_features: SetEncoder(dim, (16,), n_features), "points",
    ...     lambda dim, n_points, n_features: n_points * 16))
    >>> "mean" in ENCODERS
    True
    >>> del ENCODERS["mean"]
    """
    if not isinstance(spec, EncoderSpec):
        raise TypeError(f"spec must be an EncoderSpec, got {type(spec).__name__}")
    if spec.inputs not in ("points", "images"):
        raise ValueError(f"spec.inputs={spec.inputs!r} is not one of 'points', 'images'")
    if name == "auto" or (name in ENCODERS and not replace):
        raise ValueError(f"an encoder named {name!r} exists; pass replace=True to replace it"
                         if name != "auto" else "'auto' is not an encoder name")
    ENCODERS[name] = spec
