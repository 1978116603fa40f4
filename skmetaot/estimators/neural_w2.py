"""NeuralW2Transport: one W2 map from a neural dual potential with an amortized conjugate."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from skmetaot._validation import (
    check_non_negative_float,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    layer_sizes,
    one_of,
    optional,
)
from skmetaot.amortize.w2_losses import AMORTIZATIONS, CONJUGATE_SOLVERS
from skmetaot.estimators._base import BaseOTEstimator
from skmetaot.estimators._domain_check import DomainMoments
from skmetaot.estimators._neural_w2_inputs import TARGET_DISTRIBUTIONS, W2Inputs
from skmetaot.estimators._neural_w2_training import (
    DEFAULT_LEARNING_RATES,
    W2Training,
    default_hidden_sizes,
)
from skmetaot.estimators._potential import TransportPotential
from skmetaot.estimators._standardise import Standardisation
from skmetaot.nn.icnn import QUADRATIC_TERMS

POTENTIALS = ("icnn", "mlp")
__all__ = ["DEFAULT_LEARNING_RATES", "TARGET_DISTRIBUTIONS", "NeuralW2Transport",
           "default_hidden_sizes"]


class NeuralW2Transport(W2Inputs, W2Training, OneToOneFeatureMixin, TransformerMixin,
                        BaseOTEstimator):
    """Wasserstein-2 map between two measures from a neural dual potential (Brenier).

    Learns a potential ``f`` maximising the Kantorovich dual
    ``V(f) = -E_x f(x) - E_y f*(y)``; the transport map is ``T = grad f`` and its inverse is the
    conjugate's argmin ``grad f*(y) = argmin_x f(x) - <x, y>``. An amortization model predicts
    that argmin; a batched conjugate solver fine-tunes the prediction at every training step
    (Algorithm 1 of Amos, *On amortizing convex conjugates for optimal transport*, ICLR 2023).
    The published methods are settings of this estimator:

    ===========================  ==================  =============
    method                       ``amortization``    ``conjugate``
    ===========================  ==================  =============
    Amos 2023 (recommended)      ``"regression"``    ``"lbfgs"``
    W2GN (Korotin et al. 2021)   ``"cycle"``         ``None``
    Makkuva et al. 2020 (MM)     ``"objective"``     ``None``
    ===========================  ==================  =============

    Training first pre-trains ``grad f`` to the identity, then runs ``max_iter`` steps of AdamW
    (betas 0.5, 0.5, as in the reference) on mini-batches drawn from the two samples, with a
    cosine learning-rate decay.

    Units do not matter: ``fit`` standardises both measures by one common similarity
    ``x -> (x - shift_) / scale_`` (the centre and root-mean-square radius of the two
    measures together, stored as fitted attributes), trains on the standardised problem, and
    every method maps back. This is exact for W2, whose optimal map commutes with a common
    shift and scale, so the fitted map is equivariant: data shifted by ``t`` and scaled by
    ``c > 0`` give the map ``x -> c T((x - t) / c) + t`` (see :ref:`scale-free`). Do not
    standardise each coordinate yourself (that changes the problem); nothing needs to be
    standardised at all. Potential, conjugate and dual values are in the user's units: they
    scale by ``scale_ ** 2``.

    Given a ``target``, the estimator is a scikit-learn transformer on plain 2-D arrays:
    ``fit(X)`` learns the map from the distribution of the rows of ``X`` to the target, and
    ``transform`` maps each row independently (so it can stand in a ``Pipeline`` and run
    scikit-learn's estimator checks). ``fit(Xs, ys, Xt)`` takes ``ot.da``'s order (labels are
    checked, not used). For domain adaptation, a map is applied to source data only: in a
    ``Pipeline([NeuralW2Transport(target=Xt), classifier])``, ``predict`` on target data
    would map the target a second time, so ``transform`` issues a
    :class:`~skmetaot.estimators.TargetDataWarning` when its points look like the target's;
    a target-to-source map fitted on ``(Xt, Xs)`` in front of a source classifier (both
    behind ``FrozenEstimator``) or :mod:`skmetaot.da` are the arrangements that work (see
    :ref:`domain_adaptation`).

    Input validation: pairs ``(Xs, Xt)`` are read by :func:`skmetaot.as_pairs` (NaN or inf,
    negative or all-zero weights, empty measures, mismatched dimensions, object, string or
    complex arrays raise a ``ValueError`` or ``TypeError`` naming the problem). Plain arrays
    (``transform``, ``inverse_transform``, and ``fit``/``score``/``refine`` with a ``target``)
    go through scikit-learn's ``check_array``: integer and numeric object arrays are converted
    to float, while NaN, inf, complex data, empty arrays and a number of features other than
    in ``fit`` raise scikit-learn's ``ValueError``; string arrays and a pair ``(Xs, Xt)`` raise
    a ``TypeError``, ragged lists a ``ValueError``. Torch tensors given to ``transform`` and
    ``inverse_transform`` skip ``check_array`` and are checked by :class:`TransportPotential`
    (``ValueError`` or ``TypeError`` naming the problem; torch out, on their device). Tensors on
    the ``meta`` device (no data) raise a ``ValueError`` everywhere; repeated points are allowed.

    Parameters
    ----------
    target : None, "normal" or array-like of shape (n_target, n_features), default=None
        What ``fit(X)`` transports a plain array ``X`` to. None: ``fit`` takes one pair
        ``(Xs, Xt)``. An array: samples of the target measure. ``"normal"``: the standard normal
        of ``X``'s dimension, a monotone (Brenier) Gaussianisation, the multivariate
        counterpart of ``QuantileTransformer(output_distribution="normal")``.
    potential : {"icnn", "mlp"}, default="icnn"
        Input-convex network or a plain (non-convex) MLP potential.
    conjugate : {"lbfgs", "adam"} or None, default="lbfgs"
        Solver that fine-tunes the amortized conjugate during training and in
        :meth:`inverse_transform`; None trains on the amortized prediction alone.
    amortization : {"regression", "objective", "cycle"}, default="regression"
        Loss of the amortization model (``"regression"`` needs a solver).
    hidden_layer_sizes : tuple of int, optional
        Widths of the potential and of the amortization model; default
        ``default_hidden_sizes`` of the dimension.
    activation : str, default="elu"
        Activation of both networks (convex and non-decreasing for an ICNN).
    quadratic : {"scalar", "full", "none"}, default="scalar"
        Convex quadratic term of an ICNN potential (ignored for an MLP): ``"full"`` learns
        ``0.5 |L x|^2``, which holds the exact potential of a Gaussian pair.
    max_iter : int, default=5000
        Training steps.
    batch_size : int, default=1024
        Samples of each measure per step.
    learning_rate : float, optional
        Peak learning rate; default ``DEFAULT_LEARNING_RATES[potential]`` (1e-2 for an ICNN,
        3e-3 for an MLP).
    conjugate_max_iter : int, default=100
        Solver iterations per conjugate.
    conjugate_tol : float, default=1e-2
        Solver tolerance on the gradient norm ``|grad f(x) - y|`` during training;
        :meth:`inverse_transform` solves to ``conjugate_tol / 10``.
    cycle_weight : float, default=1.0
        Weight of the cycle loss (``amortization="cycle"``).
    pretrain_iter : int, default=1000
        Identity pre-training steps (0 to skip); stops early once converged.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    grad_clip : float or None, default=None
        Gradient-norm clipping.
    device : str, default="auto"
    dtype : {"float32", "float64"}, default="float32"
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
        Progress bar when positive.
    checkpoint_path : str or os.PathLike, optional
        :meth:`fit` saves its training state there every ``checkpoint_every`` steps and at
        the end, and resumes from it when the file exists (see :ref:`checkpoints`).
    checkpoint_every : int, default=500
        Steps between checkpoints.

    Attributes
    ----------
    potential_ : torch.nn.Module
        The fitted potential ``f_std`` of the standardised problem: ``f(x) = scale_^2
        f_std((x - shift_) / scale_) + <shift_, x> - |shift_|^2 / 2``.
    amortizer_ : torch.nn.Module
        The conjugate amortization model (in standardised coordinates).
    shift_ : ndarray of shape (n_features,)
        Centre of the standardisation: the mean of the two measures' means.
    scale_ : float
        Common scale of the standardisation: the root mean square, per coordinate, of the
        distance of the two measures' points to ``shift_`` (1 if all points are one point).
    n_features_in_ : int
    n_iter_ : int
        Training steps taken.
    history_ : dict of lists
        ``step``, ``loss``, ``dual``, ``amortization_loss``, ``conjugate_iterations``,
        ``pretrain_loss``, ``val_step``, ``val_uvp`` (when ``validation`` is given to fit),
        ``recoveries`` (skipped failed steps, see :class:`~skmetaot.amortize.TrainingDiverged`)
        and ``seconds``. ``dual`` is in the user's units; the losses are those of the
        standardised problem (scale-free).
    resumed_from_ : int or None
        Step of the checkpoint :meth:`fit` resumed from (None when it started afresh).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> xs, xt = rng.normal(size=(512, 2)), 2.0 + 0.5 * rng.normal(size=(512, 2))
    >>> est = NeuralW2Transport(max_iter=20, batch_size=128, pretrain_iter=20,
    ...                         random_state=0).fit((xs, xt))
    >>> est.transform(xs[:3]).shape
    (3, 2)

    As a transformer on plain arrays, towards a standard normal:

    >>> gauss = NeuralW2Transport(target="normal", max_iter=20, batch_size=128,
    ...                           pretrain_iter=20, random_state=0).fit(xt)
    >>> gauss.transform(xt).shape
    (512, 2)
    """

    def __init__(
        self,
        target: Any = None,
        potential: str = "icnn",
        conjugate: str | None = "lbfgs",
        amortization: str = "regression",
        hidden_layer_sizes: Sequence[int] | None = None,
        activation: str = "elu",
        quadratic: str = "scalar",
        max_iter: int = 5000,
        batch_size: int = 1024,
        learning_rate: float | None = None,
        conjugate_max_iter: int = 100,
        conjugate_tol: float = 1e-2,
        cycle_weight: float = 1.0,
        pretrain_iter: int = 1000,
        weight_decay: float = 1e-4,
        grad_clip: float | None = None,
        device: str = "auto",
        dtype: str = "float32",
        random_state: Any = None,
        verbose: int = 0,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every: int = 500,
    ) -> None:
        self.target = target
        self.potential = potential
        self.conjugate = conjugate
        self.amortization = amortization
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.quadratic = quadratic
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.conjugate_max_iter = conjugate_max_iter
        self.conjugate_tol = conjugate_tol
        self.cycle_weight = cycle_weight
        self.pretrain_iter = pretrain_iter
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every

    # -- validation ---------------------------------------------------------------------------
    _parameter_rules = {
        "potential": one_of(POTENTIALS), "quadratic": one_of(QUADRATIC_TERMS),
        "conjugate": one_of(CONJUGATE_SOLVERS), "amortization": one_of(AMORTIZATIONS),
        "conjugate_max_iter": check_positive_int, "conjugate_tol": check_positive_float,
        "cycle_weight": check_positive_float, "learning_rate": optional(check_positive_float),
        "pretrain_iter": check_non_negative_int, "weight_decay": check_non_negative_float,
        "hidden_layer_sizes": optional(layer_sizes(non_empty=False))}

    def _check_own_params(self) -> None:
        if self.amortization == "regression" and self.conjugate is None:
            raise ValueError("amortization='regression' needs a conjugate solver "
                             "(conjugate='lbfgs' or 'adam')")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Without a target, fit takes a pair of measures, not a table.
        tags.input_tags.two_d_array = self.target is not None
        tags.transformer_tags.preserves_dtype = [str(self.dtype or "float32")]
        return tags

    # -- training -----------------------------------------------------------------------------
    def fit(self, X: Any = None, y: Any = None, Xt: Any = None, yt: Any = None, *,
            Xs: Any = None, ys: Any = None,
            validation: tuple[Any, Any] | Callable[[NeuralW2Transport], float] | None = None,
            validate_every: int | None = None) -> NeuralW2Transport:
        """Learn the W2 map of one pair of measures.

        Three forms: ``fit((Xs, Xt))``, one pair; ``fit(Xs, ys, Xt)`` (or ``fit(Xs=Xs,
        Xt=Xt)``), the order of ``ot.da``; and, with a ``target``, ``fit(X)`` on a plain
        array, as a scikit-learn transformer.

        Parameters
        ----------
        X : (Xs, Xt), anything :func:`skmetaot.as_pairs` accepts holding one pair, or an array
            Samples (or weighted points) of the source and the target measure; with ``Xt`` or
            a ``target``, an array of shape (n_samples, n_features) of source samples.
        y : array-like of shape (n_source_samples,), optional
            Labels of the source samples, not used by the map: a Brenier map transports the
            source distribution as a whole, whatever its classes. They are accepted so that
            ``ot.da``'s ``fit(Xs, ys, Xt)`` and a ``Pipeline``'s ``fit(X, y)`` run, and a
            number of labels other than of source samples raises a ``ValueError``.
            (Couplings that use labels: ``skmetaot.da.SinkhornTransport``, as ``ot.da``'s.)
        Xt : array-like of shape (n_target_samples, n_features), optional
            Samples of the target measure (``ot.da``'s argument), with ``target=None``.
        yt : array-like of shape (n_target_samples,), optional
            Target labels (-1 for unlabelled samples), checked like ``y`` and not used; a
            ``UserWarning`` says so when some are labelled (``ot.da``'s couplings would use
            them).
        Xs, ys : optional
            ``ot.da``'s names for ``X`` and ``y`` (give one name of each).
        validation : (X, T_X) or callable, optional
            Points with their exact images under the true map (the history then records the
            L2-UVP, in percent), or ``validation(estimator) -> float``.
        validate_every : int, optional
            Steps between validations (default ``max_iter // 20``).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For a missing source, ``Xt`` given with a ``target``, ``yt`` without ``Xt``,
            labels whose number differs from the samples', and invalid samples (see the class
            notes).
        TypeError
            When ``X`` and ``Xs`` (or ``y`` and ``ys``) are both given.
        """
        self._check_params()
        self._check_target()
        self._device_, self._dtype_ = self._torch_device(), self._torch_dtype()
        self._generator = self._seed_generator()
        pair = self._fit_pair(X, y, Xt, yt, Xs, ys)
        self.n_features_in_ = dim = int(pair[0].shape[1])
        standard = Standardisation.from_points(*pair)
        self.shift_ = standard.shift.cpu().numpy()
        self.scale_ = float(standard.scale)
        data = self._training_data(pair)
        self._domain_moments = DomainMoments.from_pair(*data)
        self._initialise(dim)
        self._pretrain(data)
        return self._train(data, self.max_iter, validation, validate_every,
                           checkpoint_data=data)

    def refine(self, pairs: Any = None, max_iter: int | None = None, *,
               validation: Any = None, validate_every: int | None = None) -> NeuralW2Transport:
        """Continue training from the current state.

        Parameters
        ----------
        pairs : (Xs, Xt), optional
            New samples of the same two measures (default: the samples seen in ``fit``, which
            the estimator keeps in memory but leaves out of pickles); with a ``target``, an
            array of new source samples. They are standardised as in ``fit`` (same
            ``shift_`` and ``scale_``).
        max_iter : int, optional
            Extra steps (default ``max_iter // 10``).
        validation, validate_every
            As in :meth:`fit`.

        Returns
        -------
        self
        """
        check_is_fitted(self, "potential_")
        if pairs is None and getattr(self, "_data", None) is None:
            raise ValueError("pass the pairs to refine on: the training samples are not "
                             "stored in a pickled estimator")
        if pairs is None:
            data = self._data
        elif self.target is None:
            data = self._training_data(self._single_pair(pairs))
        else:
            data = self._training_data(self._single_pair(
                self._with_target(self._check_points(pairs))))
        steps = check_positive_int(max_iter if max_iter is not None
                                   else max(1, self.max_iter // 10), "max_iter")
        return self._train(data, steps, validation, validate_every)

    def __getstate__(self) -> dict[str, Any]:
        # The training samples can be large; a saved model is the networks, not the data.
        state = super().__getstate__()
        state["_data"] = None
        return state

    @property
    def history_(self) -> dict[str, Any]:
        """Training history (see the class docstring)."""
        check_is_fitted(self, "potential_")
        history = self._history.as_dict()
        return {**history, **{k: list(v) for k, v in self._metrics.items()},
                "val_uvp": history["val_loss"]}

    # -- prediction ---------------------------------------------------------------------------
    def predict_potentials(self) -> TransportPotential:
        """The fitted potential as an object: ``f(x)``, ``.transform``, ``.inverse_transform``.

        Its methods take and return the user's units (values scale by ``scale_ ** 2``); its
        ``parameters`` are those of the network of the standardised problem.

        Returns
        -------
        TransportPotential
        """
        potential = self._fitted_potential()
        potential.parameters = {name: p.detach().cpu().numpy()
                                for name, p in self.potential_.named_parameters()}
        return potential

    def _fitted_potential(self) -> TransportPotential:
        """The potential object without the CPU copy of its parameters (for mapping points)."""
        check_is_fitted(self, "potential_")
        self.potential_.eval()
        return TransportPotential(
            self.potential_, self.n_features_in_, amortizer=self.amortizer_,
            conjugate_method=self.conjugate or "lbfgs", conjugate_tol=self.conjugate_tol / 10,
            conjugate_max_iter=max(self.conjugate_max_iter, 100), device=self._device_,
            dtype=self._dtype_, shift=getattr(self, "shift_", None),
            scale=getattr(self, "scale_", 1.0))

    def transform(self, X: Any) -> Any:
        """Push points through the map ``T(x) = grad f(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points of the source domain.

        Returns
        -------
        ndarray or torch.Tensor of shape (n_samples, n_features)

        Warns
        -----
        skmetaot.estimators.TargetDataWarning
            When ``X`` (20 points or more) looks like a sample of the target measure rather
            than of the source: its per-coordinate means and spreads are at least 4 times
            closer (in squared distance) to the target's than to the source's, and far from
            the source's beyond sampling noise. That is what ``predict`` of a
            ``Pipeline([NeuralW2Transport(target=Xt), classifier])`` does on target data; the
            message says which arrangements work (see :ref:`domain_adaptation`).
        """
        points = self._check_points(X)
        mapped = self._fitted_potential().transform(points)  # validates tensors' shapes too
        moments = getattr(self, "_domain_moments", None)  # None in models saved before it
        if moments is not None:
            moments.warn_if_target(self._standardisation().apply(torch.as_tensor(points),
                                                                  torch.float64))
        return mapped

    def inverse_transform(self, X: Any) -> Any:
        """Pull target points back: the conjugate's argmin, amortized then solved.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points of the target measure.

        Returns
        -------
        ndarray or torch.Tensor of shape (n_samples, n_features)
        """
        return self._fitted_potential().inverse_transform(self._check_points(X))

    def score(self, X: Any, y: None = None) -> float:
        """The dual objective ``V(f) = -E f(x) - E f*(y)`` on held-out samples (higher is better).

        In the user's units (it scales by the square of the data's scale). With exact
        conjugates, ``E|x|^2 + E|y|^2 + 2 V`` is a lower bound of ``W2^2`` that is tight at the
        optimum.

        Parameters
        ----------
        X : (Xs, Xt), or an array of source samples when ``target`` is set
            Held-out samples of the two measures. With ``target="normal"``, as many target
            samples are drawn (seeded by ``random_state``); with target samples, those are used.
        y : None
            Ignored.

        Returns
        -------
        float
        """
        check_is_fitted(self, "potential_")
        if self.target is None:
            x, a, y_pts, b = self._single_pair(X)
            return self._fitted_potential().dual_value(x, y_pts, a, b)
        x = self._check_points(X)
        seed = self.random_state if isinstance(self.random_state, (int, np.integer)) else 0
        target = self._target_samples(len(x), self.n_features_in_,
                                      torch.Generator().manual_seed(int(seed)))
        return self._fitted_potential().dual_value(x, target)
