"""MetaSinkhornTransport: amortized entropic OT between discrete measures (Meta OT, Section 2)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from sklearn.utils.validation import check_is_fitted

from skmetaot._validation import (
    check_positive_int,
    layer_sizes,
    one_of,
    optional,
)
from skmetaot.amortize import (
    entropic_dual_value,
)
from skmetaot.amortize.features import INPUTS, pair_features
from skmetaot.costs import CostSpec
from skmetaot.estimators._base import BaseOTEstimator, chunk_argument
from skmetaot.estimators._calibration import CorrectionCalibration
from skmetaot.estimators._fitted_supports import FittedSupports
from skmetaot.estimators._meta_sinkhorn_training import PotentialTraining
from skmetaot.estimators._refinement import WarmStartRefinement
from skmetaot.measures import HistogramPairs, as_pairs
from skmetaot.sampling import is_stream
from skmetaot.solvers.entropic import (
    default_batch_size,
    pair_geometry,
)
from skmetaot.solvers.initializers import Initializer, PairBatch, gaussian_init
from skmetaot.solvers.plans import barycentric_map, transport_plan
from skmetaot.solvers.sinkhorn import c_transform


class MetaSinkhornTransport(PotentialTraining, CorrectionCalibration, WarmStartRefinement,
                            FittedSupports, BaseOTEstimator, Initializer):
    """Predict entropic OT dual potentials for new pairs of discrete measures; refine exactly.

    A network f_theta(a, b) maps a pair of histograms on fixed supports to the source dual
    potential f; the target potential is recovered exactly as the c-transform g = g(f), so the
    b-marginal of every predicted plan is exact. Training is objective-based amortization (Amos
    et al., Meta OT, 2023): it maximises the entropic dual ``<f, a> + <g(f), b>`` averaged over
    the training pairs and needs no solved problems. Predictions warm-start Sinkhorn
    (:meth:`refine`) or POT (:func:`skmetaot.pot.to_warmstart`).

    By default the network sees ``concat(n a, n pooled)``: the source histogram and the target
    histogram pooled onto the source atoms through the kernel (the a-marginal of the plan of
    ``f = 0``; see :func:`skmetaot.amortize.first_sinkhorn_step`), both scaled to mean
    one; ``inputs="histograms"`` gives it ``concat(n a, m b)``, as in the paper. All pairs must
    share the supports seen in ``fit`` (images on one grid; supply and demand at fixed locations,
    which may differ from each other, as in the sphere problem); for pairs of point clouds with
    their own supports and sizes, use :class:`MetaSinkhornCloudTransport` (entropic) or
    :class:`MetaICNNTransport` (Wasserstein-2 maps).

    Zero-mass atoms: source atoms with ``a_i = 0`` are left out of the c-transform and get
    ``f_i = -inf`` in predictions (their plan rows are exactly zero, as after any Sinkhorn update);
    target atoms with ``b_j = 0`` get ``g_j = -inf`` and drop out of the objective. No penalty is
    used, and nothing becomes NaN.

    Inputs are validated by every method (see :func:`skmetaot.as_pairs`): integer images are
    converted to float and repeated support points are allowed, while NaN or inf, negative or
    all-zero histograms, empty collections, object, string or complex arrays and ``meta``
    tensors raise a ``ValueError`` or ``TypeError`` naming the pair and the problem; so do
    pairs whose supports differ from those seen in ``fit``.

    Parameters
    ----------
    epsilon : float, default=1e-2
        Entropic regularisation in cost units. Any finite positive value works: with a tiny
        (1e-8) or a huge (1e8) epsilon the predictions, plans, maps, scores and refinements stay
        finite.
    cost : {"sqeuclidean", "euclidean", "spherical"} or callable, default="sqeuclidean"
    hidden_layer_sizes : tuple of int, default=(1024, 1024, 1024)
        Hidden widths of the MLP (the reference uses three layers of 1024); ignored with
        ``model``.
    learning_rate : float, default=1e-3
        Peak Adam learning rate.
    learning_rate_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"``: decay to 10% of ``learning_rate`` over the ``max_iter`` steps of
        :meth:`fit` (each :meth:`partial_fit` call decays over its own steps).
        ``"constant"``: ``learning_rate`` throughout, as in the Meta OT reference; successive
        :meth:`partial_fit` calls then train exactly as one long fit would (what learning
        curves need).
    batch_size : int, default=128
        Pairs per training step.
    max_iter : int, default=5000
        Training steps of :meth:`fit`.
    tol : float, default=1e-3
        L1 marginal error (eq. (7)) at which :meth:`refine` stops.
    refine_max_iter : int, default=1000
        Sinkhorn iterations allowed in :meth:`refine`.
    grad_clip : float, default=1.0
        Gradient-norm clipping.
    unroll_steps : int, default=0
        When positive, the loss also includes the L1 marginal error left after this many
        differentiable Sinkhorn iterations from the prediction
        (:func:`skmetaot.amortize.unrolled_marginal_error`), which targets the slowly converging
        directions that decide refinement time. 0 is the paper's objective alone.
    target_sample_size : int or None, default=None
        Target atoms in each training step's dual objective: a fresh uniform sample of this
        many (shared by the batch), the target term rescaled so that the loss and its gradient
        are unbiased estimates of the whole dual's (the stochastic semi-dual, Genevay et al.
        2016). On a large target (the sphere's 10,000 demand points) a step then costs a
        fraction of the c-transform over every target atom; the network still sees every atom.
        None: every atom. Needs ``unroll_steps=0`` and a cost that is not a grid's
        (the sampled atoms form no grid).
    inputs : {"pooled", "histograms", "pooled+histograms"}, default="pooled"
        What the network sees of a pair (see :func:`skmetaot.amortize.pair_features`):
        the source histogram with the target pooled onto the source atoms (2n numbers whatever
        the target's size, one Sinkhorn sweep to compute), the two raw histograms (the paper's
        ``concat(a, b)``), or all three.
    baseline : {"sinkhorn", "gaussian"} or None, default="sinkhorn"
        The network predicts a correction added to a baseline potential, and starts at exactly
        that potential (its last layer is zero): ``"sinkhorn"``, Sinkhorn's first f-update from
        zeros (free with the pooled inputs); ``"gaussian"``, the Gaussian-map potential of the
        pair (Thornton and Cuturi 2022). None: the network predicts ``f`` itself, as in the
        paper.
    validation_fraction : float, default=0.0
        Fraction of the pairs held out to record a validation loss in ``history_``.
    device : str, default="auto"
        "auto" uses CUDA when present.
    dtype : {"float32", "float64"}, default="float32"
    random_state : int, RandomState or None, default=None
        Seeds initialisation and pair sampling (reproducible on the CPU).
    verbose : int, default=0
        Progress bar when positive.
    checkpoint_path : str or os.PathLike, optional
        :meth:`fit` saves its training state there every ``checkpoint_every`` steps and at
        the end, and resumes from it when the file exists (see :ref:`checkpoints`).
    checkpoint_every : int, default=500
        Steps between checkpoints.
    model : None, "conv" or callable, default=None
        The network that maps the pair's features (B, n_features) to the correction of the
        source potential (B, n_source). None: the MLP of ``hidden_layer_sizes``. ``"conv"``:
        :class:`skmetaot.nn.GridUNet`, a U-Net over the source grid, for
        histograms on a shared 2-D image grid (it learns several times faster per training
        second than the MLP on MNIST pairs; see :ref:`fast_meta_training`); other supports
        raise a ``ValueError`` in ``fit``. A callable ``model(n_features, n_source) ->
        torch.nn.Module`` builds your own (as OTT-JAX's ``MetaInitializer(meta_model=...)``): a
        class or a module-level function, so that the estimator pickles. With a baseline, a
        network whose last layer starts at zero starts training exactly at the baseline (the
        MLP and ``"conv"`` do).

    Attributes
    ----------
    model_ : torch.nn.Module
        The trained network.
    n_iter_ : int
        Training steps taken.
    history_ : dict
        ``step``, ``loss`` (negative mean dual), ``val_step``, ``val_loss``, ``recoveries``
        (skipped non-finite steps), ``seconds``.
    resumed_from_ : int or None
        Step of the checkpoint :meth:`fit` resumed from (None when it started afresh).
    n_source_, n_target_ : int
        Support sizes.
    correction_scale_ : float
        The factor of the network's correction (with a baseline), 1 until :meth:`calibrate`
        chooses another (:ref:`calibrate_correction`).
    calibration_ : dict
        Set by :meth:`calibrate`: ``tol``, ``scales`` and the ``median_n_iter`` of each.

    Examples
    --------
    >>> from skmetaot import MetaSinkhornTransport
    >>> from skmetaot.datasets import make_mnist_pairs
    >>> train = make_mnist_pairs(256, split="train", random_state=0)
    >>> est = MetaSinkhornTransport(hidden_layer_sizes=(64,), max_iter=20, device="cpu",
    ...                             random_state=0).fit(train)
    >>> f, g = est.predict_potentials(make_mnist_pairs(2, split="test", random_state=1))
    >>> f.shape, g.shape
    ((2, 784), (2, 784))
    """

    def __init__(
        self,
        epsilon: float = 1e-2,
        cost: CostSpec = "sqeuclidean",
        hidden_layer_sizes: Sequence[int] = (1024, 1024, 1024),
        learning_rate: float = 1e-3,
        learning_rate_schedule: str = "cosine",
        batch_size: int = 128,
        max_iter: int = 5000,
        tol: float = 1e-3,
        refine_max_iter: int = 1000,
        grad_clip: float = 1.0,
        unroll_steps: int = 0,
        inputs: str = "pooled",
        baseline: str | None = "sinkhorn",
        validation_fraction: float = 0.0,
        device: str = "auto",
        dtype: str = "float32",
        random_state: Any = None,
        verbose: int = 0,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every: int = 500,
        target_sample_size: int | None = None,
        model: str | Callable[[int, int], torch.nn.Module] | None = None,
    ) -> None:
        self.epsilon = epsilon
        self.cost = cost
        self.hidden_layer_sizes = hidden_layer_sizes
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.refine_max_iter = refine_max_iter
        self.grad_clip = grad_clip
        self.unroll_steps = unroll_steps
        self.inputs = inputs
        self.baseline = baseline
        self.validation_fraction = validation_fraction
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.target_sample_size = target_sample_size
        self.model = model

    # -- validation ---------------------------------------------------------------------------
    _parameter_rules = {
        "hidden_layer_sizes": layer_sizes(non_empty=False),
        "baseline": one_of(("sinkhorn", "gaussian", None)), "inputs": one_of(INPUTS),
        "target_sample_size": optional(check_positive_int)}

    def _check_own_params(self) -> None:
        if self.target_sample_size is not None and self.unroll_steps:
            raise ValueError("target_sample_size needs unroll_steps=0: the unrolled "
                             "marginal error involves every target atom")
        if isinstance(self.model, str):
            if self.model != "conv":
                raise ValueError(f"model={self.model!r} is not 'conv', None or a callable")
        elif self.model is not None and not callable(self.model):
            raise TypeError(f"model must be None, 'conv' or a callable (n_features, n_source) "
                            f"-> torch.nn.Module, got {type(self.model).__name__}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got "
                             f"{self.validation_fraction!r}")

    def _validate_pairs(self, pairs: Any, *, fitting: bool) -> HistogramPairs:
        pairs = as_pairs(pairs)
        if not isinstance(pairs, HistogramPairs):
            raise ValueError(
                "MetaSinkhornTransport needs histograms on supports shared by all pairs "
                "(HistogramPairs, images or (N, 2, H, W) arrays); for pairs of point clouds "
                "with their own supports and sizes, use MetaSinkhornCloudTransport")
        if fitting:
            return pairs.to(self._dtype_, self._device_)
        if pairs.a.shape[1] != self.n_source_ or pairs.b.shape[1] != self.n_target_:
            raise ValueError(
                f"the pairs have {pairs.a.shape[1]} source and {pairs.b.shape[1]} target atoms, "
                f"but the estimator was fitted on {self.n_source_} and {self.n_target_}")
        return self._on_fitted_supports(pairs)

    # -- training -----------------------------------------------------------------------------
    def _geometry(self, pairs: HistogramPairs):
        return pair_geometry(pairs, [0], epsilon=self.epsilon, cost=self.cost,
                             cost_matrix=None)[0]

    def _forward(self, geometry, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        features, first_f = pair_features(self.inputs, geometry, a, b)
        correction = self._scaled(self.model_(features))
        if self.baseline is None:
            return correction
        if self.baseline == "sinkhorn":
            if first_f is None:  # the raw inputs did not compute it
                first_f = pair_features("pooled", geometry, a, b)[1]
            return first_f + correction
        with torch.no_grad():
            base = gaussian_init(self.support_x_, a, self.support_y_, b)
        return base + correction

    def fit(self, pairs: Any, y: None = None) -> MetaSinkhornTransport:
        """Train the potential predictor on a collection or a stream of pairs.

        Parameters
        ----------
        pairs : collection or stream of pairs
            A collection in memory: :class:`~skmetaot.HistogramPairs` or anything
            :func:`skmetaot.as_pairs` accepts on shared supports (e.g. an (N, 2, H, W) array
            of image pairs); batches are drawn from it at random (as
            :class:`~skmetaot.sampling.RandomBatches` with this ``random_state`` draws them).
            Or a stream that is never held whole: a :class:`~skmetaot.sampling.PairSampler`, an
            iterable or generator of pairs or of mini-batches of pairs, a
            :class:`torch.utils.data.DataLoader` or ``Dataset`` (see :ref:`streaming`). Each
            training step takes ``batch_size`` pairs from it; a stream that ends before
            ``max_iter`` steps ends training there (with a warning).
        y : None
            Ignored (no solved problems are needed).

        Returns
        -------
        self
        """
        self._check_params()
        self._device_, self._dtype_ = self._torch_device(), self._torch_dtype()
        if is_stream(pairs):
            return self._fit_stream(pairs, None, fitting=True, initialise=True)
        pairs = self._validate_pairs(pairs, fitting=True)
        self._initialise(pairs)
        return self._train(pairs, self.max_iter, total_steps=self.max_iter,
                           checkpoint_data=(pairs.a, pairs.b, pairs.x, pairs.y))

    def partial_fit(self, pairs: Any, y: None = None, n_steps: int | None = None):
        """Continue training on ``pairs`` (one pass over them by default).

        Parameters
        ----------
        pairs : collection or stream of pairs
            As in :meth:`fit`.
        y : None
            Ignored.
        n_steps : int, optional
            Steps to take; default ``ceil(len(pairs) / batch_size)`` for a collection, and
            until a stream ends (give ``n_steps`` for an endless one).

        Returns
        -------
        self
        """
        first = not hasattr(self, "model_")
        if first:
            self._check_params()
            self._device_, self._dtype_ = self._torch_device(), self._torch_dtype()
        if is_stream(pairs):
            return self._fit_stream(pairs, n_steps, fitting=False, initialise=first)
        pairs = self._validate_pairs(pairs, fitting=first)
        if first:
            self._initialise(pairs)
        steps = n_steps or -(-pairs.n_pairs // self.batch_size)
        return self._train(pairs, check_positive_int(steps, "n_steps"), total_steps=None)

    @property
    def history_(self) -> dict[str, Any]:
        """Training history (see the class docstring)."""
        check_is_fitted(self, "model_")
        return self._history.as_dict()

    # -- prediction ---------------------------------------------------------------------------
    def _batch_size(self, pairs: HistogramPairs, batch_size: int | None, dense: bool = False):
        # A method argument, not the training ``batch_size``; default: the memory budget.
        # Batches forming (B, n, m) tensors (``dense``) never exceed the budget.
        size = default_batch_size(pairs, cost=self.cost, dense=dense)
        if batch_size is None:
            return size
        given = check_positive_int(batch_size, "chunk_size")
        return min(given, size) if dense else given

    def _batches(self, pairs: HistogramPairs, batch_size: int | None, dense: bool = False):
        step, n_pairs = self._batch_size(pairs, batch_size, dense), pairs.n_pairs
        return [slice(start, min(start + step, n_pairs)) for start in range(0, n_pairs, step)]

    def _mean_dual(self, geometry, pairs: HistogramPairs, index: torch.Tensor,
                   batch_size: int | None = None) -> float:
        """Mean entropic dual of the predictions for the pairs ``index`` (no gradient)."""
        with torch.no_grad():
            values = [entropic_dual_value(geometry,
                                          self._forward(geometry, pairs.a[i], pairs.b[i]),
                                          pairs.a[i], pairs.b[i])
                      for i in index.split(self._batch_size(pairs, batch_size))]
        return float(torch.cat(values).mean())

    def _predict_f(self, pairs: HistogramPairs, batch_size: int | None = None,
                   geometry=None) -> torch.Tensor:
        """Predicted source potentials, -inf on zero-mass atoms (what warm-starts Sinkhorn)."""
        geometry = self._geometry(pairs) if geometry is None else geometry
        parts = [self._predict_f_from(geometry, pairs.a[part], pairs.b[part])
                 for part in self._batches(pairs, batch_size)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)  # one part: no copy

    def _predict_f_from(self, geometry, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._forward(geometry, a, b).masked_fill_(a <= 0, float("-inf"))

    def _predict_tensors(self, pairs: HistogramPairs, batch_size: int | None = None):
        geometry = self._geometry(pairs)
        f = self._predict_f(pairs, batch_size, geometry)
        with torch.no_grad():
            g = torch.cat([c_transform(geometry, f[part], pairs.a[part], pairs.b[part])
                           for part in self._batches(pairs, batch_size)])
        return f, g, geometry

    @chunk_argument
    def predict_potentials(self, pairs: Any, *, chunk_size: int | None = None) -> tuple[Any, Any]:
        """Predicted dual potentials of each pair.

        Parameters
        ----------
        pairs : HistogramPairs or anything :func:`skmetaot.as_pairs` accepts
        chunk_size : int, optional
            Pairs predicted at once (default: a fixed memory budget; see
            :ref:`large_collections`).

        Returns
        -------
        f : array of shape (N, n)
            Source potentials in cost units (-inf on zero-mass atoms).
        g : array of shape (N, m)
            ``g(f)``, exactly (so the b-marginal of the predicted plan is exact).
        """
        check_is_fitted(self, "model_")
        pairs = self._validate_pairs(pairs, fitting=False)
        f, g, _ = self._predict_tensors(pairs, chunk_size)
        return pairs.kind.wrap(f), pairs.kind.wrap(g)

    @chunk_argument
    def predict_plan(self, pairs: Any, *, chunk_size: int | None = None) -> Any:
        """Predicted couplings ``P_ij = exp((f_i + g_j - C_ij)/eps)``.

        Parameters
        ----------
        pairs : HistogramPairs or anything :func:`skmetaot.as_pairs` accepts
        chunk_size : int, optional
            Pairs predicted at once (default: a fixed memory budget); the plans are formed in
            batches that stay within that budget.

        Returns
        -------
        array of shape (N, n, m)
            The object POT's ``ot.sinkhorn(a, b, M, epsilon)`` returns once converged.
        """
        check_is_fitted(self, "model_")
        pairs = self._validate_pairs(pairs, fitting=False)
        f, g, geometry = self._predict_tensors(pairs, chunk_size)
        cost = geometry.cost_matrix()
        plans = f.new_empty((pairs.n_pairs, *cost.shape))
        for part in self._batches(pairs, chunk_size, dense=True):
            plans[part] = transport_plan(cost, f[part], g[part], self.epsilon)
        return pairs.kind.wrap(plans)

    def _fitted_pairs(self, pairs: Any) -> HistogramPairs:
        check_is_fitted(self, "model_")
        return self._validate_pairs(pairs, fitting=False)

    def _refine_batches(self, pairs: HistogramPairs, batch_size: int | None) -> list[slice]:
        return self._batches(pairs, batch_size)

    def init_f(self, batch: PairBatch) -> torch.Tensor:
        """Predicted f of a solver's batch: a fitted estimator is a Sinkhorn initializer.

        What ``sinkhorn(pairs, init=self)`` and :meth:`refine` start from (see
        :class:`~skmetaot.Initializer`).

        Parameters
        ----------
        batch : PairBatch
            Pairs on the supports seen in ``fit``, in any dtype and on any device.

        Returns
        -------
        torch.Tensor of shape (B, n)
            The predicted source potentials (-inf on zero-mass atoms), on the batch's dtype and
            device.

        Raises
        ------
        ValueError
            If the pairs are not histograms on the fitted supports.

        Examples
        --------
        >>> from skmetaot import MetaSinkhornTransport, sinkhorn
        >>> from skmetaot.datasets import make_mnist_pairs
        >>> est = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=5, device="cpu",
        ...                             random_state=0).fit(make_mnist_pairs(64, random_state=0))
        >>> test = make_mnist_pairs(3, split="test", random_state=1)
        >>> warm = sinkhorn(test, epsilon=est.epsilon, tol=1e-3, init=est)
        >>> warm.n_iter.tolist() == est.refine_state(test, tol=1e-3, max_iter=1000).n_iter.tolist()
        True
        """
        check_is_fitted(self, "model_")
        pairs = batch.pairs
        if (isinstance(pairs, HistogramPairs) and pairs.x is self.support_x_
                and pairs.y is self.support_y_ and batch.a.dtype == self._dtype_
                and batch.a.device == self._device_):
            # Pairs this estimator validated (refine): the solver's tensors are the network's.
            return self._predict_f_from(self._geometry(pairs), batch.a, batch.b)
        # The batch's own pairs, moved to the network's dtype and device (only these rows).
        pairs = self._validate_pairs(pairs[batch.indices], fitting=False)
        f = self._predict_f(pairs, batch_size=pairs.n_pairs)
        return f.to(dtype=batch.a.dtype, device=batch.a.device)

    @chunk_argument
    def transform(self, pairs: Any, *, chunk_size: int | None = None) -> Any:
        """Entropic (barycentric) map of each pair's source support points.

        ``T(x_i) = sum_j softmax_j((g_j - C_ij)/eps) y_j`` with the predicted ``g``; it is
        defined for every source point, including zero-mass ones.

        Parameters
        ----------
        pairs : HistogramPairs or anything :func:`skmetaot.as_pairs` accepts
        chunk_size : int, optional
            As in :meth:`predict_plan`.

        Returns
        -------
        array of shape (N, n, d)
        """
        check_is_fitted(self, "model_")
        pairs = self._validate_pairs(pairs, fitting=False)
        _, g, geometry = self._predict_tensors(pairs, chunk_size)
        cost = geometry.cost_matrix()
        maps = g.new_empty((pairs.n_pairs, cost.shape[0], pairs.y.shape[1]))
        for part in self._batches(pairs, chunk_size, dense=True):
            maps[part] = barycentric_map(cost, g[part], pairs.y, self.epsilon)
        return pairs.kind.wrap(maps)

    @chunk_argument
    def score(self, pairs: Any, y: None = None, *, chunk_size: int | None = None) -> float:
        """Mean entropic dual value of the predictions (higher is better).

        Parameters
        ----------
        pairs : HistogramPairs or anything :func:`skmetaot.as_pairs` accepts
        y : None
            Ignored.
        chunk_size : int, optional
            As in :meth:`predict_potentials`.

        Returns
        -------
        float
        """
        check_is_fitted(self, "model_")
        pairs = self._validate_pairs(pairs, fitting=False)
        return self._mean_dual(self._geometry(pairs), pairs,
                               torch.arange(pairs.n_pairs, device=self._device_), chunk_size)
