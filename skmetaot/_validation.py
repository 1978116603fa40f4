"""Checks of scalar arguments, shared by every layer (solvers, datasets, estimators).

This module imports nothing from skmetaot, so the low layers use it without pulling in the
estimators. Each check names the argument and shows the value it got.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def _is_integer(value: Any) -> bool:
    # bool is an int subclass, but True is no count of anything.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(value: Any, name: str, minimum: int, kind: str) -> int:
    if not _is_integer(value) or value < minimum:
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1, else raise naming ``name``.

    Parameters
    ----------
    value : object
        Python or numpy integer (bools are rejected).
    name : str
        The argument's name, for the error message.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``"{name} must be a positive integer, got {value!r}"``.
    """
    return _check_int(value, name, 1, "a positive integer")


def check_non_negative_int(value: Any, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 0, else raise naming ``name``.

    Parameters and errors as :func:`check_positive_int`, with 0 allowed
    (``"{name} must be a non-negative integer, got {value!r}"``).
    """
    return _check_int(value, name, 0, "a non-negative integer")


def check_positive_float(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number > 0, else raise naming ``name``.

    Parameters
    ----------
    value : object
        Python or numpy real number (bools are rejected).
    name : str
        The argument's name, for the error message.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``"{name} must be a finite positive number, got {value!r}"``.
    """
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (real and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return float(value)
