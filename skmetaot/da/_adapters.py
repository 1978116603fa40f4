"""skada adapters: our transports as steps of ``skada.make_da_pipeline``.

skada marks each sample's domain with ``sample_domain`` (source: >= 0, target: < 0), routed
to each step by scikit-learn's metadata routing. An adapter's ``fit_transform`` fits the map on
the source and target rows and returns the source rows mapped into the target domain (the
target rows unchanged), so the classifier after it trains on the adapted source; ``transform``
at prediction time treats its rows as target samples and passes them through. The adapters
follow that protocol without importing skada, so ``skmetaot.da`` needs skada only to build
pipelines (:func:`SinkhornMapping`, :func:`W2Mapping`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.svm import SVC
from sklearn.utils.validation import check_array, check_is_fitted

from skmetaot.da._transports import SinkhornTransport, W2MapParameters, W2MapTransport

#: skada's label for unlabelled (target) samples in classification.
MASKED_LABEL = -1


def _domains(X: np.ndarray, y: Any, sample_domain: Any, *, fitting: bool) -> np.ndarray:
    """Which rows are source samples (skada's rules when ``sample_domain`` is None)."""
    if sample_domain is not None:
        domain = np.broadcast_to(np.asarray(sample_domain), (len(X),))
        return domain >= 0
    if not fitting:
        return np.zeros(len(X), dtype=bool)  # at prediction time, every row is a target
    if y is None:
        raise ValueError("fit needs sample_domain (>= 0 for source rows, < 0 for target rows)"
                         f" or labels y with {MASKED_LABEL} (or NaN) on the target rows")
    labels = np.asarray(y)
    masked = labels == MASKED_LABEL
    if labels.dtype.kind == "f":
        masked |= np.isnan(labels)
    return ~masked


class _TransportAdapter(BaseEstimator):
    """Shared protocol of the adapters; subclasses build the ``ot.da``-style transport."""

    __metadata_request__fit = {"sample_domain": True}
    __metadata_request__transform = {"sample_domain": True, "allow_source": True}

    def _transport(self) -> Any:
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None, *, sample_domain: Any = None) -> _TransportAdapter:
        """Fit the map from the source rows of ``X`` to its target rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source and target samples together.
        y : array-like of shape (n_samples,), optional
            Labels (-1 on unlabelled target rows); the source labels go to the transport.
        sample_domain : array-like of shape (n_samples,), optional
            skada's domain labels (>= 0 source, < 0 target); inferred from ``y`` when None.

        Returns
        -------
        self
        """
        X = check_array(X, input_name="X")
        source = _domains(X, y, sample_domain, fitting=True)
        if source.all() or not source.any():
            side = "target" if source.all() else "source"
            raise ValueError(f"{type(self).__name__}.fit got no {side} samples: give "
                             "sample_domain (>= 0 source, < 0 target), or mark the target "
                             f"rows' labels with {MASKED_LABEL}, in a skada pipeline "
                             "(skada.make_da_pipeline), which keeps the target rows away "
                             "from the classifier")
        ys = None if y is None else np.asarray(y)[source]
        self.transport_ = clone(self._transport()).fit(Xs=X[source], ys=ys, Xt=X[~source])
        self.n_features_in_ = X.shape[1]
        return self

    def fit_transform(self, X: Any, y: Any = None, *, sample_domain: Any = None,
                      **params: Any) -> np.ndarray:
        """Fit, then return ``X`` with its source rows mapped into the target domain.

        Parameters
        ----------
        X, y, sample_domain
            As in :meth:`fit`.
        **params
            Ignored (other routed metadata).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        self.fit(X, y, sample_domain=sample_domain)
        source = _domains(np.asarray(X), y, sample_domain, fitting=True)
        return self._adapt(np.asarray(X, dtype=float), source)

    def transform(self, X: Any, y: Any = None, *, sample_domain: Any = None,
                  allow_source: bool = False, **params: Any) -> np.ndarray:
        """Adapt samples at prediction time: target rows pass, source rows are mapped.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_domain : array-like, optional
            Domain labels; without them every row is a target sample (skada's rule).
        allow_source : bool, default=False
            Whether source rows are accepted (skada passes True while fitting).
        **params
            Ignored.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self, "transport_")
        X = check_array(X, input_name="X")
        source = _domains(X, None, sample_domain, fitting=False)
        if source.any() and not allow_source:
            raise ValueError(f"{int(source.sum())} source rows given to transform with "
                             "allow_source=False (skada's convention)")
        return self._adapt(X, source)

    def _adapt(self, X: np.ndarray, source: np.ndarray) -> np.ndarray:
        out = np.array(X, dtype=float, copy=True)
        if source.any():
            out[source] = np.asarray(self.transport_.transform(Xs=X[source]))
        return out


class SinkhornMappingAdapter(_TransportAdapter):
    """skada adapter: the entropic map of :class:`~skmetaot.da.SinkhornTransport`.

    The counterpart of skada's ``EntropicOTMappingAdapter`` (same parameters), with the
    coupling computed by skmetaot's solver.

    Parameters
    ----------
    reg_e : float, default=1.0
    metric : str, default="sqeuclidean"
    norm : str, optional
    max_iter : int, default=1000
    tol : float, default=1e-8
        As in ``ot.da.SinkhornTransport``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot.da import SinkhornMappingAdapter
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 3.0])
    >>> domain = np.r_[np.ones(30), -np.ones(30)]  # skada: source >= 0, target < 0
    >>> adapted = SinkhornMappingAdapter().fit_transform(X, sample_domain=domain)
    >>> adapted[:30].mean(0).round(1), bool((adapted[30:] == X[30:]).all())
    (array([3.1, 3.1]), True)
    """

    def __init__(self, reg_e: float = 1.0, metric: str = "sqeuclidean", norm: Any = None,
                 max_iter: int = 1000, tol: float = 1e-8) -> None:
        self.reg_e = reg_e
        self.metric = metric
        self.norm = norm
        self.max_iter = max_iter
        self.tol = tol

    def _transport(self) -> SinkhornTransport:
        return SinkhornTransport(reg_e=self.reg_e, metric=self.metric, norm=self.norm,
                                 max_iter=self.max_iter, tol=self.tol)


class W2MappingAdapter(W2MapParameters, _TransportAdapter):
    """skada adapter: the neural Brenier map of :class:`~skmetaot.da.W2MapTransport`.

    Parameters
    ----------
    potential, quadratic, hidden_layer_sizes, conjugate, amortization, max_iter, batch_size,
    learning_rate, pretrain_iter, device, dtype, random_state, verbose
        As in :class:`~skmetaot.da.W2MapTransport`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmetaot.da import W2MappingAdapter
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 3.0])
    >>> y = np.r_[np.zeros(200), -np.ones(200)]  # -1: unlabelled target rows
    >>> adapter = W2MappingAdapter(max_iter=100, batch_size=128, pretrain_iter=50, random_state=0)
    >>> bool(np.abs(adapter.fit_transform(X, y)[:200].mean(0) - 3.0).max() < 0.3)
    True
    """

    def _transport(self) -> W2MapTransport:
        return W2MapTransport(**self.get_params())


def SinkhornMapping(base_estimator: Any = None, reg_e: float = 1.0,  # noqa: N802 (skada's style)
                    metric: str = "sqeuclidean", norm: Any = None, max_iter: int = 1000,
                    tol: float = 1e-8) -> Any:
    """A skada pipeline: :class:`SinkhornMappingAdapter`, then ``base_estimator``.

    The counterpart of ``skada.EntropicOTMapping``; needs skada (``pip install
    'skmetaot[skada]'``).

    Parameters
    ----------
    base_estimator : estimator, optional
        The classifier or regressor (default: ``SVC()``, as skada's).
    reg_e, metric, norm, max_iter, tol
        As in :class:`SinkhornMappingAdapter`.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Fitted with ``fit(X, y, sample_domain=...)``; predicts target samples.

    Examples
    --------
    >>> import importlib.util, sklearn
    >>> if importlib.util.find_spec("skada"):
    ...     with sklearn.config_context():  # importing skada turns metadata routing on
    ...         steps = [name for name, _ in SinkhornMapping(reg_e=0.1).steps]
    ... else:  # without skada (pip install 'skmetaot[skada]'), the names it would give
    ...     steps = ["sinkhornmappingadapter", "svc"]
    >>> steps
    ['sinkhornmappingadapter', 'svc']
    """
    adapter = SinkhornMappingAdapter(reg_e=reg_e, metric=metric, norm=norm, max_iter=max_iter,
                                     tol=tol)
    return _da_pipeline(adapter, base_estimator)


def W2Mapping(base_estimator: Any = None, **params: Any) -> Any:  # noqa: N802 (skada's style)
    """A skada pipeline: :class:`W2MappingAdapter`, then ``base_estimator``.

    Needs skada (``pip install 'skmetaot[skada]'``).

    Parameters
    ----------
    base_estimator : estimator, optional
        What is trained on the adapted source (default: skada's, an ``SVC()``).
    **params
        Parameters of :class:`W2MappingAdapter`.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``make_da_pipeline(W2MappingAdapter(**params), base_estimator)``.

    Examples
    --------
    >>> import importlib.util, sklearn
    >>> with sklearn.config_context():  # importing skada turns metadata routing on
    ...     pipeline = W2Mapping(max_iter=500) if importlib.util.find_spec("skada") else None
    >>> pipeline is None or isinstance(pipeline.steps[0][1].base_estimator, W2MappingAdapter)
    True
    """
    return _da_pipeline(W2MappingAdapter(**params), base_estimator)


def _da_pipeline(adapter: Any, base_estimator: Any) -> Any:
    try:
        from skada import make_da_pipeline
    except ImportError as error:
        raise ImportError("skada pipelines need skada: pip install 'skmetaot[skada]' "
                          "(or pip install skada)") from error
    return make_da_pipeline(adapter, SVC() if base_estimator is None else base_estimator)
