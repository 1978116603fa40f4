"""Training checkpoints on disk: save every N steps, resume after a crash with the same result.

A checkpoint holds the training state of an estimator at a step boundary: the state dicts of
its modules and optimisers, its random generators, the torch RNG, and its training history.
It is written atomically (a temporary file, then a rename), so a process killed while writing
leaves the previous checkpoint intact. Resuming rebuilds the estimator exactly as a fresh fit
does (same seed, same initialisation) and then loads the state in place, so the remaining steps
draw the same batches as an uninterrupted run: on the CPU the final model is the same.

Files are read with ``torch.load(weights_only=True)``: they hold tensors and plain Python
values only, never pickled code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skmetaot import distributed
from skmetaot.amortize.training import TrainingHistory

FORMAT = "skmetaot-training-checkpoint/1"
#: Parameters that do not change what is trained, so a run may resume under other values.
IGNORED_PARAMS = ("verbose", "device", "checkpoint_path", "checkpoint_every")


def data_fingerprint(*arrays: Any) -> str:
    """A digest of the training data, so a checkpoint is never resumed on other data.

    Parameters
    ----------
    *arrays : torch.Tensor, numpy.ndarray, None or plain values
        Plain values (strings, numbers, tuples) enter by their ``repr``.

    Returns
    -------
    str
        A hexadecimal digest of the shapes, dtypes and bytes of the arrays.
    """
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        if array is None or isinstance(array, (str, bytes, int, float, tuple)):
            digest.update(repr(array).encode())  # a description standing for a stream
            continue
        tensor = torch.as_tensor(array).detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _stable(value: Any) -> str:
    """A representation that is the same in every process (no memory addresses)."""
    if callable(value) and not isinstance(value, type):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return data_fingerprint(value)
    return repr(value)


def checkpoint_key(estimator: Any, data_digest: str) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: class, parameters and data."""
    params = estimator.get_params(deep=False)
    return {
        "estimator": type(estimator).__name__,
        "params": {k: _stable(v) for k, v in sorted(params.items()) if k not in IGNORED_PARAMS},
        "data": data_digest,
    }


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def training_state(estimator: Any) -> dict[str, Any]:
    """Everything that training changes, as tensors and plain values on the CPU."""
    state: dict[str, Any] = {"modules": {}, "optimizers": {}, "generators": {},
                             "torch_rng": torch.get_rng_state()}
    for name, value in vars(estimator).items():
        if isinstance(value, torch.nn.Module):
            state["modules"][name] = _to_cpu(distributed.unwrap(value).state_dict())
        elif isinstance(value, torch.optim.Optimizer):
            state["optimizers"][name] = _to_cpu(value.state_dict())
        elif isinstance(value, torch.Generator):
            state["generators"][name] = value.get_state()
        elif isinstance(value, TrainingHistory):
            state["history"] = (name, _to_cpu(dataclasses.asdict(value)))
    metrics = getattr(estimator, "_metrics", None)
    if metrics is not None:
        state["metrics"] = {k: list(v) for k, v in metrics.items()}
    if distributed.is_distributed():
        # Each process draws its own batches: keep every rank's generators (a collective call,
        # made by every rank at the same step).
        state["rank_generators"] = distributed.gather(state.pop("generators"))
    return state


def restore_training_state(estimator: Any, state: dict[str, Any]) -> None:
    """Load a :func:`training_state` into the estimator's live objects, in place.

    In place, because the training loop already holds the modules, the optimiser and the
    history: replacing the objects would leave it training copies.
    """
    if "rank_generators" in state:
        per_rank = state["rank_generators"]
        if len(per_rank) != distributed.world_size():
            raise ValueError(f"the checkpoint was written by {len(per_rank)} processes; resume "
                             f"it with as many (this run has {distributed.world_size()})")
        state = {**state, "generators": per_rank[distributed.rank()]}
    elif distributed.is_distributed():
        raise ValueError("the checkpoint was written by one process; resume it with one")
    for kind, loader in (("modules", "load_state_dict"), ("optimizers", "load_state_dict"),
                         ("generators", "set_state")):
        for name, value in state[kind].items():
            target = getattr(estimator, name, None)
            if isinstance(target, torch.nn.Module):
                target = distributed.unwrap(target)
            if target is None:
                raise ValueError(f"the checkpoint has a {kind[:-1]} {name!r} that this "
                                 "estimator does not")
            try:
                getattr(target, loader)(value)
            except (RuntimeError, ValueError, KeyError) as error:
                raise ValueError(f"the checkpoint's {name!r} does not fit this estimator: "
                                 f"{error}") from error
    if "history" in state:
        name, fields = state["history"]
        history = getattr(estimator, name)
        for field_name, value in fields.items():
            setattr(history, field_name, value)
    if "metrics" in state:
        metrics = estimator._metrics
        metrics.clear()
        metrics.update({k: list(v) for k, v in state["metrics"].items()})
    torch.set_rng_state(state["torch_rng"])


class CheckpointFile:
    """One checkpoint file: atomic writes, validated reads.

    Parameters
    ----------
    path : str or os.PathLike
        Where the checkpoint lives (parent directories are created on the first write).
    key : dict
        :func:`checkpoint_key` of the fit; a file written under another key is refused.
    """

    def __init__(self, path: str | os.PathLike, key: dict[str, Any]) -> None:
        self.path = Path(path)
        self.key = key

    def load(self) -> dict[str, Any] | None:
        """The saved payload (``step`` and ``state``), or None when there is no file yet."""
        if not self.path.exists():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or foreign file: say which and why
            raise ValueError(f"checkpoint_path={str(self.path)!r} exists but is not a readable "
                             f"skmetaot checkpoint ({type(error).__name__}: {error}); remove "
                             "it or choose another path") from error
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"checkpoint_path={str(self.path)!r} is not an skmetaot training "
                             "checkpoint; remove it or choose another path")
        saved = payload["key"]
        different = [name for name in ("estimator", "data") if saved[name] != self.key[name]]
        different += [f"parameter {name}" for name in sorted(set(saved["params"])
                                                             | set(self.key["params"]))
                      if saved["params"].get(name) != self.key["params"].get(name)]
        if different:
            raise ValueError(f"checkpoint_path={str(self.path)!r} was written by another fit "
                             f"(different {', '.join(different)}); remove it or choose "
                             "another path to start afresh")
        return payload

    def save(self, step: int, state: dict[str, Any]) -> None:
        """Write the state reached after ``step`` global steps, replacing the file atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        payload = {"format": FORMAT, "key": self.key, "step": int(step), "state": state}
        with open(temporary, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
