"""Checks of scalar arguments, shared by every layer (solvers, datasets, estimators).

This module imports nothing from skmetaot, so the low layers use it without pulling in the
estimators. Each check names the argument and shows the value it got.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
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
    return _check_real(value, name, positive=True)


def check_non_negative_float(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number >= 0, else raise naming ``name``.

    Parameters and errors as :func:`check_positive_float`, with 0 allowed
    (``"{name} must be a finite non-negative number, got {value!r}"``).
    """
    return _check_real(value, name, positive=False)


def _check_real(value: Any, name: str, *, positive: bool) -> float:
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (real and math.isfinite(value) and (value > 0 if positive else value >= 0)):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")
    return float(value)


# -- rules: checks declared as data (an estimator's ``_parameter_rules``) ---------------------
#: A rule takes ``(value, name)`` and raises a ValueError or TypeError naming ``name``.
Rule = Callable[[Any, str], Any]


def one_of(choices: Iterable[Any] | Callable[[], Iterable[Any]], hint: str = "") -> Rule:
    """A rule accepting the values in ``choices``, with ``hint`` appended to its error.

    ``choices`` may be a callable, read at check time (a registry that grows). Strings match
    by equality, other choices (None, sentinels) by identity, so that an array or a number
    given where a name is expected never compares element-wise or as equal to ``True``.

    Examples
    --------
    >>> one_of(("cosine", "constant"))("linear", "learning_rate_schedule")
    Traceback (most recent call last):
    ...
    ValueError: learning_rate_schedule='linear' is not one of 'cosine', 'constant'
    """
    def rule(value: Any, name: str) -> Any:
        allowed = tuple(choices() if callable(choices) else choices)
        if not any(value is choice or (isinstance(choice, str) and isinstance(value, str)
                                          and value == choice)
                   for choice in allowed):
            raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}"
                             + (f" {hint}" if hint else ""))
        return value
    return rule


def optional(rule: Rule) -> Rule:
    """A rule accepting None and whatever ``rule`` accepts."""
    def checked(value: Any, name: str) -> Any:
        return None if value is None else rule(value, name)
    return checked


def layer_sizes(*, non_empty: bool) -> Rule:
    """A rule accepting sequences of positive integers (at least one when ``non_empty``)."""
    def rule(value: Any, name: str) -> tuple[int, ...]:
        if not (isinstance(value, Sequence) and not isinstance(value, str)
                and (len(value) > 0 or not non_empty) and all(map(_is_positive_int, value))):
            kind = "a non-empty sequence" if non_empty else "a sequence"
            raise ValueError(f"{name} must be {kind} of positive integers, got {value!r}")
        return tuple(int(w) for w in value)
    return rule


def _is_positive_int(value: Any) -> bool:
    return _is_integer(value) and value > 0
