"""MetaICNNTransport: W2 maps for new pairs of continuous measures from a hypernetwork (Meta OT)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from skmetaot.amortize import TrainingHistory
from skmetaot.amortize.w2_losses import DIVERGED_LOSS, pretrain_identity
from skmetaot.amortize.w2gn import (
    AffineBaseline,
    gaussian_baseline,
    refine_w2gn,
    w2gn_loss,
)
from skmetaot.estimators._base import (
    BaseOTEstimator,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
)
from skmetaot.estimators._collection import (
    ENCODE_POINTS,
    IMAGE_SIDE,
    MeasureCollection,
    as_measure_collection,
    concat_collections,
)
from skmetaot.estimators._potential import TransportPotential
from skmetaot.estimators._standardise import (
    Standardisation,
    pair_standardisations,
    standardised_encoder_inputs,
    standardised_samples,
)
from skmetaot.geometry import DENSE_CHUNK_ELEMENTS
from skmetaot.nn import ICNN
from skmetaot.nn.encoders import ImageEncoder, SetEncoder
from skmetaot.nn.hypernetwork import FunctionalPotential, GradientMap, PairHypernetwork
from skmetaot.sampling import RandomBatches, is_stream

ENCODERS = ("auto", "set", "image")
BASELINES = ("gaussian", None)
#: Pairs whose standardised samples make the pool of the identity pre-training, and the
#: points drawn for it (at least ``n_samples`` per measure).
PRETRAIN_PAIRS = 64
PRETRAIN_POINTS = 2 ** 16


class MetaICNNTransport(BaseOTEstimator):
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
    def _check_params(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder={self.encoder!r} is not one of {ENCODERS}")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline={self.baseline!r} is not one of {BASELINES}")
        for name in ("encoder_features", "batch_size", "n_samples", "max_iter",
                     "refine_max_iter"):
            check_positive_int(getattr(self, name), name)
        check_non_negative_int(self.pretrain_iter, "pretrain_iter")
        self._check_checkpoint_params()
        for name in ("learning_rate", "refine_learning_rate"):
            check_positive_float(getattr(self, name), name)
        if not (isinstance(self.cycle_weight, (int, float)) and self.cycle_weight >= 0):
            raise ValueError(f"cycle_weight must be a non-negative number, got "
                             f"{self.cycle_weight!r}")
        for name in ("icnn_hidden_sizes", "hidden_layer_sizes"):
            sizes = getattr(self, name)
            if not (isinstance(sizes, Sequence) and len(sizes) > 0 and all(
                    isinstance(w, (int, np.integer)) and w > 0 for w in sizes)):
                raise ValueError(f"{name} must be a non-empty sequence of positive integers, "
                                 f"got {sizes!r}")

    def _collection(self, pairs: Any) -> MeasureCollection:
        collection = as_measure_collection(pairs)
        fitted = getattr(self, "n_features_in_", None)
        if fitted is not None and collection.dim != fitted:
            raise ValueError(f"the pairs have dimension {collection.dim}, but the estimator "
                             f"was fitted on dimension {fitted}")
        if getattr(self, "encoder_", None) == "image" and not collection.has_images:
            raise ValueError("this estimator encodes images (encoder='image'); pass the "
                             "measures as images (H, W, C)")
        return collection

    # -- training -----------------------------------------------------------------------------
    def _initialise(self, collection: MeasureCollection) -> None:
        self._device_, self._dtype_ = self._torch_device(), self._torch_dtype()
        self.n_features_in_ = collection.dim
        encoder = self.encoder
        if encoder == "auto":
            encoder = "image" if collection.has_images else "set"
        if encoder == "image" and not collection.has_images:
            raise ValueError("encoder='image' needs measures given as images (H, W, C)")
        self.encoder_ = encoder
        self._generator = self._seed_generator()
        self.icnn_ = ICNN(collection.dim, tuple(self.icnn_hidden_sizes),
                          activation=self.icnn_activation, quadratic="full",
                          output_activation=False, generator=self._generator).to(
            self._device_, self._dtype_)
        self._history = TrainingHistory()
        self._metrics: dict[str, list[float]] = {"dual": [], "cycle_loss": [],
                                                 "pretrain_loss": []}
        base = self._identity_parameters(collection)
        net = (ImageEncoder(collection.dim, self.encoder_features) if encoder == "image"
               else SetEncoder(collection.dim, n_features=self.encoder_features))
        self.hypernetwork_ = PairHypernetwork(net, torch.cat([base, base]),
                                              tuple(self.hidden_layer_sizes)).to(
            self._device_, self._dtype_)
        self.optimizer_ = None
        self.n_iter_ = 0

    def _identity_parameters(self, collection: MeasureCollection) -> torch.Tensor:
        """ICNN parameters with ``grad psi(x) ~ x`` where the standardised measures live."""
        ids = torch.randperm(collection.n_pairs, generator=self._generator)[:PRETRAIN_PAIRS]
        per_pair = max(self.n_samples, PRETRAIN_POINTS // (2 * len(ids)))
        pool = torch.cat(self._sample(collection, ids.numpy(), self._generator, per_pair), 1)
        pool = pool.reshape(-1, collection.dim)
        # The decaying rate matters: every problem starts only as exactly as this fit.
        self._metrics["pretrain_loss"] += pretrain_identity(
            self.icnn_, pool, self.pretrain_iter, self.n_samples, self._generator,
            learning_rate=1e-2, decay=True, tol=1e-7)
        return self.icnn_.params.detach().clone()

    def _sample(self, collection: MeasureCollection, pair_ids: np.ndarray, generator: Any,
                n_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised samples (B, n, d) of both sides of the pairs (n: ``n_samples``)."""
        return standardised_samples(collection, pair_ids, n_samples or self.n_samples,
                                    generator, self._device_, self._dtype_)

    def _encoder_inputs(self, collection: MeasureCollection, pair_ids: np.ndarray, side: int,
                        samples: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """What the encoder reads of one side of the pairs, standardised per pair."""
        if samples is not None and self.encoder_ == "set":
            return (samples,)
        return standardised_encoder_inputs(collection, pair_ids, side, self.encoder_ == "image",
                                           self._device_, self._dtype_)

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

    def _train_stream(self, data: Any, n_steps: int, total_steps: int | None,
                      initialise: bool, cycle: bool, checkpoint_data: tuple | None) -> None:
        _, batches = self._open_stream(
            data, cycle=cycle, initialise=initialise,
            convert=lambda item, fitting: self._collection(item), concat=concat_collections)
        self._train(None, n_steps, total_steps,
                    batches=((batch, np.arange(batch.n_pairs)) for batch in batches),
                    checkpoint_data=checkpoint_data)

    def _train(self, collection: MeasureCollection | None, n_steps: int,
               total_steps: int | None, checkpoint_data: tuple | None = None,
               batches: Any = None) -> MetaICNNTransport:
        if batches is None:  # a collection in memory: random pairs of it, as RandomBatches
            draws = RandomBatches(np.arange(collection.n_pairs), self.batch_size).iterate(
                self._seed)
            self._batch_generator = draws.generator
            batches = ((collection, pick) for pick in draws)

        def step_loss(step: int) -> torch.Tensor:
            collection, pick = next(batches)
            x, y = self._sample(collection, pick, self._generator)
            params = self.hypernetwork_(self._encoder_inputs(collection, pick, 0, x),
                                        self._encoder_inputs(collection, pick, 1, y))
            out = w2gn_loss(self.icnn_, params, x, y, self.cycle_weight,
                            self._baselines(collection, pick))
            duals = pair_standardisations(collection, pick).dual(
                out.problem_duals, x.detach().mean(1), y.detach().mean(1))
            self._metrics["dual"].append(float(duals.mean()))
            self._metrics["cycle_loss"].append(out.amortization_loss)
            return out.loss

        self._train_loop(
            self.hypernetwork_, step_loss,
            self._live_optimizer("optimizer_", self.hypernetwork_.parameters(),
                                 lambda p: torch.optim.Adam(p, lr=self.learning_rate)),
            n_steps=n_steps, total_steps=total_steps, checkpoint_data=checkpoint_data,
            distribute="hypernetwork_", learning_rate=self.learning_rate,
            grad_clip=self.grad_clip,
            # Standardised pairs have E|x|^2 + E|y|^2 = 2 d: far beyond it, the loss diverges.
            max_abs_loss=DIVERGED_LOSS * (2 * self.n_features_in_ + 1),
            warmup=max(1, (total_steps or n_steps) // 20) if total_steps else 0,
            description="MetaICNNTransport")
        return self

    @property
    def history_(self) -> dict[str, Any]:
        """Training history (see the class docstring)."""
        check_is_fitted(self, "hypernetwork_")
        return {**self._history.as_dict(), **{k: list(v) for k, v in self._metrics.items()}}

    # -- prediction ---------------------------------------------------------------------------
    def _batches(self, collection: MeasureCollection, batch_size: int | None,
                 refine: bool = False, ids: np.ndarray | None = None) -> list[np.ndarray]:
        """``ids`` (default: all pairs) in batches of ``batch_size`` pairs.

        ``batch_size`` is a method argument, not the training one; by default, as many pairs
        as keep a batch's activations within the memory budget.
        """
        ids = np.arange(collection.n_pairs) if ids is None else ids
        if batch_size is not None:
            size = check_positive_int(batch_size, "batch_size")
        else:  # elements held per pair, at the default network widths
            dim = self.n_features_in_
            if refine:  # W2GN: samples through both ICNNs, with gradients and conjugates
                per_pair = 8 * self.n_samples * (dim + sum(self.icnn_hidden_sizes))
            elif self.encoder_ == "image":  # the feature maps of two images
                per_pair = 120 * IMAGE_SIDE ** 2
            else:  # the per-point features of two measures
                largest = max(len(m.points) for m in collection.measures)
                per_pair = 2 * min(largest, ENCODE_POINTS) * (dim + 256)
            size = max(1, DENSE_CHUNK_ELEMENTS // per_pair)
        return [ids[start:start + size] for start in range(0, len(ids), size)]

    def _predict_params(self, collection: MeasureCollection, batch_size: int | None = None,
                        ids: np.ndarray | None = None) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for chunk in self._batches(collection, batch_size, ids=ids):
                out.append(self.hypernetwork_(self._encoder_inputs(collection, chunk, 0),
                                              self._encoder_inputs(collection, chunk, 1)))
        return torch.cat(out)

    def _baselines(self, collection: MeasureCollection,
                   pair_ids: np.ndarray) -> AffineBaseline | None:
        """The Gaussian maps of the standardised pairs (None without a baseline)."""
        if self.baseline is None:
            return None
        standard = pair_standardisations(collection, pair_ids)
        return gaussian_baseline(*standard.moments(*collection.moments(pair_ids, 0)),
                                 *standard.moments(*collection.moments(pair_ids, 1))).to(
            self._device_, self._dtype_)

    def _potential(self, params: torch.Tensor, baseline: AffineBaseline | None = None,
                   standard: Standardisation | None = None) -> TransportPotential:
        """The potential of one pair from its parameters, baseline and standardisation."""
        n = self.icnn_.n_params
        b = baseline
        psi = FunctionalPotential(self.icnn_, params[:n], b and b.matrix, b and b.shift)
        psi_bar = FunctionalPotential(self.icnn_, params[n:], b and b.inverse_matrix,
                                      b and b.inverse_shift)
        parameters = {"psi": params[:n].cpu().numpy(), "psi_bar": params[n:].cpu().numpy()}
        if b is not None:
            parameters.update({name: getattr(b, name).cpu().numpy() for name in (
                "matrix", "shift", "inverse_matrix", "inverse_shift")})
        return TransportPotential(
            psi, self.n_features_in_, amortizer=GradientMap(psi_bar), conjugate_tol=1e-4,
            device=self._device_, dtype=self._dtype_, parameters=parameters,
            shift=None if standard is None else standard.shift.cpu().numpy(),
            scale=1.0 if standard is None else float(standard.scale))

    def _predicted_potentials(self, collection: MeasureCollection,
                              batch_size: int | None = None) -> list[TransportPotential]:
        params = self._predict_params(collection, batch_size)
        ids = np.arange(collection.n_pairs)
        baselines = self._baselines(collection, ids)
        standards = pair_standardisations(collection, ids)
        return [self._potential(row, baselines and baselines[k], standards[k])
                for k, row in enumerate(params)]

    def predict_params(self, pairs: Any, *, batch_size: int | None = None) -> np.ndarray:
        """The raw predicted parameters, ``psi`` then ``psi_bar``, one row per pair.

        They are the parameters of each pair's standardised problem (see the class notes).

        Parameters
        ----------
        pairs : as in :meth:`fit`
        batch_size : int, optional
            Pairs encoded at once (not the training ``batch_size``); default: as many as keep
            the encoder's activations within a fixed memory budget.

        Returns
        -------
        ndarray of shape (n_pairs, 2 * ``icnn_.n_params``)
        """
        check_is_fitted(self, "hypernetwork_")
        return self._predict_params(self._collection(pairs), batch_size).cpu().numpy()

    def predict_potentials(self, pairs: Any, *,
                           batch_size: int | None = None) -> list[TransportPotential]:
        """One potential object per pair: ``psi(x)``, ``.transform``, ``.inverse_transform``.

        ``inverse_transform`` starts from the predicted inverse map ``grad psi_bar`` and
        solves the conjugate exactly.

        Parameters
        ----------
        pairs : as in :meth:`fit`
        batch_size : int, optional
            As in :meth:`predict_params`.

        Returns
        -------
        list of TransportPotential
        """
        check_is_fitted(self, "hypernetwork_")
        return self._predicted_potentials(self._collection(pairs), batch_size)

    def transform(self, pairs: Any, *, batch_size: int | None = None) -> list[Any]:
        """Push each pair's source samples through its predicted map ``grad psi``.

        Parameters
        ----------
        pairs : as in :meth:`fit`
        batch_size : int, optional
            As in :meth:`predict_params`.

        Returns
        -------
        list
            Per pair, the mapped source points (n, d); for a source given as an image, the
            mapped image (H, W, C) (values may leave [0, 1] slightly; clip to display).
        """
        check_is_fitted(self, "hypernetwork_")
        collection = self._collection(pairs)
        mapped = []
        for k, potential in enumerate(self._predicted_potentials(collection, batch_size)):
            measure = collection.measures[collection.index[k, 0]]
            pushed = potential.transform(measure.points.to(self._device_))
            if measure.image_shape is not None:
                pushed = pushed.reshape(measure.image_shape)
            mapped.append(measure.kind.wrap(pushed))
        return mapped

    def refine(self, pairs: Any, max_iter: int | None = None, *, init: str = "meta",
               learning_rate: float | None = None,
               batch_size: int | None = None) -> list[TransportPotential]:
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
        batch_size : int, optional
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
        for chunk in self._batches(collection, batch_size, refine=True):
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

    def score(self, pairs: Any, y: None = None, *, batch_size: int | None = None) -> float:
        """Mean dual objective of the predicted potentials, with exact conjugates.

        ``V(psi) = -E_alpha psi - E_beta psi*`` (higher is better; the optimum gives
        ``W2^2 = E|x|^2 + E|y|^2 + 2 V``), on up to 4,096 points of each measure, each pair's
        in its own units (a pair's dual scales by the square of its scale).

        Parameters
        ----------
        pairs : as in :meth:`fit`
        y : None
            Ignored.
        batch_size : int, optional
            As in :meth:`predict_params`.

        Returns
        -------
        float
        """
        check_is_fitted(self, "hypernetwork_")
        collection = self._collection(pairs)
        values = []
        for k, potential in enumerate(self._predicted_potentials(collection, batch_size)):
            ids = np.array([k])
            (x,), (a,) = collection.encoding_points(ids, 0, self._device_, self._dtype_)
            (y_pts,), (b,) = collection.encoding_points(ids, 1, self._device_, self._dtype_)
            values.append(potential.dual_value(x, y_pts, a, b))
        return float(np.mean(values))
