"""Whether the points given to a fitted map come from its target domain rather than its source.

A W2 map ``T`` moves its source measure onto its target. In a scikit-learn ``Pipeline([map,
classifier])`` fitted on source data, ``predict`` sends target data through ``T`` a second time
(scikit-learn calls ``transform`` on whatever it predicts on), which moves it away from where
the classifier was trained: on benchmark B5 that costs 7 points of target accuracy. The fitted
map keeps the per-coordinate means and spreads of its two measures, and ``transform`` compares
its input with both, so that such a pipeline is told what is wrong instead of scoring quietly
worse.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch


class TargetDataWarning(UserWarning):
    """A fitted map's ``transform`` was given points that look like its target, not its source.

    Issued by :meth:`skmetaot.NeuralW2Transport.transform` when the points' means and spreads
    are much closer to the target measure's than to the source measure's: mapping them moves
    target data away from the target. The usual cause is a ``Pipeline([map, classifier])``
    predicting on target data (see :ref:`domain_adaptation` for the arrangements that work).
    ``warnings.simplefilter("error", TargetDataWarning)`` turns it into an error.

    Examples
    --------
    >>> import warnings
    >>> from skmetaot.estimators import TargetDataWarning
    >>> issubclass(TargetDataWarning, UserWarning)
    True
    """


#: Fewest rows whose moments are compared (fewer rows tell too little about their domain).
MIN_ROWS = 20
#: How many times closer (in squared distance) to the target than to the source the rows are.
CLOSER = 4.0
#: How many times the sampling noise of the rows' moments their distance to the source exceeds.
ABOVE_NOISE = 10.0

ADVICE = (
    "transform was given {n} points whose means and spreads are those of the map's target "
    "measure, not of its source (squared moment distance {d_target:.3g} to the target, "
    "{d_source:.3g} to the source, in standardised units): mapping them moves target data "
    "away from the target. In a Pipeline([map, classifier]) fitted on the source, predict "
    "sends target data through the map again: train the classifier on map.transform(Xs) and "
    "predict target points as they are, put a target->source map fitted on (Xt, Xs) in "
    "front of a source classifier (FrozenEstimator), or use skmetaot.da (ot.da's fit(Xs, ys, "
    "Xt) or a skada pipeline, which know the domains). Silence this with "
    "warnings.filterwarnings('ignore', category=skmetaot.estimators.TargetDataWarning)."
)


def _moments(points: torch.Tensor,
             weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coordinate mean and standard deviation (d,), float64, on the CPU."""
    points = points.detach().double()
    if weights is None:
        mean = points.mean(0)
        var = ((points - mean) ** 2).mean(0)
    else:
        weights = weights.detach().double().to(points.device)
        weights = weights / weights.sum()
        mean = weights @ points
        var = weights @ ((points - mean) ** 2)
    return mean.cpu(), var.clamp_min(0).sqrt().cpu()


def _distance(first: tuple[torch.Tensor, torch.Tensor],
              second: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Squared W2 distance of the two diagonal Gaussians with these means and spreads."""
    return float(((first[0] - second[0]) ** 2).sum() + ((first[1] - second[1]) ** 2).sum())


@dataclass
class DomainMoments:
    """Per-coordinate means and spreads of a map's source and target, in standardised units.

    Attributes
    ----------
    source, target : tuple of torch.Tensor of shape (d,)
        Mean and standard deviation of each coordinate, float64.
    """

    source: tuple[torch.Tensor, torch.Tensor]
    target: tuple[torch.Tensor, torch.Tensor]

    @classmethod
    def from_pair(cls, x: torch.Tensor, a: torch.Tensor, y: torch.Tensor,
                  b: torch.Tensor) -> DomainMoments:
        """The moments of a standardised pair ``(x, a)``, ``(y, b)`` (points and weights)."""
        return cls(_moments(x, a), _moments(y, b))

    def warn_if_target(self, points: torch.Tensor) -> bool:
        """Issue a :class:`TargetDataWarning` when ``points`` (standardised) look like the target.

        Returns whether it warned. Points that are few (under ``MIN_ROWS``), or no farther
        from the source than the sampling noise of their moments, never warn.
        """
        if len(points) < MIN_ROWS:
            return False
        given = _moments(points)
        d_source, d_target = _distance(given, self.source), _distance(given, self.target)
        # Sampling noise of a diagonal Gaussian's mean and spread estimated from n rows.
        noise = 1.5 * float((given[1] ** 2).sum()) / len(points)
        if d_target * CLOSER < d_source and d_source > ABOVE_NOISE * noise:
            warnings.warn(ADVICE.format(n=len(points), d_target=d_target, d_source=d_source),
                          TargetDataWarning, stacklevel=3)
            return True
        return False
