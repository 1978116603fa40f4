"""MetaICNNTransport: W2 maps for new pairs of continuous measures from a hypernetwork (Meta OT)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from skmetaot._validation import (
    check_non_negative_float,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    layer_sizes,
    one_of,
)
from skmetaot.amortize.w2gn import refine_w2gn
from skmetaot.estimators._base import BaseOTEstimator, chunk_argument
from skmetaot.estimators._meta_icnn_pairs import PairPredictions
from skmetaot.estimators._meta_icnn_training import HypernetworkTraining
from skmetaot.estimators._potential import TransportPotential
from skmetaot.estimators._standardise import pair_standardisations
from skmetaot.nn.encoders import ENCODERS
from skmetaot.sampling import is_stream

BASELINES = ("gaussian", None)


class MetaICNNTransport(HypernetworkTraining, PairPredictions, BaseOTEstimator):
    """Predict Wasserstein-2 maps between new pairs of continuous measures; refine with W2GN.

    A hypernetwork maps a pair of measures ``(alpha, beta)`` to the flat parameters of two input
    convex networks: ``psi``, whose gradient is the forward map, and ``psi_bar``, whose gradient
    is its inverse (Meta OT, Amos et al. 2023, Section 3.2). Training is objective-based
    amortization of the W2GN loss over pairs drawn from the collection; no solved problems are
    needed. :meth:`refine` runs W2GN from the predicted parameters.

    The ICNN follows the paper's colour-transfer model: one hidden layer,
    ``psi(x) = w^+ . s(A x + b) + c . x + c0 + 0.5 |L x|^2`` with ``w^+ = softplus(V) / h``
    (653 parameters for d = 3, h = 128).

    Units do not matter: each pair is standardised by its own common similarity
    ``x -> (x - m) / s``, shared by its two measures (``m`` the mean of their means, ``s`` the
    root-mean-square radius of the two around it), before anything sees it (the encoders, the
    Gaussian baseline, the ICNNs, W2GN), and every result is mapped back. This is exact, since
    a W2 map commutes with a common shift and scale of its two measures, and it makes every
    prediction equivariant per pair: shifting and scaling a pair shifts and scales its map,
    whatever the scales of the training pairs (see :ref:`scale-free`). Images (values in
    [0, 1]) are standardised the same way, pixel values and encoder input alike. Potential,
    conjugate and dual values come back in the user's units (they scale by ``s ** 2``);
    :meth:`predict_params` gives the parameters of the standardised problem.

    Every method takes pairs as :meth:`fit` does; a single pair ``(source, target)`` is read as
    a collection of one. Integer arrays are converted to float and repeated points are
    allowed. NaN or inf, negative or all-zero weights, empty measures or collections,
    dimensions that differ within a pair, between pairs or from ``fit``, ragged lists, object,
    string or complex arrays and ``meta`` tensors raise a ``ValueError`` or ``TypeError``
    naming the pair and the problem.

    Parameters
    ----------
    icnn_hidden_sizes : tuple of int, default=(128,)
        Hidden widths of both ICNNs.
    icnn_activation : str, default="leaky_relu"
        Convex non-decreasing activation of the ICNNs.
    encoder : {"auto", "set", "image"}, default="auto"
        ``"set"``: a permutation-invariant encoder of the samples (any point clouds in R^d,
        any sample counts); ``"image"``: a convolutional encoder of the pixel grids (measures
        given as images (H, W, C)); ``"auto"``: ``"image"`` for images, else ``"set"``.
    encoder_features : int, default=256
        Size of each measure's encoding.
    hidden_layer_sizes : tuple of int, default=(512,)
        Widths of the MLP decoding the two encodings into parameters.
    baseline : {"gaussian", None}, default="gaussian"
        ``"gaussian"``: each predicted potential is ``phi(M x) + <c, x>`` where the affine
        change of variables (from the two measures' means and covariances) makes an identity
        ``phi`` the exact W2 map between the Gaussian approximations, so the network only
        learns the non-Gaussian part (``skmetaot.amortize.w2gn.AffineBaseline``).
        None predicts the ICNNs directly, as the Meta OT paper does.
    cycle_weight : float, default=3.0
        Weight gamma of the cycle-consistency term of the W2GN loss.
    learning_rate : float, default=1e-3
        Peak Adam learning rate (linear warm-up over 5% of ``max_iter``, cosine decay).
    batch_size : int, default=8
        Pairs per training step.
    n_samples : int, default=1024
        Points drawn from each measure per step.
    max_iter : int, default=2000
        Training steps of :meth:`fit`.
    pretrain_iter : int, default=1000
        Steps pre-training the base parameters so that both maps start at the identity.
    refine_max_iter : int, default=1000
        W2GN steps of :meth:`refine`.
    refine_learning_rate : float, default=1e-3
        Adam learning rate of :meth:`refine`.
    grad_clip : float or None, default=1.0
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
    icnn_ : ICNN
        The architecture of the predicted potentials.
    hypernetwork_ : PairHypernetwork
    encoder_ : {"set", "image"}
        The encoder in use.
    n_features_in_ : int
        Dimension of the measures.
    n_iter_ : int
    history_ : dict
        ``step``, ``loss``, ``dual`` (with the amortized conjugate, mean over the step's pairs
        in the user's units), ``cycle_loss``, ``pretrain_loss``, ``recoveries`` (skipped
        failed steps, see :class:`~skmetaot.amortize.TrainingDiverged`), ``seconds``. The
        losses are those of the standardised pairs (scale-free).
    resumed_from_ : int or None
        Step of the checkpoint :meth:`fit` resumed from (None when it started afresh).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pairs = [(rng.normal(size=(200, 2)), 1 + 0.5 * rng.normal(size=(200, 2)))
    ...          for _ in range(4)]
    >>> est = MetaICNNTransport(icnn_hidden_sizes=(16,), encoder_features=16,
    ...                         hidden_layer_sizes=(32,), batch_size=2, n_samples=64,
    ...                         max_iter=5, pretrain_iter=5, random_state=0).fit(pairs)
    >>> [m.shape for m in est.transform(pairs[:2])]
    [(200, 2), (200, 2)]
    """

    def __init__(
        self,
        icnn_hidden_sizes: Sequence[int] = (128,),
        icnn_activation: str = "leaky_relu",
        encoder: str = "auto",
        encoder_features: int = 256,
        hidden_layer_sizes: Sequence[int] = (512,),
        baseline: str | None = "gaussian",
        cycle_weight: float = 3.0,
        learning_rate: float = 1e-3,
        batch_size: int = 8,
        n_samples: int = 1024,
        max_iter: int = 2000,
        pretrain_iter: int = 1000,
        refine_max_iter: int = 1000,
        refine_learning_rate: float = 1e-3,
        grad_clip: float | None = 1.0,
        device: str = "auto",
        dtype: str = "float32",
        random_state: Any = None,
        verbose: int = 0,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every: int = 500,
    ) -> None:
        self.icnn_hidden_sizes = icnn_hidden_sizes
        self.icnn_activation = icnn_activation
        self.encoder = encoder
        self.encoder_features = encoder_features
        self.hidden_layer_sizes = hidden_layer_sizes
        self.baseline = baseline
        self.cycle_weight = cycle_weight
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_samples = n_samples
        self.max_iter = max_iter
        self.pretrain_iter = pretrain_iter
        self.refine_max_iter = refine_max_iter
        self.refine_learning_rate = refine_learning_rate
        self.grad_clip = grad_clip
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every

    # -- validation ---------------------------------------------------------------------------
    # cycle_weight may be 0 here (W2GN's dual alone trains both potentials), unlike in
    # NeuralW2Transport's cycle amortization, where it is the conjugate's only signal.
    _parameter_rules = {
        "encoder": one_of(lambda: ("auto", *ENCODERS),
                          hint="(skmetaot.nn.register_encoder adds one)"),
        "baseline": one_of(BASELINES), "encoder_features": check_positive_int,
        "n_samples": check_positive_int, "refine_max_iter": check_positive_int,
        "pretrain_iter": check_non_negative_int, "learning_rate": check_positive_float,
        "refine_learning_rate": check_positive_float,
        "cycle_weight": check_non_negative_float,
        "icnn_hidden_sizes": layer_sizes(non_empty=True),
        "hidden_layer_sizes": layer_sizes(non_empty=True)}

    # -- training -----------------------------------------------------------------------------
    def fit(self, pairs: Any, y: None = None) -> MetaICNNTransport:
        """Train the hypernetwork on a collection of pairs of measures.

        Parameters
        ----------
        pairs : sequence of (source, target), or a stream of pairs
            Each measure a point cloud (n, d), a weighted ``(points, weights)`` pair or an image
            (H, W, C) (a measure over its pixel values); or an array of image pairs
            (N, 2, H, W, C). Sizes may differ between measures; a measure object that appears
            in several pairs is stored once. Or a stream never held whole: a
            :class:`~skmetaot.sampling.PairSampler` over a list of measures, an iterable or
            generator of pairs or of lists of pairs, a ``DataLoader`` or ``Dataset`` (see
            :ref:`streaming`); the first batch decides the dimension and the encoder and
            seeds the identity pre-training.
        y : None
            Ignored (no solved problems are needed).

        Returns
        -------
        self
        """
        self._check_params()
        self.__dict__.pop("n_features_in_", None)
        self.__dict__.pop("encoder_", None)
        if is_stream(pairs):
            return self._fit_stream(pairs, None, fitting=True, initialise=True)
        collection = self._collection(pairs)
        self._initialise(collection)
        measures = collection.measures
        return self._train(collection, self.max_iter, self.max_iter, checkpoint_data=(
            collection.index, *[m.points for m in measures],
            *[m.weights for m in measures]))

    def partial_fit(self, pairs: Any, y: None = None,
                    n_steps: int | None = None) -> MetaICNNTransport:
        """Continue training on ``pairs`` (initialising on the first call).

        Parameters
        ----------
        pairs : as in :meth:`fit`
        y : None
            Ignored.
        n_steps : int, optional
            Steps to take; default ``ceil(n_pairs / batch_size)`` for a collection, and until
            a stream ends (give ``n_steps`` for an endless sampler).

        Returns
        -------
        self
        """
        first = not hasattr(self, "hypernetwork_")
        if first:
            self._check_params()
        if is_stream(pairs):
            return self._fit_stream(pairs, n_steps, fitting=False, initialise=first)
        collection = self._collection(pairs)
        if first:
            self._initialise(collection)
        steps = n_steps or -(-collection.n_pairs // self.batch_size)
        return self._train(collection, check_positive_int(steps, "n_steps"), None)

    @property
    def history_(self) -> dict[str, Any]:
        """Training history (see the class docstring)."""
        check_is_fitted(self, "hypernetwork_")
        return {**self._history.as_dict(), **{k: list(v) for k, v in self._metrics.items()}}

    # -- prediction ---------------------------------------------------------------------------
    @chunk_argument
    def predict_params(self, pairs: Any, *, chunk_size: int | None = None) -> np.ndarray:
        """The raw predicted parameters, ``psi`` then ``psi_bar``, one row per pair.

        They are the parameters of each pair's standardised problem (see the class notes).

        Parameters
        ----------
        pairs : as in :meth:`fit`
        chunk_size : int, optional
            Pairs encoded at once (not the training ``batch_size``); default: as many as keep
            the encoder's activations within a fixed memory budget.

        Returns
        -------
        ndarray of shape (n_pairs, 2 * ``icnn_.n_params``)
        """
        check_is_fitted(self, "hypernetwork_")
        return self._predict_params(self._collection(pairs), chunk_size).cpu().numpy()

    @chunk_argument
    def predict_potentials(self, pairs: Any, *,
                           chunk_size: int | None = None) -> list[TransportPotential]:
        """One potential object per pair: ``psi(x)``, ``.transform``, ``.inverse_transform``.

        ``inverse_transform`` starts from the predicted inverse map ``grad psi_bar`` and
        solves the conjugate exactly.

        Parameters
        ----------
        pairs : as in :meth:`fit`
        chunk_size : int, optional
            As in :meth:`predict_params`.

        Returns
        -------
        list of TransportPotential
        """
        check_is_fitted(self, "hypernetwork_")
        return self._predicted_potentials(self._collection(pairs), chunk_size)

    @chunk_argument
    def transform(self, pairs: Any, *, points: Any = None,
                  chunk_size: int | None = None) -> list[Any]:
        """Push each pair's source samples (or given points) through its predicted map.

        The map of a pair is ``grad psi`` (see the class notes).

        Parameters
        ----------
        pairs : as in :meth:`fit`
        points : list of array-like of shape (k, n_features), optional
            Points to map instead of the source samples, one array per pair (or one array
            (n_pairs, k, n_features); for a collection of one pair, a single array (k,
            n_features)); each comes back in its own kind (numpy or torch, on its device).
        chunk_size : int, optional
            As in :meth:`predict_params`.

        Returns
        -------
        list
            Per pair, the mapped source points (n, d); for a source given as an image, the
            mapped image (H, W, C) (values may leave [0, 1] slightly; clip to display). With
            ``points``, the mapped points (k, d).

        Raises
        ------
        ValueError
            If ``points`` does not hold one array per pair, or an array is not (k, d) with the
            fitted dimension, or holds NaN or inf (the message names the pair).
        TypeError
            If ``points`` is not a list of arrays, or an array is not of real numbers.
        """
        check_is_fitted(self, "hypernetwork_")
        return self._map_pairs(pairs, points, "transform", chunk_size)

    @chunk_argument
    def inverse_transform(self, pairs: Any, *, points: Any = None,
                          chunk_size: int | None = None, solve: bool = True) -> list[Any]:
        """Pull each pair's target samples (or given points) back through its inverse map.

        The inverse of ``grad psi`` is the gradient of its conjugate,
        ``grad psi*(y) = argmin_x psi(x) - <x, y>``. With ``solve=True`` that argmin is solved
        (L-BFGS, started from the predicted inverse map ``grad psi_bar``), so
        ``inverse_transform`` undoes :meth:`transform` to the solver's tolerance; with
        ``solve=False`` the predicted inverse ``grad psi_bar`` alone is returned (one forward
        pass, as exact as the cycle-consistency term of training made it).

        Parameters
        ----------
        pairs : as in :meth:`fit`
        points : list of array-like of shape (k, n_features), optional
            Points of the target domains to map instead of the target samples, one array per
            pair (for a collection of one pair, a single array), as in :meth:`transform`.
        chunk_size : int, optional
            As in :meth:`predict_params`.
        solve : bool, default=True
            Solve the conjugate (exact inverse), or return the amortized prediction.

        Returns
        -------
        list
            Per pair, the target points mapped into the source domain (m, d); for a target
            given as an image, the image (H, W, C). With ``points``, the mapped points (k, d).

        Raises
        ------
        ValueError, TypeError
            As in :meth:`transform`.
        """
        check_is_fitted(self, "hypernetwork_")
        return self._map_pairs(pairs, points, "inverse_transform", chunk_size,
                               solve=bool(solve))

    @chunk_argument
    def refine(self, pairs: Any, max_iter: int | None = None, *, init: str = "meta",
               learning_rate: float | None = None,
               chunk_size: int | None = None) -> list[TransportPotential]:
        """Fine-tune each pair's potentials with W2GN from the prediction.

        Parameters
        ----------
        pairs : as in :meth:`fit`
        max_iter : int, optional
            W2GN steps (default ``refine_max_iter``).
        init : {"meta", "identity"}, default="meta"
            Start from the prediction, or from the identity map (W2GN from scratch, the
            baseline a prediction has to beat).
        learning_rate : float, optional
            Default ``refine_learning_rate``.
        chunk_size : int, optional
            Pairs refined together (not the training ``batch_size``); default: as many as keep
            a W2GN step's activations within a fixed memory budget. Each pair draws its
            samples from its own generator, so the results do not depend on it beyond
            rounding.

        Returns
        -------
        list of TransportPotential

        Raises
        ------
        TrainingDiverged
            When W2GN keeps failing (see :ref:`training-faults`): a failed step restores the
            last good parameters of its batch of pairs and divides the rate by 10, three times
            at most; the exception's ``params`` holds those parameters.
        """
        check_is_fitted(self, "hypernetwork_")
        if init not in ("meta", "identity"):
            raise ValueError(f"init={init!r} is not one of 'meta', 'identity'")
        steps = check_positive_int(max_iter if max_iter is not None else self.refine_max_iter,
                                   "max_iter")
        rate = check_positive_float(learning_rate or self.refine_learning_rate, "learning_rate")
        collection = self._collection(pairs)
        meta = init == "meta"
        # One draw per call seeds a generator per pair: the samples a pair sees, hence its
        # result, do not depend on the pairs it is batched with.
        seed = int(torch.randint(2**62, (1,), generator=self._generator))
        refined = []
        for chunk in self._batches(collection, chunk_size, refine=True):
            start = (self._predict_params(collection, ids=chunk) if meta
                     else self.hypernetwork_.base.detach().expand(len(chunk), -1))
            baselines = self._baselines(collection, chunk) if meta else None
            standards = pair_standardisations(collection, chunk)
            generators = [torch.Generator().manual_seed(seed + int(k)) for k in chunk]
            params = refine_w2gn(
                self.icnn_, start, lambda chunk=chunk, generators=generators: self._sample(
                    collection, chunk, generators),
                steps, learning_rate=rate, cycle_weight=self.cycle_weight, baseline=baselines)
            refined += [self._potential(row, baselines and baselines[k], standards[k])
                        for k, row in enumerate(params)]
        return refined

    @chunk_argument
    def score(self, pairs: Any, y: None = None, *, chunk_size: int | None = None) -> float:
        """Mean dual objective of the predicted potentials, with exact conjugates.

        ``V(psi) = -E_alpha psi - E_beta psi*`` (higher is better; the optimum gives
        ``W2^2 = E|x|^2 + E|y|^2 + 2 V``), on up to 4,096 points of each measure, each pair's
        in its own units (a pair's dual scales by the square of its scale).

        Parameters
        ----------
        pairs : as in :meth:`fit`
        y : None
            Ignored.
        chunk_size : int, optional
            As in :meth:`predict_params`.

        Returns
        -------
        float
        """
        check_is_fitted(self, "hypernetwork_")
        collection = self._collection(pairs)
        values = []
        for k, potential in enumerate(self._predicted_potentials(collection, chunk_size)):
            ids = np.array([k])
            (x,), (a,) = collection.encoding_points(ids, 0, self._device_, self._dtype_)
            (y_pts,), (b,) = collection.encoding_points(ids, 1, self._device_, self._dtype_)
            values.append(potential.dual_value(x, y_pts, a, b))
        return float(np.mean(values))
