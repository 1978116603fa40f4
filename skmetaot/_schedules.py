"""Step-size schedules shared by the training loop and the conjugate solver's Adam."""

from __future__ import annotations

import math


def cosine_decay(base: float, progress: float, floor: float) -> float:
    """Half a cosine from ``base`` (progress 0) down to ``floor * base`` (progress 1).

    Parameters
    ----------
    base : float
        The rate at the start.
    progress : float
        Fraction of the schedule done, in [0, 1].
    floor : float
        The final rate as a fraction of ``base``.

    Returns
    -------
    float
    """
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
