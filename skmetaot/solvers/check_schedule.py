"""When a Sinkhorn loop measures its marginal error: rarely far from the tolerance, exactly near it.

At batch 1 an iteration of the scaling loop on a 28 x 28 grid costs about 20 us, of which the
error (a fused multiply-subtract, a norm, and reading the number back) is about 4 us. Far from
the tolerance that check cannot stop the loop, so :class:`CheckSchedule` skips it: after two
measured errors it extrapolates their geometric rate and measures next 70 % of the way to the
predicted crossing (at most three times the last gap; every iteration when no progress was seen).
Sinkhorn's error falls fastest at first, so the extrapolation errs early: on 64 MNIST pairs
(eps = 1e-2) this checks 9 of 18 iterations to 1e-2 and 10 of 40 to 1e-3, with no iteration
redone; halfway checks 11 and 12. The loop
keeps the scaling of the first unchecked iteration (the tensor itself: the loop never writes
into it), and when a check finds a problem below the tolerance after unchecked iterations it
goes back there and checks every iteration: the stop, the iterates and the iteration counts are
those of a loop that checks every iteration.
"""

from __future__ import annotations

import math

__all__ = ["CheckSchedule"]

#: The share of the predicted distance to the crossing that the next check lies ahead.
_AHEAD = 0.7


class CheckSchedule:
    """Which iterations of a loop measure the error, for a stop at the first one below ``tol``.

    Parameters
    ----------
    tol : float
        The loop stops a problem once its error is below this.
    last : int
        The loop's last iteration (``max_iter - 1``), always checked.

    Examples
    --------
    Errors that fall 20 % an iteration from 0.6 cross 1e-2 at iteration 19; eight checks find it
    (every iteration from 16 on):

    >>> schedule, checked = CheckSchedule(1e-2, last=99), []
    >>> for iteration in range(100):
    ...     if schedule.due(iteration):
    ...         checked.append(iteration)
    ...         error = 0.6 * 0.8 ** iteration
    ...         if error < 1e-2:
    ...             break
    ...         schedule.measured(iteration, error)
    >>> checked
    [0, 1, 4, 13, 16, 17, 18, 19]
    """

    def __init__(self, tol: float, last: int):
        self.tol, self.last = tol, last
        self.restart(0)

    def restart(self, iteration: int, *, every: bool = False) -> None:
        """Measure at ``iteration`` and forget the rate (after the batch changed, or a rewind).

        With ``every``, measure every iteration until the next :meth:`restart`.
        """
        self.next, self.previous, self.every = iteration, None, every

    def due(self, iteration: int) -> bool:
        """Whether the loop measures the error at ``iteration``."""
        return iteration >= self.next or iteration == self.last

    def measured(self, iteration: int, error: float) -> None:
        """Record the error measured at ``iteration`` (the lowest of the batch) that went on."""
        previous, self.previous = self.previous, (iteration, error)
        gap = 1
        if not self.every and previous is not None and 0.0 < error < previous[1]:
            longest = 3 * (iteration - previous[0])
            if self.tol <= 0.0:  # never crossed (POT's stopThr=0): the loop runs to its end
                gap = longest
            else:
                rate = (math.log(error) - math.log(previous[1])) / (iteration - previous[0])
                remaining = math.log(self.tol / error) / rate  # iterations to the crossing
                gap = max(1, min(int(_AHEAD * remaining), longest))
        self.next = iteration + gap
