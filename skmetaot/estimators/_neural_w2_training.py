"""The training of NeuralW2Transport: networks, identity pre-training and dual steps.

A mixin of :class:`~skmetaot.NeuralW2Transport`: it builds the potential and the conjugate's
amortization model, pre-trains ``grad f`` to the identity and runs the steps of Algorithm 1 of
Amos (ICLR 2023) on mini-batches of the standardised pair, with the shared training loop's
fault handling and checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from skmetaot.amortize import TrainingHistory
from skmetaot.amortize.w2_losses import DIVERGED_LOSS, pretrain_identity, w2_dual_step
from skmetaot.metrics import uvp
from skmetaot.nn import ICNN, MLPPotential, ResidualAmortizer

#: Peak learning rates for schedules of thousands of steps (the reference's 5e-4 is tuned for
#: 250k steps); ICNNs, whose positive weights learn slowly, need the larger one.
DEFAULT_LEARNING_RATES = {"icnn": 1e-2, "mlp": 3e-3}


def default_hidden_sizes(dim: int) -> tuple[int, int, int]:
    """The reference widths for dimension ``dim``: ``(2k, 2k, k)`` with ``k = max(dim, 32)``."""
    base = max(int(dim), 32)
    return (2 * base, 2 * base, base)


class W2Training:
    """Training of :class:`~skmetaot.NeuralW2Transport` (a mixin; reads its parameters)."""

    def _initialise(self, dim: int) -> None:
        """Fresh networks for dimension ``dim``, no optimizer yet, an empty history."""
        hidden = tuple(self.hidden_layer_sizes or default_hidden_sizes(dim))
        if self.potential == "icnn":
            potential = ICNN(dim, hidden, activation=self.activation, quadratic=self.quadratic,
                             generator=self._generator)
        else:
            potential = MLPPotential(dim, hidden, activation=self.activation)
        self.potential_ = potential.to(self._device_, self._dtype_)
        self.amortizer_ = ResidualAmortizer(dim, hidden, activation=self.activation).to(
            self._device_, self._dtype_)
        self.optimizer_ = None
        self.n_iter_ = 0
        self._history = TrainingHistory()
        self._metrics: dict[str, list[float]] = {"dual": [], "amortization_loss": [],
                                                 "conjugate_iterations": [],
                                                 "pretrain_loss": []}

    def _pretrain(self, data: tuple[torch.Tensor, ...]) -> None:
        self._metrics["pretrain_loss"] += pretrain_identity(
            self.potential_, torch.cat([data[0], data[2]]), self.pretrain_iter,
            self.batch_size, self._generator)

    def _draw(self, points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if bool((weights == weights[0]).all()):
            pick = torch.randint(len(points), (self.batch_size,), generator=self._generator)
        else:
            pick = torch.multinomial(weights.cpu().double(), self.batch_size,
                                     replacement=True, generator=self._generator)
        return points[pick.to(points.device)]

    def _train(self, data: tuple[torch.Tensor, ...], n_steps: int, validation: Any,
               validate_every: int | None,
               checkpoint_data: tuple | None = None) -> W2Training:
        self._data = data
        x, a, y, b = data
        modules = torch.nn.ModuleDict({"potential": self.potential_,
                                       "amortizer": self.amortizer_})

        standard = self._standardisation()

        def step_loss(step: int) -> torch.Tensor:
            batch_x, batch_y = self._draw(x, a), self._draw(y, b)
            out = w2_dual_step(self.potential_, self.amortizer_, batch_x, batch_y,
                               amortization=self.amortization, conjugate=self.conjugate,
                               conjugate_tol=self.conjugate_tol,
                               conjugate_max_iter=self.conjugate_max_iter,
                               cycle_weight=self.cycle_weight)
            self._metrics["dual"].append(float(standard.dual(
                out.problem_duals, batch_x.detach().mean(0), batch_y.detach().mean(0))))
            self._metrics["amortization_loss"].append(out.amortization_loss)
            self._metrics["conjugate_iterations"].append(out.conjugate_iterations)
            # Progress is the dual (the amortization loss's level moves with f).
            return out.loss, -out.dual

        learning_rate = self.learning_rate or DEFAULT_LEARNING_RATES[self.potential]
        # The dual is of the order of the (standardised) second moments; far beyond them it is
        # diverging.
        scale = float((x * x).sum(-1).mean() + (y * y).sum(-1).mean()) + 1.0
        optimizer = self._live_optimizer(
            "optimizer_", modules.parameters(),
            lambda params: torch.optim.AdamW(params, lr=learning_rate, betas=(0.5, 0.5),
                                             weight_decay=self.weight_decay))
        validate = self._validator(validation)
        every = validate_every or max(1, n_steps // 20)
        self._train_loop(
            modules, step_loss, optimizer, n_steps=n_steps, checkpoint_data=checkpoint_data,
            learning_rate=learning_rate, grad_clip=self.grad_clip, validate=validate,
            validate_every=every if validate else 0, description="NeuralW2Transport",
            max_abs_loss=DIVERGED_LOSS * scale)
        return self

    def _validator(self, validation: Any) -> Callable[[], float] | None:
        if validation is None:
            return None
        if callable(validation):
            return lambda: float(validation(self))
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
            raise TypeError("validation must be (X, T_X) with the true map's images, or a "
                            "callable taking the estimator")
        points, images = validation
        variance = float(np.var(np.asarray(images, dtype=float), axis=0).sum())
        return lambda: uvp(self.transform(points), images, target_variance=variance)

