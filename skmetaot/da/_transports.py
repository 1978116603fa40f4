"""Domain-adaptation transports with ``ot.da``'s interface: ``fit(Xs, ys, Xt, yt)``.

``SinkhornTransport`` is POT's ``ot.da.SinkhornTransport`` whose coupling is computed by the
batched solver (:func:`skmetaot.pot.sinkhorn`, the same iterates); ``W2MapTransport`` is a
:class:`~skmetaot.NeuralW2Transport` fitted on ``(Xs, Xt)``, a map defined everywhere (its
``inverse_transform`` is the conjugate's argmin).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ot
from ot.da import BaseTransport
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from skmetaot import pot
from skmetaot.estimators import NeuralW2Transport

#: Said by every transport that is fitted without both domains (e.g. by a Pipeline).
PIPELINE_HINT = (
    "A scikit-learn Pipeline passes only (X, y) to fit, so a map cannot tell the source from "
    "the target there. Either fit it as with ot.da, transport.fit(Xs=Xs, ys=ys, Xt=Xt), then "
    "train the classifier on transport.transform(Xs=Xs) and predict target points as they "
    "are; or use a skada pipeline, which passes the domains (sample_domain): "
    "skmetaot.da.W2Mapping(SVC()) or skada.make_da_pipeline(skmetaot.da.W2MappingAdapter(), "
    "SVC()) (pip install 'skmetaot[skada]')."
)


def check_domains(Xs: Any, Xt: Any, owner: str) -> None:
    """Raise a clear error when either domain's samples are missing.

    Parameters
    ----------
    Xs, Xt : array-like or None
        Source and target samples.
    owner : str
        The estimator's name, for the message.

    Examples
    --------
    >>> check_domains(None, [[0.0]], "W2MapTransport")
    Traceback (most recent call last):
    ...
    ValueError: W2MapTransport.fit needs the source samples Xs and the target samples Xt ...
    """
    missing = [name for name, value in (("Xs", Xs), ("Xt", Xt)) if value is None]
    if missing:
        raise ValueError(f"{owner}.fit needs the source samples Xs and the target samples Xt "
                         f"(missing: {', '.join(missing)}). {PIPELINE_HINT}")


class SinkhornTransport(ot.da.SinkhornTransport):
    """``ot.da.SinkhornTransport`` with the coupling computed by skmetaot's solver.

    Same parameters, attributes and methods as POT's (``fit(Xs, ys, Xt, yt)``,
    ``transform(Xs=...)``, ``inverse_transform(Xt=...)``, ``transform_labels``,
    ``coupling_``, ``log_``); only the Sinkhorn solve differs: it runs
    :func:`skmetaot.pot.sinkhorn` (POT's iterates and stopping rule, in the log domain), so the
    coupling is POT's and its computation faster. Unlike POT's, ``fit`` raises a
    ``ValueError`` when ``Xs`` or ``Xt`` is missing (POT warns and leaves it unfitted), and
    ``method`` is never changed on the estimator (every method runs the log-domain iteration,
    which the ``"continuous"`` out-of-sample map needs).

    Parameters
    ----------
    reg_e : float, default=1.0
    method : str, default="sinkhorn_log"
    max_iter : int, default=1000
    tol : float, default=1e-8
    verbose : bool, default=False
    log : bool, default=False
    metric : str, default="sqeuclidean"
    norm : str, optional
    distribution_estimation : callable, default=ot.da.distribution_estimation_uniform
    out_of_sample_map : {"continuous", "ferradans"}, default="continuous"
    limit_max : float, default=np.inf
        As in ``ot.da.SinkhornTransport``.

    Examples
    --------
    >>> import numpy as np, ot
    >>> from skmetaot.da import SinkhornTransport
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(50, 2)), rng.normal(size=(60, 2)) + 3.0
    >>> ours = SinkhornTransport(reg_e=1.0).fit(Xs=Xs, Xt=Xt)
    >>> theirs = ot.da.SinkhornTransport(reg_e=1.0).fit(Xs=Xs, Xt=Xt)
    >>> bool(np.allclose(ours.coupling_, theirs.coupling_, atol=1e-12))
    True
    >>> ours.transform(Xs=Xs).mean(0).round(1)  # the source, moved onto the target
    array([2.8, 3.1])
    """

    def fit(self, Xs: Any = None, ys: Any = None, Xt: Any = None,
            yt: Any = None) -> SinkhornTransport:
        """Build the coupling of the source and target samples.

        Parameters
        ----------
        Xs : array-like of shape (n_source_samples, n_features)
        ys : array-like of shape (n_source_samples,), optional
        Xt : array-like of shape (n_target_samples, n_features)
        yt : array-like of shape (n_target_samples,), optional
            As in ``ot.da.SinkhornTransport.fit`` (-1 marks unlabelled target samples).

        Returns
        -------
        self
        """
        check_domains(Xs, Xt, type(self).__name__)
        BaseTransport.fit(self, Xs, ys, Xt, yt)  # costs, weights and samples, as POT's
        method = ("sinkhorn_log" if self.out_of_sample_map == "continuous"
                  else self.method)
        returned = pot.sinkhorn(self.mu_s, self.mu_t, self.cost_, self.reg_e, method=method,
                                numItermax=self.max_iter, stopThr=self.tol,
                                verbose=self.verbose, log=True)
        self.coupling_, log = returned
        self.log_ = log if (self.log or self.out_of_sample_map == "continuous") else {}
        return self

    def __sklearn_tags__(self):
        # POT's estimators predate scikit-learn's tags; these make it a plain transformer.
        return BaseEstimator.__sklearn_tags__(self)


class W2MapParameters:
    """The parameters of a neural W2 map (see :class:`W2MapTransport`), shared by its forms."""

    def __init__(self, potential: str = "icnn", quadratic: str = "full",
                 hidden_layer_sizes: Any = None, conjugate: str | None = "lbfgs",
                 amortization: str = "regression", max_iter: int = 1000,
                 batch_size: int = 512, learning_rate: float | None = None,
                 pretrain_iter: int = 200, device: str = "auto", dtype: str = "float32",
                 random_state: Any = None, verbose: int = 0) -> None:
        self.potential = potential
        self.quadratic = quadratic
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conjugate = conjugate
        self.amortization = amortization
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.pretrain_iter = pretrain_iter
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose


class W2MapTransport(W2MapParameters, BaseEstimator):
    """A neural Brenier map between the two domains, with ``ot.da``'s interface.

    ``fit(Xs=..., Xt=...)`` fits a :class:`~skmetaot.NeuralW2Transport` on the pair
    ``(Xs, Xt)``; ``transform(Xs=...)`` maps any source point (``T = grad f``, defined
    everywhere, no nearest-neighbour rule) and ``inverse_transform(Xt=...)`` any target point
    (the conjugate's argmin). Labels are checked and not used by the map.

    Parameters
    ----------
    potential : {"icnn", "mlp"}, default="icnn"
    quadratic : {"scalar", "full", "none"}, default="full"
        An ICNN with a full quadratic term holds the affine (Gaussian) map exactly.
    hidden_layer_sizes : tuple of int, optional
    conjugate : {"lbfgs", "adam"} or None, default="lbfgs"
    amortization : {"regression", "objective", "cycle"}, default="regression"
    max_iter : int, default=1000
    batch_size : int, default=512
    learning_rate : float, optional
    pretrain_iter : int, default=200
    device : str, default="auto"
    dtype : {"float32", "float64"}, default="float32"
    random_state : int or None, default=None
    verbose : int, default=0
        As in :class:`~skmetaot.NeuralW2Transport` (the defaults are B5's, for features of
        a few to tens of dimensions).

    Attributes
    ----------
    mapping_ : NeuralW2Transport
        The fitted map.
    xs_, xt_ : ndarray
        The samples it was fitted on (as ``ot.da``'s transports keep them).

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot.da import W2MapTransport
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(256, 2)), rng.normal(size=(256, 2)) + 3.0
    >>> da = W2MapTransport(max_iter=100, batch_size=128, pretrain_iter=50,
    ...                     random_state=0).fit(Xs=Xs, Xt=Xt)
    >>> bool(np.abs(da.transform(Xs=Xs).mean(0) - 3.0).max() < 0.3)
    True
    >>> da.inverse_transform(Xt=Xt[:4]).shape
    (4, 2)
    """

    def fit(self, Xs: Any = None, ys: Any = None, Xt: Any = None,
            yt: Any = None) -> W2MapTransport:
        """Fit the map from the source samples to the target samples.

        Parameters
        ----------
        Xs : array-like of shape (n_source_samples, n_features)
        ys : array-like of shape (n_source_samples,), optional
            Source labels: checked (one per source sample) and not used, since a Brenier
            map transports the source distribution as a whole (see
            :meth:`skmetaot.NeuralW2Transport.fit`).
        Xt : array-like of shape (n_target_samples, n_features)
        yt : array-like of shape (n_target_samples,), optional
            Target labels (-1: unlabelled), checked and not used; a ``UserWarning`` says so
            when some are labelled (:class:`SinkhornTransport` uses them, as ``ot.da``'s).

        Returns
        -------
        self
        """
        check_domains(Xs, Xt, type(self).__name__)
        self.mapping_ = NeuralW2Transport(**self.get_params()).fit(Xs=Xs, ys=ys, Xt=Xt, yt=yt)
        self.xs_, self.xt_ = np.asarray(Xs), np.asarray(Xt)
        self.n_features_in_ = self.mapping_.n_features_in_
        return self

    def fit_transform(self, Xs: Any = None, ys: Any = None, Xt: Any = None,
                      yt: Any = None) -> Any:
        """``fit(Xs, ys, Xt, yt).transform(Xs)``, as in ``ot.da``.

        Parameters
        ----------
        Xs, ys, Xt, yt
            As in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_source_samples, n_features)
        """
        return self.fit(Xs, ys, Xt, yt).transform(Xs)

    def transform(self, Xs: Any = None, ys: Any = None, Xt: Any = None, yt: Any = None,
                  batch_size: int = 128) -> Any:
        """Map source samples ``Xs`` into the target domain, ``T(x) = grad f(x)``.

        The other arguments are ignored (kept for ``ot.da``'s signature).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        return self._map("transform", Xs, "Xs")

    def inverse_transform(self, Xs: Any = None, ys: Any = None, Xt: Any = None,
                          yt: Any = None, batch_size: int = 128) -> Any:
        """Map target samples ``Xt`` back into the source domain (the conjugate's argmin).

        The other arguments are ignored (kept for ``ot.da``'s signature).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        return self._map("inverse_transform", Xt, "Xt")

    def _map(self, method: str, points: Any, name: str) -> Any:
        check_is_fitted(self, "mapping_")
        if points is None:
            raise ValueError(f"{method} needs {name}=... (the samples to map)")
        return getattr(self.mapping_, method)(points)
