"""Meta-training across processes and machines with :mod:`torch.distributed`.

skmetaot writes no cluster code of its own. When an estimator's ``fit`` runs in a process
group (started by ``torchrun``, which sets ``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``), the
network is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages the
gradients; each process draws its own pairs (the samplers offset their seed by the rank); rank
0 alone writes checkpoints and shows progress. The fitted estimator is the same on every rank.

:func:`init_from_environment` starts the process group from ``torchrun``'s environment
(``gloo`` on the CPU, ``nccl`` on CUDA) when it is not started yet.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

__all__ = ["init_from_environment", "is_distributed", "is_main_process", "rank", "world_size"]


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised process group.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_distributed()  # a plain Python process
    False
    """
    return world_size() > 1


def _in_process_group() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """The rank of this process (0 outside a process group).

    Returns
    -------
    int

    Examples
    --------
    >>> rank()
    0
    """
    return dist.get_rank() if _in_process_group() else 0


def world_size() -> int:
    """Number of processes (1 outside a process group).

    Returns
    -------
    int

    Examples
    --------
    >>> world_size()
    1
    """
    return dist.get_world_size() if _in_process_group() else 1


def is_main_process() -> bool:
    """True on rank 0 (and outside a process group): the process that writes and logs.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_main_process()
    True
    """
    return rank() == 0


def init_from_environment(backend: str | None = None) -> bool:
    """Start the default process group from ``torchrun``'s environment variables.

    Does nothing when the group is already started or when the process was not launched by
    ``torchrun`` (no ``WORLD_SIZE`` in the environment).

    Parameters
    ----------
    backend : {"gloo", "nccl"}, optional
        Default: ``"nccl"`` when CUDA is available, else ``"gloo"``.

    Returns
    -------
    bool
        Whether this process is now part of a process group.

    Examples
    --------
    >>> init_from_environment()  # not launched by torchrun
    False
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    if "WORLD_SIZE" not in os.environ:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return True


def local_device(device: torch.device) -> torch.device:
    """The CUDA device of this process's local rank when ``device`` is CUDA (one GPU each)."""
    if device.type == "cuda" and is_distributed() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in :class:`DistributedDataParallel` when distributed, else unchanged."""
    if not is_distributed():
        return module
    device = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a :class:`DistributedDataParallel` wrapper (else ``module``)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over the processes, so that every rank takes the same decisions.

    Gradients are averaged by :class:`DistributedDataParallel`; this reduces only the logged
    loss, so that all ranks see the same value when deciding to skip a non-finite step.
    """
    if not is_distributed():
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def gather(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` outside a process group)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
