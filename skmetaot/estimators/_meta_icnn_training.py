"""Initialising and training MetaICNNTransport's hypernetwork (objective-based W2GN amortization).

A mixin of :class:`~skmetaot.MetaICNNTransport`: the ICNN architecture, the identity
pre-training of its base parameters, and the training steps over pairs drawn from a collection
in memory or from a stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from skmetaot.amortize import TrainingHistory
from skmetaot.amortize.w2_losses import DIVERGED_LOSS, pretrain_identity
from skmetaot.amortize.w2gn import w2gn_loss
from skmetaot.estimators._standardise import pair_standardisations
from skmetaot.measures.continuous import MeasureCollection, concat_collections
from skmetaot.nn import ICNN
from skmetaot.nn.encoders import ENCODERS
from skmetaot.nn.hypernetwork import PairHypernetwork
from skmetaot.sampling import RandomBatches

#: Pairs whose standardised samples make the pool of the identity pre-training, and the
#: points drawn for it (at least ``n_samples`` per measure).
PRETRAIN_PAIRS = 64
PRETRAIN_POINTS = 2 ** 16


class HypernetworkTraining:
    """Training of :class:`~skmetaot.MetaICNNTransport` (a mixin; reads its parameters)."""

    def _initialise(self, collection: MeasureCollection) -> None:
        self._device_, self._dtype_ = self._torch_device(), self._torch_dtype()
        self.n_features_in_ = collection.dim
        encoder = self.encoder
        if encoder == "auto":
            encoder = "image" if collection.has_images else "set"
        spec = ENCODERS[encoder]
        if spec.inputs == "images" and not collection.has_images:
            raise ValueError(f"encoder={encoder!r} needs measures given as images (H, W, C)")
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
        net = spec.build(collection.dim, self.encoder_features)
        self.hypernetwork_ = PairHypernetwork(net, torch.cat([base, base]),
                                              tuple(self.hidden_layer_sizes),
                                              n_features=self.encoder_features).to(
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
               batches: Any = None) -> HypernetworkTraining:
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

