"""The numpy/torch boundary: device resolution and array conversion.

Everything inside skmetaot computes on torch tensors; users hand in numpy arrays or torch
tensors and get the same kind back (numpy in -> numpy out, torch in -> torch out on the
input's device).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    torch.float32: torch.float32,
    torch.float64: torch.float64,
    np.float32: torch.float32,
    np.float64: torch.float64,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a device specification into a :class:`torch.device`.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None) picks CUDA when it is available and the CPU otherwise; any other
        value is passed to :class:`torch.device`.

    Returns
    -------
    torch.device
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device") from exc
    if resolved.type == "meta":
        raise ValueError(f"device={device!r} holds no data and cannot compute; use 'cpu', "
                         "'cuda' or 'auto'")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return resolved


def resolve_dtype(dtype: Any) -> torch.dtype | None:
    """Turn ``"float32"``/``"float64"`` (or the numpy/torch types) into a torch dtype.

    Parameters
    ----------
    dtype : str, numpy or torch floating type, or None
        None keeps the dtype of the data.

    Returns
    -------
    torch.dtype or None
    """
    if dtype is None:
        return None
    if isinstance(dtype, np.dtype):
        dtype = dtype.type
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use 'float32' or 'float64'")
    return _DTYPES[dtype]


@dataclass(frozen=True)
class ArrayKind:
    """What the user handed in, so results go back in the same form.

    Attributes
    ----------
    is_torch : bool
        True when the input was a torch tensor.
    device : torch.device
        The device of a torch input (CPU for numpy input).
    """

    is_torch: bool = False
    device: torch.device = torch.device("cpu")

    def wrap(self, tensor: torch.Tensor) -> Any:
        """Return ``tensor`` as the user's kind: a numpy array or a tensor on their device."""
        if self.is_torch:
            return tensor.to(self.device)
        return tensor.detach().cpu().numpy()


def kind_of(*arrays: Any) -> ArrayKind:
    """Return the :class:`ArrayKind` of the first torch tensor among ``arrays`` (else numpy)."""
    for array in arrays:
        if isinstance(array, torch.Tensor):
            return ArrayKind(True, array.device)
    return ArrayKind(False)


def check_has_data(value: Any, name: str) -> None:
    """Raise a clear :class:`ValueError` for a tensor on the ``meta`` device (shapes, no values).

    Parameters
    ----------
    value : object
        Anything; only torch tensors are checked.
    name : str
        How to call the data in the error message.
    """
    if isinstance(value, torch.Tensor) and value.is_meta:
        raise ValueError(f"{name} is a tensor on the 'meta' device, which holds no data; pass "
                         "a tensor with values (on the CPU or a GPU) or a numpy array")


def check_points_input(value: Any, name: str) -> None:
    """Screen one table of points before scikit-learn's validation, with clear errors.

    Tensors on the ``meta`` device, ragged nested lists (:class:`ValueError`), a pair of
    arrays ``(Xs, Xt)`` where one array is expected and string arrays (:class:`TypeError`) are
    rejected here; everything else is left to scikit-learn's ``check_array``, which converts
    integer and numeric object arrays to float.

    Parameters
    ----------
    value : object
        The data.
    name : str
        How to call the data in error messages (e.g. ``"X"``).
    """
    if isinstance(value, torch.Tensor):
        check_has_data(value, name)
        return
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim == 2 for v in value):
        raise TypeError(f"{name} must be one array of points (n_samples, n_features), got a "
                        "pair of arrays")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
    if isinstance(value, (tuple, list)):
        try:
            value = np.asarray(value)
        except ValueError as exc:
            raise ValueError(f"{name} is ragged or not array-like: {exc}") from exc
    if isinstance(value, np.ndarray) and value.dtype.kind in "USV":
        raise TypeError(f"{name} must be an array of numbers, got dtype {value.dtype}")


def as_float_tensor(
    value: Any,
    name: str,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Convert array-like ``value`` to a floating tensor, with clear errors for the wrong kind.

    Integer and boolean arrays become float64 (numpy's promotion); complex, object and string
    arrays raise :class:`TypeError`. Non-finite values, ragged nested lists and tensors on the
    ``meta`` device (which hold no data) raise :class:`ValueError`. Tensors on any other device
    are accepted and moved to ``device`` when it is given.

    Parameters
    ----------
    value : array-like or torch.Tensor
        The data.
    name : str
        How to call the data in error messages (e.g. ``"a[3]"``).
    dtype : torch.dtype, optional
        Target floating dtype; by default float32/float64 inputs keep theirs.
    device : torch.device, optional
        Target device; by default the tensor's own (CPU for numpy input).
    finite : bool, default=True
        Raise on NaN/inf (callers that report finer-grained errors themselves pass False).

    Returns
    -------
    torch.Tensor
    """
    if isinstance(value, torch.Tensor):
        check_has_data(value, name)
        tensor = value.detach()
    else:
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
        try:
            array = np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{name} is ragged or not array-like: {exc}") from exc
        if array.dtype == object:
            raise TypeError(f"{name} must be an array of numbers, got an object array")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise TypeError(f"{name} must be an array of numbers, got dtype {array.dtype}")
        array = np.ascontiguousarray(array)
        # Read-only inputs (memory maps, joblib's shared arrays) are copied: torch would
        # otherwise share memory it is not allowed to write.
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.is_complex():
        raise TypeError(f"{name} must be real, got complex dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    elif tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.to(torch.float32)
    tensor = tensor.to(dtype=dtype or tensor.dtype, device=device or tensor.device)
    if finite and tensor.numel() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor
