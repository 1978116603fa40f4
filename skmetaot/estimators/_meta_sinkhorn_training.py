"""Training MetaSinkhornTransport's potential network (objective-based amortization).

A mixin of :class:`~skmetaot.MetaSinkhornTransport`: the network and its state at the start of
training, and the training steps over a collection in memory or a stream of fresh pairs, with
the whole dual or a sample of the target atoms per pair (``target_sample_size``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from skmetaot.amortize import TrainingHistory, entropic_dual_value, unrolled_marginal_error
from skmetaot.geometry import DenseGeometry
from skmetaot.measures import HistogramPairs
from skmetaot.nn import MLP, GridUNet
from skmetaot.sampling import RandomBatches, concat_histograms, histogram_batch


class PotentialTraining:
    """Training of :class:`~skmetaot.MetaSinkhornTransport` (a mixin; reads its parameters)."""

    def _initialise(self, pairs: HistogramPairs) -> None:
        self.n_source_, self.n_target_ = int(pairs.a.shape[1]), int(pairs.b.shape[1])
        self.support_x_, self.support_y_ = pairs.x, pairs.y
        self._generator = self._seed_generator()
        n_features = {"histograms": self.n_source_ + self.n_target_,
                      "pooled": 2 * self.n_source_,
                      "pooled+histograms": 2 * self.n_source_ + self.n_target_}[self.inputs]
        if self.model == "conv":
            if pairs.grid_x is None or len(pairs.grid_x) != 2:
                raise ValueError("model='conv' needs source histograms on a 2-D grid (images); "
                                 f"the source support of these pairs, shape "
                                 f"{tuple(pairs.x.shape)}, is not one")
            self.model_ = GridUNet(n_features, self.n_source_,
                                   grid_shape=[len(axis) for axis in pairs.grid_x]
                                   ).to(self._device_, self._dtype_)
        elif self.model is not None:
            network = self.model(n_features, self.n_source_)
            if not isinstance(network, torch.nn.Module):
                raise TypeError(f"model({n_features}, {self.n_source_}) returned a "
                                f"{type(network).__name__}, not a torch.nn.Module")
            self.model_ = network.to(self._device_, self._dtype_)
        else:
            # With a baseline, start exactly at it: training can then only move away from it.
            self.model_ = MLP(n_features, tuple(self.hidden_layer_sizes), self.n_source_,
                              zero_last=self.baseline is not None
                              ).to(self._device_, self._dtype_)
        self.optimizer_ = None  # created on first use by _live_optimizer
        self.n_iter_ = 0
        self._history = TrainingHistory()
        self._reset_calibration()

    def _train_stream(self, data: Any, n_steps: int, total_steps: int | None,
                      initialise: bool, cycle: bool, checkpoint_data: tuple | None) -> None:
        if self.validation_fraction:
            raise ValueError("validation_fraction needs the pairs in memory; a stream has no "
                             "held-out part (score a held-out collection instead)")
        first, batches = self._open_stream(
            data, cycle=cycle, initialise=initialise, concat=concat_histograms,
            convert=lambda item, fitting: self._validate_pairs(histogram_batch(item),
                                                               fitting=fitting))
        self._train(first, n_steps, total_steps, batches=batches,
                    checkpoint_data=checkpoint_data)

    def _train(self, pairs: HistogramPairs, n_steps: int, total_steps: int | None,
               checkpoint_data: tuple | None = None, batches: Any = None):
        geometry = self._geometry(pairs)
        n_val, val_idx = 0, None
        if batches is None:  # a collection in memory: random batches of its training part
            n_val = int(round(self.validation_fraction * pairs.n_pairs))
            train_pairs = pairs
            if n_val:
                order = torch.randperm(pairs.n_pairs, generator=self._generator)
                val_idx = order[:n_val].to(self._device_)
                train_pairs = pairs[order[n_val:]]
            if train_pairs.n_pairs == 0:
                raise ValueError("no training pairs remain after the validation split")
            batches = RandomBatches(train_pairs, min(self.batch_size, train_pairs.n_pairs)
                                    ).iterate(self._seed)
            self._batch_generator = batches.generator

        sampled = self._target_sampler(geometry)

        def step_loss(step: int) -> torch.Tensor:
            batch = next(batches)
            a, b = batch.a, batch.b
            f = self._forward(geometry, a, b)
            if sampled is None:
                loss = -entropic_dual_value(geometry, f, a, b).mean()
            else:
                sub, b_sub, scale = sampled(b)
                loss = -entropic_dual_value(sub, f, a, b_sub, target_scale=scale).mean()
            if self.unroll_steps:
                loss = loss + unrolled_marginal_error(geometry, f, a, b, self.unroll_steps).mean()
            return loss

        def validate() -> float:
            return -self._mean_dual(geometry, pairs, val_idx)

        self._train_loop(
            self.model_, step_loss,
            self._live_optimizer("optimizer_", self.model_.parameters(),
                                 lambda params: torch.optim.Adam(params, lr=self.learning_rate)),
            # An endless schedule never decays: the cosine at progress 0 is the peak rate.
            n_steps=n_steps, checkpoint_data=checkpoint_data,
            total_steps=math.inf if self.learning_rate_schedule == "constant" else total_steps,
            distribute="model_", learning_rate=self.learning_rate, grad_clip=self.grad_clip,
            validate=validate if n_val else None,
            validate_every=max(1, n_steps // 20) if n_val else 0,
            description="MetaSinkhornTransport",
        )
        return self

    def _target_sampler(self, geometry):
        """``(b) -> (geometry, b's sampled atoms, m / k)``, fresh per pair; None for all atoms."""
        m = self.n_target_
        if self.target_sample_size is None or self.target_sample_size >= m:
            return None
        if not hasattr(geometry, "absorbed_kernel") or geometry.batched:
            raise ValueError(
                "target_sample_size needs a dense cost shared by the pairs; these pairs are on "
                "a grid (sampled atoms form no grid): leave target_sample_size=None")
        k, columns = self.target_sample_size, geometry.cost.transpose(0, 1)

        def sample(b: torch.Tensor):
            # Each pair its own sample: the batch's gradient then averages over B samples,
            # where one shared sample would bias every pair the same way within the step.
            keys = torch.rand(b.shape, generator=self._generator).to(b.device)
            index = keys.topk(k, dim=1, sorted=False).indices
            cost = columns[index].transpose(1, 2)  # (B, n, k)
            return (DenseGeometry(cost, geometry.epsilon, kernel=False), b.gather(1, index),
                    m / k)
        return sample
