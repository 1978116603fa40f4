"""Activation functions by name, shared by every network in :mod:`skmetaot.nn`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

#: Activations that are convex and non-decreasing, so they keep an ICNN convex in its input.
CONVEX_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu": F.elu,
    "celu": F.celu,
    "softplus": F.softplus,
    "relu": F.relu,
    "leaky_relu": partial(F.leaky_relu, negative_slope=0.2),
}

#: Every activation a (non-convex) MLP may use.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    **CONVEX_ACTIVATIONS,
    "gelu": F.gelu,
    "tanh": torch.tanh,
}


def get_activation(name: str, *, convex: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the activation called ``name``.

    Parameters
    ----------
    name : str
        One of ``"elu"``, ``"celu"``, ``"softplus"``, ``"relu"``, ``"leaky_relu"`` (slope 0.2),
        and, when ``convex`` is false, ``"gelu"`` and ``"tanh"``.
    convex : bool, default=False
        Only accept convex, non-decreasing activations (what an ICNN needs).

    Returns
    -------
    callable

    Examples
    --------
    >>> import torch
    >>> get_activation("relu")(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """
    table = CONVEX_ACTIVATIONS if convex else ACTIVATIONS
    if not isinstance(name, str) or name not in table:
        kind = "convex non-decreasing activation" if convex else "activation"
        raise ValueError(f"activation={name!r} is not a known {kind}; use one of {sorted(table)}")
    return table[name]
