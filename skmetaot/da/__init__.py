"""Domain adaptation: ``ot.da``-style transports and skada adapters.

* :class:`SinkhornTransport` (``ot.da.SinkhornTransport`` with skmetaot's solver) and
  :class:`W2MapTransport` (a neural Brenier map) take ``fit(Xs=None, ys=None, Xt=None,
  yt=None)``, ``transform(Xs=...)`` and ``inverse_transform(Xt=...)``, as ``ot.da``'s do.
* :class:`SinkhornMappingAdapter` and :class:`W2MappingAdapter` are steps of skada's
  ``make_da_pipeline`` (``sample_domain`` marks the domains); :func:`SinkhornMapping` and
  :func:`W2Mapping` build such pipelines, as skada's ``EntropicOTMapping`` does (they need
  skada: ``pip install 'skmetaot[skada]'``).

A plain ``Pipeline([transport, classifier])`` cannot tell the domains apart (scikit-learn
passes only ``(X, y)``): the transports raise a ``ValueError`` there that says what to do.
What works there is a map fitted target -> source, frozen in front of the source classifier:
:func:`adapted_pipeline`.
"""

from skmetaot.da._adapters import (
    SinkhornMapping,
    SinkhornMappingAdapter,
    W2Mapping,
    W2MappingAdapter,
)
from skmetaot.da._pipeline import adapted_pipeline
from skmetaot.da._transports import SinkhornTransport, W2MapTransport, check_domains

__all__ = [
    "SinkhornMapping",
    "SinkhornMappingAdapter",
    "SinkhornTransport",
    "W2MapTransport",
    "W2Mapping",
    "W2MappingAdapter",
    "adapted_pipeline",
    "check_domains",
]
