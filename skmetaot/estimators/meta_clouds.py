"""MetaSinkhornCloudTransport: amortized entropic OT for pairs whose supports move and resize."""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from sklearn.utils.validation import check_is_fitted

from skmetaot._validation import (
    check_non_negative_float,
    check_positive_int,
    one_of,
)
from skmetaot.amortize import (
    TrainingHistory,
    entropic_dual_value,
    potential_regression_error,
    unrolled_marginal_error,
)
from skmetaot.amortize.cloud_features import N_ATOM_FEATURES, cloud_features
from skmetaot.costs import CostSpec, pairwise_cost
from skmetaot.estimators._base import BaseOTEstimator, chunk_argument
from skmetaot.estimators._calibration import CorrectionCalibration
from skmetaot.estimators._refinement import WarmStartRefinement
from skmetaot.geometry import DenseGeometry
from skmetaot.measures import MeasurePairs, as_pairs, concat_pairs
from skmetaot.nn.clouds import ENCODERS, CloudPotentialNet
from skmetaot.sampling import RandomBatches, is_stream
from skmetaot.solvers.entropic import default_batch_size
from skmetaot.solvers.initializers import Initializer, PairBatch, gaussian_init
from skmetaot.solvers.plans import barycentric_map, transport_plan
from skmetaot.solvers.sinkhorn import c_transform

#: Potentials the network corrects (see the ``baseline`` parameter).
BASELINES = ("sinkhorn", "gaussian", None)
#: A prediction batch holds about this many (B, n, m) tensors at once (attention heads and
#: features): the solver's memory budget is divided by it.
_PREDICTION_TENSORS = 8


class MetaSinkhornCloudTransport(CorrectionCalibration, WarmStartRefinement, BaseOTEstimator,
                                 Initializer):
    """Predict entropic OT potentials for pairs of point clouds with their own supports and sizes.

    The network maps a pair of weighted point clouds ``(x, a)``, ``(y, b)`` to the source
    potential at each atom, ``f_i = F(x_i, a_i; alpha, beta)``; the target potential is the
    c-transform ``g = g(f)``, exactly, so the b-marginal of every predicted plan is exact. The
    network sees the pair through its costs and weights only
    (:func:`skmetaot.amortize.cloud_features`): it is equivariant to permuting
    the atoms of either measure, works for any sizes n and m and any dimension (one model for
    Gaussian mixtures in R^2 to R^10), and any cost. It predicts a correction, in units of the
    pair's mean cost, to a baseline potential from the geometry (Sinkhorn's first update, or
    the Gaussian potential). Training maximises the entropic dual of the predictions, as Meta
    OT does (Amos et al., 2023): no solved problems are needed. Pairs are batched by padding
    with atoms of zero weight, which take part in nothing.

    For histograms on supports shared by every pair (images on one grid), use
    :class:`MetaSinkhornTransport`, whose network reads the histograms directly.

    Parameters
    ----------
    epsilon : float, default=1e-2
        Entropic regularisation in cost units.
    cost : {"sqeuclidean", "euclidean", "spherical"} or callable, default="sqeuclidean"
        A callable maps (B, n, d) and (B, m, d) tensors to (B, n, m) costs.
    encoder : {"attention", "deepsets"}, default="attention"
        How atoms see the other atoms (:class:`skmetaot.nn.clouds.CloudPotentialNet`):
        cross-attention between the two clouds through their costs and weights, or Deep Sets
        context vectors (weighted means of the atoms' embeddings).
    width : int, default=64
        Width of the atom embeddings.
    n_layers : int, default=2
        Attention rounds (or hidden layers of the Deep Sets embeddings).
    n_heads : int, default=4
        Attention heads (each with its own cost temperature).
    baseline : {"sinkhorn", "gaussian"} or None, default="sinkhorn"
        The potential the network corrects (and starts at): Sinkhorn's first f-update from
        zeros, the Gaussian-map potential (Thornton and Cuturi, 2022; squared Euclidean cost),
        or none.
    learning_rate : float, default=1e-3
    learning_rate_schedule : {"constant", "cosine"}, default="constant"
    batch_size : int, default=32
        Pairs per training step.
    max_iter : int, default=2000
        Training steps of :meth:`fit`.
    tol : float, default=1e-3
        L1 marginal error at which :meth:`refine` stops.
    refine_max_iter : int, default=1000
    grad_clip : float, default=1.0
    unroll_steps : int, default=0
        When positive, the loss adds the L1 marginal error left after this many differentiable
        Sinkhorn iterations from the prediction.
    regression_weight : float, default=0.0
        When positive, the loss adds this times the squared distance of the prediction to the
        potential solved (to ``tol / 10``, warm-started from the prediction) in each step, up
        to a constant and in units of the pair's mean cost
        (:func:`skmetaot.amortize.potential_regression_error`): it weighs the slow directions
        of Sinkhorn, where the dual and the marginal error are flat, as much as the others.
    device : str, default="auto"
    dtype : {"float32", "float64"}, default="float32"
    random_state : int, RandomState or None
    verbose : int, default=0
    checkpoint_path : str or os.PathLike, optional
        :meth:`fit` saves its training state there and resumes from it (see
        :ref:`checkpoints`).
    checkpoint_every : int, default=200

    Attributes
    ----------
    model_ : CloudPotentialNet
    n_iter_ : int
    history_ : dict
    resumed_from_ : int or None
    correction_scale_ : float
        The factor of the network's correction, 1 until :meth:`calibrate` chooses another.
    calibration_ : dict
        Set by :meth:`calibrate`: ``tol``, ``scales`` and the ``median_n_iter`` of each.

    Examples
    --------
    >>> from skmetaot import MetaSinkhornCloudTransport
    >>> from skmetaot.datasets import make_gaussian_mixture_clouds
    >>> train = make_gaussian_mixture_clouds(64, dim=2, n_points=(20, 40), random_state=0)
    >>> est = MetaSinkhornCloudTransport(epsilon=0.1, width=16, max_iter=5, device="cpu",
    ...                                  random_state=0).fit(train)
    >>> test = make_gaussian_mixture_clouds(2, dim=3, n_points=(30, 60), random_state=1)
    >>> f, g = est.predict_potentials(test)
    >>> [len(v) for v in f] == test.source_sizes, [len(v) for v in g] == test.target_sizes
    (True, True)
    """

    def __init__(
        self,
        epsilon: float = 1e-2,
        cost: CostSpec = "sqeuclidean",
        encoder: str = "attention",
        width: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        baseline: str | None = "sinkhorn",
        learning_rate: float = 1e-3,
        learning_rate_schedule: str = "constant",
        batch_size: int = 32,
        max_iter: int = 2000,
        tol: float = 1e-3,
        refine_max_iter: int = 1000,
        grad_clip: float = 1.0,
        unroll_steps: int = 0,
        regression_weight: float = 0.0,
        device: str = "auto",
        dtype: str = "float32",
        random_state: Any = None,
        verbose: int = 0,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every: int = 200,
    ) -> None:
        self.epsilon = epsilon
        self.cost = cost
        self.encoder = encoder
        self.width = width
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.baseline = baseline
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.refine_max_iter = refine_max_iter
        self.grad_clip = grad_clip
        self.unroll_steps = unroll_steps
        self.regression_weight = regression_weight
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every

    # -- validation ---------------------------------------------------------------------------
    _parameter_rules = {
        "width": check_positive_int, "n_layers": check_positive_int,
        "n_heads": check_positive_int, "encoder": one_of(ENCODERS),
        "baseline": one_of(BASELINES), "regression_weight": check_non_negative_float}

    def _check_own_params(self) -> None:
        if self.encoder == "attention" and self.width % self.n_heads:
            raise ValueError(f"width={self.width} must be a multiple of n_heads={self.n_heads}")

    def _validate_pairs(self, pairs: Any) -> MeasurePairs:
        if isinstance(pairs, (list, tuple)) and pairs and all(
                isinstance(p, MeasurePairs) for p in pairs):
            pairs = concat_pairs(pairs)
        return as_pairs(pairs).to(self._dtype_, self._device_)

    # -- the model ----------------------------------------------------------------------------
    def _initialise(self, pairs: MeasurePairs) -> None:
        self._generator = self._seed_generator()
        self.model_ = CloudPotentialNet(N_ATOM_FEATURES, self.encoder, self.width,
                                        self.n_layers, self.n_heads
                                        ).to(self._device_, self._dtype_)
        self.optimizer_ = None
        self.n_iter_ = 0
        self._history = TrainingHistory()
        self._reset_calibration()

    def _tensors(self, pairs: MeasurePairs, indices: list[int] | None = None):
        """Padded ``(x, a, y, b)`` of the pairs ``indices`` and their (B, n, m) cost."""
        x, a, y, b = pairs.padded(indices)
        return x, a, y, b, pairwise_cost(x, y, self.cost)

    def _forward(self, x, a, y, b, cost) -> torch.Tensor:
        """Predicted f (B, n) in cost units; its values on atoms without mass are meaningless."""
        base = None
        if self.baseline == "gaussian":
            with torch.no_grad():
                base = gaussian_init(x, a, y, b)
        features = cloud_features(cost, a, b, self.epsilon, baseline=base)
        if self.baseline == "sinkhorn":
            base = features.first_f
        # The solver may work in another dtype than the network (float64 pairs, float32 model).
        dtype = next(self.model_.parameters()).dtype
        inputs = (features.source, a, features.target, b, features.cost)
        correction = self._scaled(self.model_(*(t.to(dtype) for t in inputs)).to(a.dtype))
        f = correction * features.scale[:, None]
        return f if base is None else base + f

    # -- training -----------------------------------------------------------------------------
    def fit(self, pairs: Any, y: None = None) -> MetaSinkhornCloudTransport:
        """Train on a collection or a stream of pairs of point clouds.

        Parameters
        ----------
        pairs : collection or stream of pairs
            A :class:`~skmetaot.MeasurePairs` or anything :func:`skmetaot.as_pairs` accepts
            (``[((x, a), (y, b)), ...]`` with sizes free to vary), from which batches are drawn
            at random; or a stream of such collections or pairs: a
            :class:`~skmetaot.sampling.CloudSampler` (the ``*_cloud_sampler`` families of
            :mod:`skmetaot.datasets`), a :class:`~skmetaot.sampling.PairSampler` over point
            clouds, any iterable or ``DataLoader`` (see :ref:`streaming`).
        y : None
            Ignored.

        Returns
        -------
        self
        """
        self._check_params()
        self._device_, self._dtype_ = self._torch_device(), self._torch_dtype()
        if is_stream(pairs):
            return self._fit_stream(pairs, None, fitting=True, initialise=True)
        pairs = self._validate_pairs(pairs)
        self._initialise(pairs)
        flat = [torch.cat([t.reshape(-1) for t in getattr(pairs, name)]) for name in "xayb"]
        return self._train(pairs, self.max_iter, total_steps=self.max_iter,
                           checkpoint_data=tuple(flat))

    def partial_fit(self, pairs: Any, y: None = None, n_steps: int | None = None):
        """Continue training on ``pairs`` (one pass over a collection by default).

        Parameters
        ----------
        pairs : collection or stream of pairs
            As in :meth:`fit`.
        y : None
            Ignored.
        n_steps : int, optional
            Steps to take (required for an endless stream).

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
        pairs = self._validate_pairs(pairs)
        if first:
            self._initialise(pairs)
        steps = n_steps or -(-pairs.n_pairs // self.batch_size)
        return self._train(pairs, check_positive_int(steps, "n_steps"), total_steps=None)

    def _train_stream(self, data: Any, n_steps: int, total_steps: int | None,
                      initialise: bool, cycle: bool, checkpoint_data: tuple | None) -> None:
        first, batches = self._open_stream(
            data, cycle=cycle, initialise=initialise, concat=concat_pairs,
            convert=lambda item, fitting: self._validate_pairs(item))
        self._train(first, n_steps, total_steps, batches=batches,
                    checkpoint_data=checkpoint_data)

    def _train(self, pairs: MeasurePairs, n_steps: int, total_steps: int | None,
               checkpoint_data: tuple | None = None, batches: Any = None):
        if batches is None:
            batches = RandomBatches(pairs, min(self.batch_size, pairs.n_pairs)).iterate(self._seed)
            self._batch_generator = batches.generator

        def step_loss(step: int) -> torch.Tensor:
            x, a, y, b, cost = self._tensors(next(batches))
            f = self._forward(x, a, y, b, cost)
            geometry = DenseGeometry(cost, self.epsilon)
            scale = torch.einsum("bn,bnm,bm->b", a, cost, b).detach()
            # Each pair's dual in units of its mean cost: pairs of every size and spread count
            # alike.
            loss = -(entropic_dual_value(geometry, f, a, b) / scale).mean()
            if self.unroll_steps:
                loss = loss + unrolled_marginal_error(geometry, f, a, b, self.unroll_steps).mean()
            if self.regression_weight:
                loss = loss + self.regression_weight * potential_regression_error(
                    geometry, f, a, b, scale, tol=self.tol / 10,
                    max_iter=self.refine_max_iter).mean()
            return loss

        self._train_loop(
            self.model_, step_loss,
            self._live_optimizer("optimizer_", self.model_.parameters(),
                                 lambda params: torch.optim.Adam(params, lr=self.learning_rate)),
            n_steps=n_steps, checkpoint_data=checkpoint_data,
            total_steps=math.inf if self.learning_rate_schedule == "constant" else total_steps,
            distribute="model_", learning_rate=self.learning_rate, grad_clip=self.grad_clip,
            description="MetaSinkhornCloudTransport")
        return self

    @property
    def history_(self) -> dict[str, Any]:
        """Training history: ``step``, ``loss``, ``recoveries``, ``seconds``."""
        check_is_fitted(self, "model_")
        return self._history.as_dict()

    # -- prediction ---------------------------------------------------------------------------
    def _batches(self, pairs: MeasurePairs, batch_size: int | None) -> list[list[int]]:
        if batch_size is None:
            step = max(1, default_batch_size(pairs, cost=self.cost, dense=True)
                       // _PREDICTION_TENSORS)
        else:
            step = check_positive_int(batch_size, "chunk_size")
        return [list(range(start, min(start + step, pairs.n_pairs)))
                for start in range(0, pairs.n_pairs, step)]

    def _predict_f_batches(self, pairs: MeasurePairs, batch_size: int | None):
        """Per batch: indices, padded tensors and the predicted f (-inf without mass)."""
        for indices in self._batches(pairs, batch_size):
            x, a, y, b, cost = self._tensors(pairs, indices)
            with torch.no_grad():
                f = self._forward(x, a, y, b, cost).masked_fill_(a <= 0, float("-inf"))
            yield indices, (x, a, y, b, cost), f

    def _predict_batches(self, pairs: MeasurePairs, batch_size: int | None):
        """Per batch: indices, padded tensors, f (-inf without mass) and g = g(f)."""
        for indices, (x, a, y, b, cost), f in self._predict_f_batches(pairs, batch_size):
            with torch.no_grad():
                g = c_transform(DenseGeometry(cost, self.epsilon), f, a, b)
            yield indices, (x, a, y, b, cost), f, g

    def _per_pair(self, pairs: MeasurePairs, batch_size: int | None, compute) -> list:
        """``compute(tensors, f, g)`` per batch, cut back to each pair's own sizes."""
        out = []
        for indices, tensors, f, g in self._predict_batches(pairs, batch_size):
            values = compute(tensors, f, g)
            for row, k in enumerate(indices):
                n, m = pairs.source_sizes[k], pairs.target_sizes[k]
                out.append(pairs.kind.wrap(values(row, n, m)))
        return out

    def _fitted_pairs(self, pairs: Any) -> MeasurePairs:
        check_is_fitted(self, "model_")
        return self._validate_pairs(pairs)

    def _refine_batches(self, pairs: MeasurePairs, batch_size: int | None) -> list[list[int]]:
        # The solver's memory budget (the prediction inside init_f splits its own parts).
        step = (default_batch_size(pairs, cost=self.cost, dense=True) if batch_size is None
                else check_positive_int(batch_size, "chunk_size"))
        return [list(range(start, min(start + step, pairs.n_pairs)))
                for start in range(0, pairs.n_pairs, step)]

    @chunk_argument
    def predict_potentials(self, pairs: Any, *, chunk_size: int | None = None):
        """Predicted potentials of each pair, each of its pair's size.

        Parameters
        ----------
        pairs : MeasurePairs or anything :func:`skmetaot.as_pairs` accepts
        chunk_size : int, optional
            Pairs predicted at once (default: a fixed memory budget).

        Returns
        -------
        f : list of arrays of shape (n_k,)
            Source potentials in cost units (-inf on zero-mass atoms).
        g : list of arrays of shape (m_k,)
            ``g(f)``, exactly (the b-marginal of the predicted plan is exact).
        """
        pairs = self._fitted_pairs(pairs)
        both = self._per_pair(pairs, chunk_size, lambda t, f, g: lambda row, n, m: torch.cat(
            [f[row, :n], g[row, :m]]))
        sizes = pairs.source_sizes
        return ([v[:n] for v, n in zip(both, sizes, strict=True)],
                [v[n:] for v, n in zip(both, sizes, strict=True)])

    @chunk_argument
    def predict_plan(self, pairs: Any, *, chunk_size: int | None = None) -> list:
        """Predicted couplings ``P_ij = exp((f_i + g_j - C_ij)/eps)``, one (n_k, m_k) per pair.

        Parameters
        ----------
        pairs : MeasurePairs or anything :func:`skmetaot.as_pairs` accepts
        chunk_size : int, optional

        Returns
        -------
        list of arrays of shape (n_k, m_k)
        """
        pairs = self._fitted_pairs(pairs)

        def plans(tensors, f, g):
            plan = transport_plan(tensors[4], f, g, self.epsilon)
            return lambda row, n, m: plan[row, :n, :m]

        return self._per_pair(pairs, chunk_size, plans)

    @chunk_argument
    def transform(self, pairs: Any, *, chunk_size: int | None = None) -> list:
        """Entropic (barycentric) map of each pair's source points with the predicted ``g``.

        Parameters
        ----------
        pairs : MeasurePairs or anything :func:`skmetaot.as_pairs` accepts
        chunk_size : int, optional

        Returns
        -------
        list of arrays of shape (n_k, d)
        """
        pairs = self._fitted_pairs(pairs)

        def maps(tensors, f, g):
            image = barycentric_map(tensors[4], g, tensors[2], self.epsilon)
            return lambda row, n, m: image[row, :n]

        return self._per_pair(pairs, chunk_size, maps)

    @chunk_argument
    def score(self, pairs: Any, y: None = None, *, chunk_size: int | None = None) -> float:
        """Mean entropic dual value ``<f, a> + <g(f), b>`` of the predictions (higher is better).

        Parameters
        ----------
        pairs : MeasurePairs or anything :func:`skmetaot.as_pairs` accepts
        y : None
            Ignored.
        chunk_size : int, optional

        Returns
        -------
        float
        """
        pairs = self._fitted_pairs(pairs)
        values = []
        for _, (_, a, _, b, cost), f, _ in self._predict_batches(pairs, chunk_size):
            values.append(entropic_dual_value(DenseGeometry(cost, self.epsilon), f, a, b))
        return float(torch.cat(values).mean())

    def init_f(self, batch: PairBatch) -> torch.Tensor:
        """Predicted f of a solver's batch: a fitted estimator is a Sinkhorn initializer.

        What ``sinkhorn(pairs, init=self)`` and :meth:`refine` start from (see
        :class:`~skmetaot.Initializer`). The batch is predicted in parts that keep
        the network's tensors within the memory budget.

        Parameters
        ----------
        batch : PairBatch
            Pairs of point clouds in the fitted dimension, in any dtype and on any device.

        Returns
        -------
        torch.Tensor of shape (B, n)
            The predicted source potentials (-inf on zero-mass and padding atoms), on the
            batch's dtype and device.

        Examples
        --------
        >>> import numpy as np
        >>> from skmetaot import MetaSinkhornCloudTransport, sinkhorn
        >>> rng = np.random.default_rng(0)
        >>> clouds = [(rng.normal(size=(12, 2)), 1 + rng.normal(size=(15, 2)))
        ...           for _ in range(8)]
        >>> est = MetaSinkhornCloudTransport(width=16, n_layers=1, max_iter=5, epsilon=0.1,
        ...                                  device="cpu", random_state=0).fit(clouds)
        >>> warm = sinkhorn(clouds, epsilon=0.1, tol=1e-3, init=est)
        >>> bool((warm.n_iter == est.refine_state(clouds, tol=1e-3).n_iter.numpy()).all())
        True
        """
        check_is_fitted(self, "model_")
        pairs = self._validate_pairs(batch.pairs[batch.indices])  # only the batch's rows move
        f = torch.full_like(batch.a, float("-inf"))
        for rows, _, part in self._predict_f_batches(pairs, None):
            f[rows, :part.shape[1]] = part.to(f)
        return f
