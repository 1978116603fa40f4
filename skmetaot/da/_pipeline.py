"""A fitted target -> source map in front of a source classifier, as one scikit-learn Pipeline."""

from __future__ import annotations

from typing import Any

from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline


def adapted_pipeline(fitted_map: Any, classifier: Any) -> Pipeline:
    """``Pipeline([("map", FrozenEstimator(fitted_map)), ("clf", classifier)])``.

    The arrangement that adapts a classifier trained on the source domain to target points in
    a plain scikit-learn ``Pipeline``: the map, fitted on unlabelled target points towards the
    source (e.g. :class:`~skmetaot.NeuralW2Transport` ``fit((X_target, X_source))``), moves
    target points into the source domain before the classifier sees them. The map is frozen,
    so that ``score``, ``cross_validate`` or refitting the pipeline on source data never refit
    it (refitting the pipeline refits the classifier only).

    Parameters
    ----------
    fitted_map : fitted transformer
        A target -> source map with ``transform(X)``.
    classifier : classifier
        Usually already fitted on source features (then the pipeline predicts as it is).

    Returns
    -------
    sklearn.pipeline.Pipeline

    Raises
    ------
    TypeError
        When ``fitted_map`` has no ``transform`` or ``classifier`` no ``predict``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmetaot import NeuralW2Transport
    >>> from skmetaot.da import adapted_pipeline
    >>> rng = np.random.default_rng(0)
    >>> X_source = rng.normal(size=(200, 2)); y_source = (X_source[:, 0] > 0).astype(int)
    >>> X_target = X_source + 3.0  # the same classes, shifted
    >>> classifier = LogisticRegression().fit(X_source, y_source)
    >>> to_source = NeuralW2Transport(max_iter=200, device="cpu", random_state=0).fit(
    ...     (X_target, X_source))
    >>> pipeline = adapted_pipeline(to_source, classifier)
    >>> bool(pipeline.score(X_target, y_source) > classifier.score(X_target, y_source))
    True
    """
    if not callable(getattr(fitted_map, "transform", None)):
        raise TypeError(f"fitted_map must be a fitted transformer with transform(X), got "
                        f"{type(fitted_map).__name__}")
    if not callable(getattr(classifier, "predict", None)):
        raise TypeError(f"classifier must be an estimator with predict(X), got "
                        f"{type(classifier).__name__}")
    return Pipeline([("map", FrozenEstimator(fitted_map)), ("clf", classifier)])
