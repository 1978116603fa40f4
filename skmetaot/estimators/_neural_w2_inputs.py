"""How NeuralW2Transport reads its inputs: the pair to fit, labels, targets, points to map.

A mixin of :class:`~skmetaot.NeuralW2Transport`. ``fit`` takes one pair ``(Xs, Xt)``, a plain
array with ``target`` set (a scikit-learn transformer), or ``ot.da``'s ``fit(Xs, ys, Xt,
yt)``; this module turns each form into the one pair ``(x, a, y, b)`` the estimator transports
and checks labels, targets and the points given to its maps.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import (
    FLOAT_DTYPES,
    _num_samples,
    check_array,
    check_is_fitted,
    validate_data,
)

from skmetaot._backend import check_points_input
from skmetaot.estimators._standardise import Standardisation
from skmetaot.measures import as_pairs

#: Named target measures for ``fit(X)`` on a plain array.
TARGET_DISTRIBUTIONS = ("normal",)
#: The label of an unlabelled sample in ``ot.da`` and skada.
UNLABELLED = -1


def _one_of(first: str, first_value: Any, second: str, second_value: Any) -> Any:
    """The argument given under either of its two names (``X`` or ``Xs``, ``y`` or ``ys``)."""
    if first_value is not None and second_value is not None:
        raise TypeError(f"fit got both {first} and {second}, which are the same argument "
                        f"(the scikit-learn and the ot.da name); give one")
    return second_value if first_value is None else first_value


def _check_labels(labels: Any, name: str, n_samples: int, samples: str) -> np.ndarray:
    """Labels as an array with one entry per sample of ``samples``."""
    try:
        count = _num_samples(labels)
    except TypeError as error:
        raise TypeError(f"{name} must be an array of labels, one per sample of {samples}, got "
                        f"{type(labels).__name__}") from error
    if count != n_samples:
        raise ValueError(f"{name} has {count} labels but {samples} has {n_samples} samples "
                         "(one label per sample)")
    return np.asarray(labels)


class W2Inputs:
    """Input forms of :class:`~skmetaot.NeuralW2Transport` (a mixin; reads its parameters)."""

    def _fit_pair(self, X: Any, y: Any, Xt: Any, yt: Any, Xs: Any, ys: Any) -> tuple:
        """The pair ``(x, a, y, b)`` of any form of ``fit``, with its labels checked.

        Labels do not enter a Brenier map (it transports the source distribution as a whole),
        but a wrong number of them is an error, and target labels, which ``ot.da``'s
        couplings would use, are said not to be used.
        """
        source = _one_of("X", X, "Xs", Xs)
        labels = _one_of("y", y, "ys", ys)
        # Named as the caller wrote them: ot.da's names in ot.da's form.
        da_form = Xt is not None or Xs is not None or ys is not None
        label_name, source_name = (("ys", "Xs") if da_form else
                                   ("y", "X" if self.target is not None else "the source of X"))
        if source is None:
            raise ValueError("fit needs the source samples: fit(Xs, ys, Xt) (ot.da's order), "
                             "fit((Xs, Xt)), or fit(X) with target='normal' or target samples")
        if Xt is not None:
            if self.target is not None:
                raise ValueError("fit got Xt and the estimator has a target: both give the "
                                 "target measure; set target=None to fit(Xs, ys, Xt)")
            self.__dict__.pop("n_features_in_", None)
            self.__dict__.pop("feature_names_in_", None)
            pair = self._single_pair((source, Xt))
        else:
            if yt is not None:
                raise ValueError("yt labels the target samples Xt, but no Xt was given: "
                                 "fit(Xs, ys, Xt, yt)")
            pair = self._single_pair(self._as_fit_pair(source))
        n_source = int(pair[0].shape[0])
        if labels is not None:
            _check_labels(labels, label_name, n_source, source_name)
        if yt is not None:
            target_labels = _check_labels(yt, "yt", int(pair[2].shape[0]), "Xt")
            unlabelled = target_labels == UNLABELLED
            if target_labels.dtype.kind == "f":
                unlabelled |= np.isnan(target_labels)
            if not unlabelled.all():
                warnings.warn(
                    f"yt labels {int((~unlabelled).sum())} target samples, but a Brenier map "
                    "does not use labels: it transports the source distribution as a whole. "
                    "ot.da's couplings use ys and yt together to forbid transport between "
                    "classes; skmetaot.da.SinkhornTransport does the same with our solver.",
                    UserWarning, stacklevel=3)
        return pair

    def _check_target(self) -> None:
        if isinstance(self.target, str) and self.target not in TARGET_DISTRIBUTIONS:
            raise ValueError(f"target={self.target!r} is not one of {TARGET_DISTRIBUTIONS}, "
                             "None or an array of target samples")

    def _target_samples(self, n_samples: int, n_features: int,
                        generator: torch.Generator) -> np.ndarray:
        if isinstance(self.target, str):
            return torch.randn(n_samples, n_features, generator=generator,
                               dtype=torch.float64).numpy()
        target = check_array(self.target, dtype=FLOAT_DTYPES, ensure_min_samples=2,
                             input_name="target")
        if target.shape[1] != n_features:
            raise ValueError(f"target has {target.shape[1]} features, but X has {n_features}")
        return target

    def _as_fit_pair(self, X: Any) -> Any:
        """The pair to fit: ``X`` itself, or ``(X, target samples)`` when ``target`` is set."""
        self.__dict__.pop("n_features_in_", None)
        self.__dict__.pop("feature_names_in_", None)
        if self.target is None:
            return X
        check_points_input(X, "X")
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu()  # scikit-learn reads tensors through numpy, on the CPU only
        return self._with_target(validate_data(self, X, dtype=FLOAT_DTYPES, ensure_min_samples=2))

    def _with_target(self, points: Any) -> tuple[Any, np.ndarray]:
        """``(points, target samples)``: at least a batch of target samples, as many as points."""
        samples = max(len(points), self.batch_size)
        return points, self._target_samples(samples, points.shape[1], self._generator)

    def _check_points(self, X: Any) -> Any:
        """Validate points to map: scikit-learn's checks for arrays, shapes for tensors."""
        check_is_fitted(self, "potential_")
        check_points_input(X, "X")
        if isinstance(X, torch.Tensor):
            return X
        return validate_data(self, X, dtype=FLOAT_DTYPES, reset=False)

    def _single_pair(self, pairs: Any) -> tuple[torch.Tensor, ...]:
        """The one pair ``(x, a, y, b)`` this estimator transports, on its device and dtype."""
        if isinstance(pairs, (np.ndarray, torch.Tensor)) and pairs.ndim == 2:
            raise ValueError(f"expected one pair (Xs, Xt), got one array of shape "
                             f"{tuple(pairs.shape)}; to fit a plain array, set target='normal' "
                             "(or target samples)")
        pairs = as_pairs(pairs)
        if pairs.n_pairs != 1:
            raise ValueError(f"NeuralW2Transport learns one map and takes one pair (Xs, Xt), "
                             f"got {pairs.n_pairs} pairs; use MetaICNNTransport for "
                             "collections")
        if hasattr(self, "n_features_in_") and pairs.dim != self.n_features_in_:
            raise ValueError(f"the pair has dimension {pairs.dim}, but the estimator was "
                             f"fitted on dimension {self.n_features_in_}")
        if pairs.shared_support:  # histograms on shared supports: the supports are (n, d)
            return pairs.x, pairs.a[0], pairs.y, pairs.b[0]
        return pairs.x[0], pairs.a[0], pairs.y[0], pairs.b[0]

    def _standardisation(self) -> Standardisation:
        """The fitted similarity (the identity for models saved before it existed)."""
        shift = getattr(self, "shift_", np.zeros(self.n_features_in_))
        return Standardisation(torch.as_tensor(shift, dtype=torch.float64),
                               torch.tensor(float(getattr(self, "scale_", 1.0)),
                                            dtype=torch.float64))

    def _training_data(self, pair: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """A pair in the user's units, standardised, on the estimator's device and dtype."""
        x, a, y, b = pair
        standard = self._standardisation()
        x, y = standard.apply(x, self._dtype_), standard.apply(y, self._dtype_)
        return tuple(t.to(self._device_, self._dtype_) for t in (x, a, y, b))

